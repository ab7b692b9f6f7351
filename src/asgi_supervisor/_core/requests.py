"""The count of in-flight HTTP requests of one lifespan, and how the draining ones ended.

The per-request path of every app that uses this library runs through here, so a request is
not recorded one by one: the middleware, the only writer, adds one to ``in_flight`` when a
request starts and takes it off when it ends, which costs two integer operations. The request
tasks themselves are found only when they must be cancelled or listed, by walking the loop's
tasks for the middleware's frames (see `_stacks.tasks_running`).

A request's start time, for its age in /tasks, is read from a cheap clock (``now``) that the
count refreshes itself every 0.1 s (`start_clock`): one attribute load per request instead of
a call to ``time.monotonic()``, and one writer for the clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

__all__ = ["RequestCount"]

_CLOCK_PERIOD = 0.1
# The report names this many of the requests cut mid-body, and counts the rest.
_CUT_NAMES_KEPT = 20


class RequestCount:
    """In-flight requests, and the fates of those that met a shutdown.

    Written by the middleware alone; the shutdown reads it and sets `on_change` (and
    `deadline_cancels`, the one table it owns here) while it waits.
    """

    __slots__ = (
        "_ticker",
        "cancelled_count",
        "cut_count",
        "cut_names",
        "deadline_cancels",
        "drained_count",
        "in_flight",
        "now",
        "on_change",
        "rejected_count",
    )

    def __init__(self) -> None:
        self.in_flight = 0
        # Requests that were in flight when draining began and ended by themselves, the ones
        # answered 503 while closing, the ones cancelled at the deadline before any part of
        # a body reached their client, and those cancelled in the middle of their body (the
        # first `_CUT_NAMES_KEPT` of them named).
        self.drained_count = 0
        self.rejected_count = 0
        self.cancelled_count = 0
        self.cut_count = 0
        self.cut_names: list[str] = []
        # Filled by the shutdown right before it cancels the requests left: each request
        # task with its `cancelling()` count before ours. The middleware withdraws our
        # request alone, and lets any other one propagate (asyncio's `timeouts` compares
        # with the count on entry the same way).
        self.deadline_cancels: dict[asyncio.Task[Any], int] = {}
        # Called when a request ends while draining (the shutdown waits for the last one).
        self.on_change: Callable[[], None] | None = None
        # A cheap clock for request ages in /tasks, refreshed by our own ticker (its one
        # writer, `_tick`): reading an attribute is cheaper than time.monotonic() per request.
        self.now = time.monotonic()
        self._ticker: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"<RequestCount in_flight={self.in_flight}>"

    def start_clock(self, loop: asyncio.AbstractEventLoop) -> None:
        """Refresh `now` every 0.1 s on *loop* until `stop_clock`; call it from the loop."""
        if self._ticker is None:
            self._tick(loop)

    def stop_clock(self) -> None:
        """Stop refreshing `now`; it keeps its last value. Stopping twice does nothing."""
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self.now = time.monotonic()
        self._ticker = loop.call_later(_CLOCK_PERIOD, self._tick, loop)

    def left_while_draining(self, *, cancelled: bool = False, cut: str | None = None) -> None:
        """A request that met the shutdown is over: it leaves the in-flight count, counted as
        drained by itself, cancelled by us before any part of a body reached its client
        (*cancelled*), or cut by us in the middle of its body (*cut* names it)."""
        self.in_flight -= 1
        if cut is not None:
            self.cut_count += 1
            if len(self.cut_names) < _CUT_NAMES_KEPT:
                self.cut_names.append(cut)
        elif cancelled:
            self.cancelled_count += 1
        else:
            self.drained_count += 1
        if self.on_change is not None:
            self.on_change()
