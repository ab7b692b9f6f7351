"""The one deadline of a shutdown, on one clock, answering "until when" for every phase.

Every wait of the shutdown, the forcing second signal, a sibling worker's earlier deadline
and the watchdog read their limits from one `Deadline`. Its clock is ``time.monotonic()``:
the loop's clock is the same one on asyncio but not on uvloop, and the monotonic clock is
shared by every process of the host, so a deadline can be handed to a sibling worker as it is.

The phases it bounds::

    start                delay_end            drain_end               end
      |-- shutdown_delay --|-- in-flight work --|-- cancel_timeout --|-- watchdog_delay --|
      draining              closing              stopping             (watchdog fires)

The stopping phase begins when the in-flight work is done, at ``drain_end`` at the latest,
and lasts at most ``cancel_timeout`` (`stop_end`).

A forcing signal moves ``end`` to at most ``cancel_timeout`` from now, and the two earlier
marks collapse onto "now": the remaining waits are skipped, and cancellation still gets its
budget. A sibling's deadline can only move ``end`` earlier, never later.
"""

from __future__ import annotations

import time

__all__ = ["Deadline"]


class Deadline:
    """The limits of one shutdown, all in ``time.monotonic()`` seconds.

    Example::

        deadline = Deadline(grace_period=25.0, shutdown_delay=5.0, cancel_timeout=5.0)
        await wait_until(drained, deadline.drain_end)   # every phase asks it "until when"

    Only the shutdown that owns it moves it (`force`, `tighten`); everybody else reads it.
    """

    __slots__ = ("_cancel_timeout", "_delay_end", "end", "forced", "start")

    def __init__(
        self,
        *,
        grace_period: float,
        shutdown_delay: float,
        cancel_timeout: float,
        start: float | None = None,
    ) -> None:
        self.start = time.monotonic() if start is None else start
        self.end = self.start + grace_period
        self._cancel_timeout = cancel_timeout
        self._delay_end = self.start + shutdown_delay
        self.forced = False

    def __repr__(self) -> str:
        state = " forced" if self.forced else ""
        return f"<Deadline{state} remaining={self.remaining():.3f}>"

    @property
    def delay_end(self) -> float:
        """When the draining phase (the shutdown delay) ends and closing begins."""
        return min(self._delay_end, self.drain_end)

    @property
    def drain_end(self) -> float:
        """When in-flight requests and websockets have had their share: stopping begins."""
        if self.forced:
            return self.start  # already past: forced shutdowns skip the waits
        return max(self.start, self.end - self._cancel_timeout)

    def stop_end(self, now: float | None = None) -> float:
        """When the stopping phase, beginning *now*, must be over: ``cancel_timeout`` later,
        or at `end` if that comes first. Tasks get their cancel budget, not the whole rest
        of a grace period that the drain did not need."""
        now = time.monotonic() if now is None else now
        return min(self.end, now + self._cancel_timeout)

    def remaining(self, now: float | None = None) -> float:
        """Seconds left before `end`, never negative."""
        return max(0.0, self.end - (time.monotonic() if now is None else now))

    def force(self, now: float | None = None) -> None:
        """Skip the remaining waits, and keep at most ``cancel_timeout`` for cancellation."""
        now = time.monotonic() if now is None else now
        self.forced = True
        self.end = min(self.end, now + self._cancel_timeout)

    def tighten(self, end: float) -> bool:
        """Adopt *end* if it is earlier (a sibling began first); return whether it moved."""
        if end < self.end:
            self.end = max(end, self.start)
            return True
        return False
