"""Letting the server stop within our deadline: its own wait bounded, and the connections it
would wait for past the deadline ended.

Once the supervisor lets the server stop (the held signal passed on, or a request to exit
after a drain), the server waits for its connections before it runs the app's lifespan
shutdown. Every connection whose handler we stopped should then end, but one does not: a
client that stopped reading keeps its connection open while unsent data waits for it. Three
steps keep the server within the deadline, on every server:

1. At startup, a server wait with no bound at all (uvicorn's default) gets the grace period
   as its bound; when the signal is passed on, its bound becomes what remains of the
   deadline: the server's own means, where it has them (`_host.server_wait`).
2. After the stopping phase, connections whose client stopped reading are ended at once
   (`_host.connections`): every handler has ended, so nothing of theirs is still coming, and
   the server goes on with its shutdown now instead of at the deadline. The report names
   them.
3. At the deadline, connections still open are ended, for servers that have no bound of
   their own (granian; hypercorn on Python 3.12+, whose ``wait_closed()`` waits for them).

Only when the process is meant to exit: a worker that stays up after a drain keeps its
connections. The ports are those the listener watch found since startup (a server may close
its listener before the shutdown asks), else a look when the shutdown begins.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from asgi_supervisor._core.cancel import wait_resisting
from asgi_supervisor._host.connections import Connection, end_connections
from asgi_supervisor._host.server_wait import bound_server_wait
from asgi_supervisor._host.tcp_table import listening_sockets

__all__ = ["ServerStop"]

logger = logging.getLogger("asgi_supervisor")

# Ending connections is a few reads of /proc and one system call each, in a thread; the
# shutdown waits for it this long at most.
_END_TIMEOUT = 2.0


class ServerStop:
    """What the shutdown does to let the server stop within the deadline (see the module).

    Args:
        loop: the lifespan's loop.
        server_parts: objects of the server's that may hold its configuration, asked each
            time (the signal handler's owner is known once the handlers are chained).
        known_ports: the listening ports found since startup.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        server_parts: Callable[[], Iterable[object]],
        known_ports: Callable[[], frozenset[int]],
    ) -> None:
        self._loop = loop
        self._server_parts = server_parts
        self._known_ports = known_ports
        self._looked: asyncio.Future[set[int]] | None = None
        self._final: asyncio.TimerHandle | None = None
        self._final_task: asyncio.Task[None] | None = None

    def bound_at_startup(self, grace_period: float) -> None:
        """Give a server wait that has no bound the grace period as its bound."""
        setting = bound_server_wait(self._server_parts(), grace_period, unbounded_only=True)
        if setting is not None:
            logger.info("%s was unbounded: set to grace_period, %g s", setting, grace_period)

    def bound(self, seconds: float) -> None:
        """The server is about to stop: let it wait *seconds* at most for its connections."""
        setting = bound_server_wait(self._server_parts(), seconds)
        if setting is not None:
            logger.info("%s set to what remains of the deadline, %.1f s", setting, seconds)

    def look_for_ports(self) -> None:
        """The shutdown began: look for the listening ports now, in a thread, in case the
        listener watch found none (no presence), before the server closes its listener."""
        if self._looked is None and not self._known_ports():
            self._looked = self._loop.run_in_executor(None, _listening_ports)

    async def end_stalled(self) -> tuple[str, ...]:
        """End the connections whose client stopped reading; return their client addresses.

        Bounded (2 s); resists cancellation as every step of the shutdown does.
        """
        ended = await self._end(stalled_only=True)
        if ended:
            logger.warning(
                "ended %d connection(s) whose client stopped reading, so that the server "
                "can shut down: %s",
                len(ended),
                ", ".join(ended),
                extra={"connections": list(ended)},
            )
        return ended

    def end_all_at(self, deadline: float, on_ended: Callable[[tuple[str, ...]], None]) -> None:
        """At *deadline* (``time.monotonic()``), end every connection still open on our
        ports and tell *on_ended* of them; `cancel` stops this."""
        if self._final is not None:
            return
        delay = max(0.0, deadline - time.monotonic())
        self._final = self._loop.call_later(delay, self._end_all, on_ended)

    def cancel(self) -> None:
        """The server got past its wait for connections: end nothing more."""
        if self._final is not None:
            self._final.cancel()
        if self._final_task is not None:
            self._final_task.cancel()

    def _end_all(self, on_ended: Callable[[tuple[str, ...]], None]) -> None:
        async def end_all() -> None:
            ended = await self._end(stalled_only=False)
            if ended:
                logger.warning(
                    "ended %d connection(s) still open at the deadline: %s",
                    len(ended),
                    ", ".join(ended),
                    extra={"connections": list(ended)},
                )
                on_ended(ended)

        self._final_task = self._loop.create_task(end_all(), name="asgi-supervisor connections")

    async def _end(self, *, stalled_only: bool) -> tuple[str, ...]:
        until = time.monotonic() + _END_TIMEOUT
        ports = set(self._known_ports())
        if not ports and self._looked is not None:
            await wait_resisting(self._looked, until)
            if self._looked.done() and not self._looked.cancelled():
                ports = set(self._looked.result())
        if not ports:
            return ()
        ending = self._loop.run_in_executor(
            None, lambda: end_connections(ports, stalled_only=stalled_only)
        )
        await wait_resisting(ending, until)
        if not ending.done():
            return ()
        try:
            connections: list[Connection] = ending.result()
        except Exception:  # never expected: the shutdown goes on without this step
            logger.exception("could not end the connections left")
            return ()
        return tuple(connection.peer for connection in connections)


def _listening_ports() -> set[int]:
    # In a thread: the ports of the TCP sockets this process listens on.
    return {listener.port for listener in listening_sockets()}
