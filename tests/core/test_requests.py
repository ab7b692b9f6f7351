"""The request count: its own cheap clock, and how the requests that met a shutdown ended."""

from __future__ import annotations

import asyncio
import time

from asgi_supervisor._core.requests import RequestCount


async def wait_ticked(count: RequestCount, since: float) -> None:
    """Wait, 5 s at most, until *count*'s clock has moved past *since*."""
    deadline = time.monotonic() + 5.0
    while count.now <= since:
        assert time.monotonic() < deadline, f"{count!r} did not tick within 5 s"
        await asyncio.sleep(0.01)


async def test_the_count_keeps_its_own_clock_until_stopped() -> None:
    """The clock requests read is refreshed by the count itself, from `start_clock` to
    `stop_clock`; stopping it twice is harmless."""
    count = RequestCount()
    first = count.now
    count.start_clock(asyncio.get_running_loop())
    count.start_clock(asyncio.get_running_loop())  # a second start changes nothing
    try:
        await wait_ticked(count, first)
    finally:
        count.stop_clock()
    assert count.now > first
    count.stop_clock()


def test_requests_that_met_the_shutdown_are_told_apart() -> None:
    """Drained and cancelled requests are counted apart, and each one wakes the shutdown."""
    count = RequestCount()
    woken: list[None] = []
    count.on_change = lambda: woken.append(None)
    count.ended_while_draining(cancelled=False)
    count.ended_while_draining(cancelled=True)
    count.ended_while_draining(cancelled=False)
    assert (count.drained_count, count.cancelled_count, len(woken)) == (2, 1, 3)
