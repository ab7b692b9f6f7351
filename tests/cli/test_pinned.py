"""The connection a local token may go through: the one address chosen, its owner checked
once connected, never another host, never a proxy."""

from __future__ import annotations

import http.server
import os
import socket
import threading
import urllib.request
from collections.abc import Iterator
from typing import ClassVar

import pytest

from asgi_supervisor._cli.pinned import NotTheServerError, Pin

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/net"), reason="needs /proc")


Seen = list[tuple[str, str | None, str | None]]


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[Seen]

    def do_GET(self) -> None:
        self.seen.append((self.path, self.headers.get("Host"), self.headers.get("Authorization")))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[tuple[int, Seen]]:
    """An HTTP server of ours on 127.0.0.1, recording path, Host and Authorization."""
    seen: Seen = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    with http.server.HTTPServer(("127.0.0.1", 0), handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield httpd.server_address[1], seen
        finally:
            httpd.shutdown()
            thread.join(5.0)


def opener(pin: Pin) -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(*pin.handlers())


def test_a_pinned_request_goes_to_the_address_with_the_urls_host(
    server: tuple[int, Seen],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The request for http://localhost:PORT goes to the pinned 127.0.0.1 with its own Host
    header and the token, even with a proxy set in the environment."""
    port, seen = server
    monkeypatch.setenv("http_proxy", "http://192.0.2.1:3128")
    pin = Pin("localhost", port, address="127.0.0.1", owners=frozenset({os.geteuid()}))
    request = urllib.request.Request(
        f"http://localhost:{port}/tasks", headers={"Authorization": "Bearer t"}
    )
    with opener(pin).open(request, timeout=5.0) as response:
        assert response.read() == b"ok"
    assert seen == [("/tasks", f"localhost:{port}", "Bearer t")]


def test_another_host_or_port_is_refused_before_connecting(
    server: tuple[int, Seen],
) -> None:
    """A request for any other host or port through the pin (a redirect would make one)
    is refused before a connection is made."""
    port, seen = server
    pin = Pin("localhost", port, address="127.0.0.1", owners=frozenset({os.geteuid()}))
    for url in (f"http://127.0.0.2:{port}/", f"http://localhost:{port + 1}/"):
        with pytest.raises(NotTheServerError, match="the local token is for localhost"):
            opener(pin).open(url, timeout=5.0)
    assert seen == []


def test_a_socket_of_another_owner_gets_nothing(
    server: tuple[int, Seen],
) -> None:
    """The socket that accepted is not the recorded owner's: the connection is closed
    before a byte is sent, and the refusal names the owner it found."""
    port, seen = server
    pin = Pin("localhost", port, address="127.0.0.1", owners=frozenset({os.geteuid() + 1}))
    with pytest.raises(NotTheServerError, match=f"belongs to uid {os.geteuid()}, not to the"):
        opener(pin).open(f"http://localhost:{port}/", timeout=5.0)
    assert seen == []


def test_a_closed_port_is_an_ordinary_connection_error() -> None:
    """Nothing listening is unreachable, as without a pin."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pin = Pin("localhost", port, address="127.0.0.1", owners=frozenset({os.geteuid()}))
    with pytest.raises(OSError, match="refused"):
        pin.connect("localhost", port, 2.0)
