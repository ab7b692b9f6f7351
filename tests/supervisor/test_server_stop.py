"""Letting the server stop within the deadline: its own wait bounded, and the connections it
would wait for ended, stalled ones after the stopping phase and the rest at the deadline."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Iterator

import pytest
import uvicorn
from uvicorn.lifespan.on import LifespanOn

from asgi_supervisor._supervisor.server_stop import ServerStop
from tests._inprocess import Listener

pytestmark = [
    pytest.mark.timeout(20),
    pytest.mark.skipif(not os.path.exists("/proc/self/net/tcp"), reason="reads /proc"),
]


async def app(scope: object, receive: object, send: object) -> None:
    """An app for uvicorn's constructors; never called."""


@pytest.fixture
def listener() -> Iterator[Listener]:
    listening = Listener()
    yield listening
    listening.close()


async def stalled_connection(listener: Listener) -> socket.socket:
    """Our end of a connection whose client stopped reading."""
    _, accepted = await asyncio.to_thread(listener.connect, 4096)
    await asyncio.to_thread(listener.stall, accepted)
    return accepted


async def test_the_servers_wait_is_bounded_at_startup_then_by_what_remains(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """uvicorn's unbounded wait gets the grace period at startup, and what remains of the
    deadline when the signal is passed on; both are logged."""
    caplog.set_level(logging.INFO, logger="asgi_supervisor")
    config = uvicorn.Config(app)
    stop = ServerStop(
        asyncio.get_running_loop(),
        server_parts=lambda: (None, LifespanOn(config)),
        known_ports=frozenset,
    )
    stop.bound_at_startup(25.0)
    assert config.timeout_graceful_shutdown == 25.0
    stop.bound(4.2)
    assert config.timeout_graceful_shutdown == 4.2
    assert "uvicorn's timeout_graceful_shutdown set to what remains of the deadline, 4.2 s" in (
        caplog.text
    )


async def test_after_the_stopping_phase_only_stalled_connections_end(listener: Listener) -> None:
    """A client that stopped reading is ended and named; an idle one is left to the server."""
    stalled = await stalled_connection(listener)
    _, idle = await asyncio.to_thread(listener.connect)
    stop = ServerStop(
        asyncio.get_running_loop(),
        server_parts=tuple,
        known_ports=lambda: frozenset({listener.port}),
    )
    (peer,) = await stop.end_stalled()
    assert peer.startswith("127.0.0.1:")
    with pytest.raises(BrokenPipeError):
        stalled.send(b"more")
    idle.sendall(b"fine")  # still open


async def test_without_known_ports_it_looks_when_the_shutdown_begins(listener: Listener) -> None:
    """No listener watch (no presence): the ports are looked for in a thread at the
    trigger, while the server still listens, and used after the stopping phase."""
    await stalled_connection(listener)
    stop = ServerStop(asyncio.get_running_loop(), server_parts=tuple, known_ports=frozenset)
    stop.look_for_ports()
    assert len(await stop.end_stalled()) == 1


async def test_at_the_deadline_every_connection_left_ends(listener: Listener) -> None:
    """The final sweep ends what is still open at the deadline and says which; cancelled
    (the server got past its wait), it ends nothing."""
    await asyncio.to_thread(listener.connect)
    loop = asyncio.get_running_loop()
    ports = lambda: frozenset({listener.port})  # noqa: E731
    told: asyncio.Future[tuple[str, ...]] = loop.create_future()
    cancelled = ServerStop(loop, server_parts=tuple, known_ports=ports)
    cancelled.end_all_at(time.monotonic() + 0.05, lambda ended: told.set_result(("wrong",)))
    cancelled.cancel()
    stop = ServerStop(loop, server_parts=tuple, known_ports=ports)
    stop.end_all_at(time.monotonic() + 0.1, told.set_result)
    ended = await asyncio.wait_for(told, 5)
    assert len(ended) == 1
    assert ended[0].startswith("127.0.0.1:")
