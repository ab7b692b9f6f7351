"""The client connections on our listening ports, as the kernel has them, and ending them:
real sockets on loopback, a client that stopped reading and one that keeps up."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from asgi_supervisor._host.connections import client_connections, end_connections
from tests._inprocess import Listener

pytestmark = pytest.mark.skipif(
    not os.path.exists("/proc/self/net/tcp"), reason="reads /proc (Linux only)"
)


@pytest.fixture
def listener() -> Iterator[Listener]:
    listening = Listener()
    yield listening
    listening.close()


def test_a_client_that_stopped_reading_is_found_and_ended_alone(listener: Listener) -> None:
    """1. one client stops reading a large response, another is idle; 2. only the first is
    stalled; 3. ending the stalled ones shuts it down, by its real address, and leaves the
    idle one: our next write to it fails, the idle one still works."""
    stalled_client, stalled = listener.connect(receive_buffer=4096)
    idle_client, idle = listener.connect()
    listener.stall(stalled)
    found = {c.peer: c for c in client_connections({listener.port})}
    peer = f"127.0.0.1:{stalled_client.getsockname()[1]}"
    idle_peer = f"127.0.0.1:{idle_client.getsockname()[1]}"
    assert set(found) == {peer, idle_peer}
    assert found[peer].stalled
    assert found[peer].unsent > 0
    assert not found[idle_peer].stalled

    ended = end_connections({listener.port}, stalled_only=True)
    assert [c.peer for c in ended] == [peer]
    with pytest.raises(BrokenPipeError):
        stalled.send(b"more")
    idle.sendall(b"still here")
    assert idle_client.recv(100) == b"still here"


def test_every_connection_is_ended_when_asked(listener: Listener) -> None:
    """At the deadline every connection left is ended, stalled or not."""
    idle_client, _ = listener.connect()
    ended = end_connections({listener.port}, stalled_only=False)
    assert [c.peer for c in ended] == [f"127.0.0.1:{idle_client.getsockname()[1]}"]
    assert idle_client.recv(100) == b""  # the client sees the connection end


def test_only_connections_to_our_ports_count(listener: Listener) -> None:
    """The client side of a connection (our own outgoing one) and other ports are never
    touched: only connections whose local port is one of ours."""
    listener.connect()
    assert client_connections(set()) == []
    assert client_connections({listener.port + 1 if listener.port < 65535 else 1}) == []
    assert len(client_connections({listener.port})) == 1  # ours, not the client's end
