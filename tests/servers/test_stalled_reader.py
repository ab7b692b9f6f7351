"""A client that stops reading cannot turn a shutdown into the watchdog's exit, on any server.

The client asks for an endless stream of large chunks with a small receive buffer, and never
reads: the handler waits on the server's flow control, and once the deadline cancels it, the
server still waits for the connection to flush, forever (uvicorn's "Waiting for connections
to close", granian's wait, hypercorn's after its own timeout). On every supported server the
shutdown must still end as designed: the stream is cut at the deadline, its connection ended
after the stopping phase, the server's own shutdown and the app's lifespan shutdown run, the
process exits by itself before the watchdog would, the listener folder (the local token and
the worker's socket) is gone, and the report names the cut request and the ended connection.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers._process import ServerProcess, events_named, wait_for_event

pytestmark = [pytest.mark.server, pytest.mark.timeout(60)]

APP = "tests.servers.served:app"
GRACE, CANCEL, WATCHDOG_DELAY = 4.0, 1.5, 0.5
ENV = {
    "ASGI_SUPERVISOR_GRACE_PERIOD": str(GRACE),
    "ASGI_SUPERVISOR_CANCEL_TIMEOUT": str(CANCEL),
    "ASGI_SUPERVISOR_WATCHDOG_DELAY": str(WATCHDOG_DELAY),
}


class StalledReader:
    """A client that asks for the endless ``/big`` stream and never reads a byte of it."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket()
        # Set before connecting, so that the window it offers stays small.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.settimeout(5)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(b"GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        self.address = "{}:{}".format(*self.sock.getsockname())

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def stalled(request: pytest.FixtureRequest) -> Iterator[list[StalledReader]]:
    """The stalled readers a test opens, closed at its end."""
    readers: list[StalledReader] = []
    yield readers
    for reader in readers:
        reader.close()


@pytest.mark.parametrize("server_name", ["uvicorn", "gunicorn", "hypercorn", "granian"])
async def test_a_client_that_stopped_reading_cannot_hold_the_shutdown(
    server_name: str, tmp_path: Path, stalled: list[StalledReader]
) -> None:
    """1. a client stops reading an endless stream; 2. SIGTERM; 3. at the deadline the
    stream is cut and, once the stopping phase is over, its connection ended; 4. the app's
    lifespan shutdown runs and the process exits by itself before the watchdog; 5. the
    listener folder is gone; 6. the report, not clean, names the request and the
    connection."""
    with ServerProcess(APP, tmp_path=tmp_path, server=server_name, env=ENV) as server:
        folder = server.listener_folder
        server.admin_headers()  # the local token is there while it serves
        reader = StalledReader(server.port)
        stalled.append(reader)
        await wait_for_event(server, "big stream started")
        sent = server.signal(signal.SIGTERM)
        server.wait_exit(timeout=GRACE + 5)
        output = server.output()
    # The watchdog (armed for the deadline and its delay) did not end the process, and the
    # app's lifespan shutdown ran within the deadline. How long the interpreter then takes
    # to exit is the server's own: hypercorn's teardown takes 0.5 s on a loaded machine
    # with no connection at all.
    assert "asgi-supervisor watchdog" not in output
    (shutdown,) = events_named(server, "app shutdown")
    assert shutdown - sent < GRACE, output
    assert not folder.exists(), sorted(folder.iterdir())
    (line,) = [line for line in output.splitlines() if "shutdown report: " in line]
    assert ", NOT clean, " in line
    assert f"1 response cut mid-body at the deadline (GET /big from {reader.address})" in line
    assert f"1 connection ended with data its client did not read ({reader.address})" in line
