"""`Supervisor.stopping`: one event-like object for the supervisor's whole life.

Each lifespan has its own `asyncio.Event` (a test client may run each on a new loop); users
hold on to `supervisor.stopping` from import time, so it asks for the current one each time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .errors import NotRunningError

__all__ = ["Stopping"]


class Stopping:
    """`Supervisor.stopping`: set when draining begins, for the lifespan running now.

    Example::

        while not supervisor.stopping.is_set():
            await handle(await queue.get())

    Users get it from ``supervisor.stopping`` (and may annotate with it); they never make one.
    """

    __slots__ = ("_current",)

    def __init__(self, current: Callable[[], asyncio.Event | None]) -> None:
        # The event of the lifespan running now (or the last one), None before any.
        self._current = current

    def __repr__(self) -> str:
        return f"<Stopping {'set' if self.is_set() else 'unset'}>"

    def is_set(self) -> bool:
        """True once draining has begun in the current lifespan."""
        event = self._current()
        return event is not None and event.is_set()

    async def wait(self) -> None:
        """Wait until draining begins.

        Cancellation: cancelling the caller ends only its own wait. No timeout of its own:
        wrap it in ``asyncio.timeout`` to bound it.

        Raises:
            NotRunningError: no lifespan is running to wait on.
        """
        event = self._current()
        if event is None:
            raise NotRunningError("Cannot wait for stopping: no lifespan is running.")
        await event.wait()
