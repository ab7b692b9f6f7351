"""Sibling processes played in one test process: members of a listener folder with pids of
their own, a real listening socket on loopback, and a short private runtime folder.

Each `Member` is a `Presence` (and, unless told otherwise, a `ProcessGroup`) with a made-up
pid and the real discovery: it finds the test's listening socket through ``/proc``, as the
workers of one server find theirs. Test modules import from here, never from each other.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from asgi_supervisor._group.membership import ProcessGroup
from asgi_supervisor._host.listener_folder import folder_name
from asgi_supervisor._host.presence import Presence
from asgi_supervisor._host.runtime_dir import RuntimeDir
from asgi_supervisor._host.tcp_table import Listener, listening_sockets

# Bounds, not speed claims: the shared CI machine runs three Pythons at once, and a
# broadcast lists the folders in a worker thread.
WITHIN = 10.0


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A listening TCP socket on loopback, as a server's workers share one."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock


@pytest.fixture
def runtime() -> Iterator[Path]:
    """A private runtime folder, not made yet (removable: it goes with the last member)."""
    with tempfile.TemporaryDirectory(prefix="pg-") as name:
        yield Path(name) / "rt"


def folder_of(runtime: Path, listener: socket.socket) -> Path:
    """The listener folder of *listener* in *runtime*."""
    return runtime / folder_name(listener.getsockname()[:2])


def listening(*socks: socket.socket) -> set[Listener]:
    """What the listener watch would find for the listening sockets *socks*."""
    return {
        Listener(
            sock.getsockname()[0],
            sock.getsockname()[1],
            os.fstat(sock.fileno()).st_ino,
            os.geteuid(),
        )
        for sock in socks
    }


def default_dir(runtime: Path) -> RuntimeDir:
    """*runtime* as a default runtime directory: made if missing, as `placement` makes one,
    and removed by the last member to leave."""
    runtime.mkdir(mode=0o700, exist_ok=True)
    return RuntimeDir(runtime, removable=True)


class Member:
    """A member of the listener folders whose drain callback records what it heard.

    Every broadcast it makes is kept as a task, so a test can wait until it has said all it
    was going to say (`flush`), and records the messages (`said`).
    """

    def __init__(
        self,
        runtime: Path,
        pid: int,
        *,
        status: dict[str, Any] | None = None,
        find: Callable[[], set[Listener]] = listening_sockets,
        group: bool = True,
    ) -> None:
        self.heard: list[tuple[str, float]] = []
        self.drained = asyncio.Event()
        self.status = status or {"state": "ready", "drained": False}
        self.said: list[dict[str, Any]] = []
        self._sending: list[asyncio.Task[list[int]]] = []
        self.presence = Presence(
            asyncio.get_running_loop(),
            runtime_dir=lambda endpoints: default_dir(runtime),
            pid=pid,
            find=find,
        )
        channel = self.presence.channel

        def broadcast_soon(*messages: dict[str, Any]) -> None:
            self.said.extend(messages)
            self._sending.append(asyncio.ensure_future(channel.broadcast(*messages)))

        channel.broadcast_soon = broadcast_soon  # type: ignore[method-assign]

        async def describe(drain_timeout: float) -> dict[str, Any]:
            return self.status

        self.group = (
            ProcessGroup(self.presence, on_drain=self.on_drain, describe=describe)
            if group
            else None
        )

    def start(self) -> None:
        """Join once the member's watch finds a listener, as `Run.start` does."""
        self.presence.start()

    async def flush(self) -> None:
        """Wait until every broadcast this member began has been sent."""
        while self._sending:
            await self._sending.pop()

    async def close(self) -> None:
        """Leave the folders, as the end of a lifespan does."""
        await self.flush()
        await self.presence.aclose()

    def on_drain(self, trigger: str, deadline: float) -> None:
        self.heard.append((trigger, deadline))
        self.drained.set()
        # As the supervisor does: begin_drain announces, which must not re-broadcast.
        assert self.group is not None
        self.group.announce(trigger, deadline - 1.0)

    async def wait_heard(self, within: float = WITHIN) -> tuple[str, float]:
        await asyncio.wait_for(self.drained.wait(), within)
        return self.heard[-1]

    def drains_said(self) -> list[dict[str, Any]]:
        """The drain messages this member broadcast."""
        return [message for message in self.said if message["type"] == "drain"]


async def joined(*members: Member) -> None:
    """Start each member; with the listener there, each joins as soon as the listener is
    found (the lookup runs off the loop)."""
    for member in members:
        member.start()
    for member in members:
        await asyncio.wait_for(until(lambda: member.presence.joined), WITHIN)  # noqa: B023


async def settled(*members: Member) -> None:
    """Wait until every message the *members* sent each other has been handled.

    Each member's broadcasts are sent first; then each asks every other for its status:
    datagrams between two sockets arrive in order, so an answer comes after everything its
    sender said before it.
    """
    for member in members:
        await member.flush()
    for member in members:
        await member.presence.channel.ask("status", {"timeout": 0.0}, 1.0)


async def until(condition: Callable[[], object]) -> None:
    """Return once *condition()* is true (bound it with ``asyncio.wait_for``)."""
    while not condition():
        await asyncio.sleep(0.01)
