"""`Supervisor.stopping` and `Supervisor.closing`: event-likes for the supervisor's whole life.

Each lifespan has its own events (a test client may run each on a new loop); users hold on to
``supervisor.stopping`` and ``supervisor.closing`` from import time, so each asks for the
current lifespan's event every time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ClassVar

from .errors import NotRunningError

__all__ = ["Closing", "Stopping"]


class _Notice:
    """An event-like view of the current lifespan's event, whatever the lifespan."""

    __slots__ = ("_current",)
    # What the event says, for repr and errors: "stopping", "closing".
    _what: ClassVar[str]

    def __init__(self, current: Callable[[], asyncio.Event | None]) -> None:
        # The event of the lifespan running now (or the last one), None before any.
        self._current = current

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {'set' if self.is_set() else 'unset'}>"

    def is_set(self) -> bool:
        """True once the event is set in the current lifespan."""
        event = self._current()
        return event is not None and event.is_set()

    async def wait(self) -> None:
        """Wait until the event is set.

        Cancellation: cancelling the caller ends only its own wait. No timeout of its own:
        wrap it in ``asyncio.timeout`` to bound it.

        Raises:
            NotRunningError: no lifespan is running to wait on.
        """
        event = self._current()
        if event is None:
            raise NotRunningError(f"Cannot wait for {self._what}: no lifespan is running.")
        await event.wait()


class Stopping(_Notice):
    """`Supervisor.stopping`: set when draining begins, for the lifespan running now.

    Example::

        while not supervisor.stopping.is_set():
            await handle(await queue.get())

    Users get it from ``supervisor.stopping`` (and may annotate with it); they never make one.
    """

    __slots__ = ()
    _what = "stopping"


class Closing(_Notice):
    """`Supervisor.closing`: set when the closing phase begins, for the lifespan running now.

    The closing notice: load balancers have stopped sending requests here (``shutdown_delay``
    is over), new requests get 503, and long-lived responses (server-sent events, long
    polls, streamable HTTP) should end themselves, so that their clients see the body end
    and reconnect elsewhere instead of being cut at the deadline.

    Example::

        async def events() -> AsyncIterator[bytes]:
            while not supervisor.closing.is_set():
                yield await next_event()

    Users get it from ``supervisor.closing``; `Supervisor.until_closing` ends an async
    iterator at the same moment, even one waiting for its next item.
    """

    __slots__ = ()
    _what = "closing"
