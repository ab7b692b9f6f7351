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
    """Drained, cancelled and cut requests are counted apart, each leaves the in-flight
    count and wakes the shutdown, and the cut ones are named, up to a bound."""
    count = RequestCount()
    count.in_flight = 25
    woken: list[None] = []
    count.on_change = lambda: woken.append(None)
    count.left_while_draining()
    count.left_while_draining(cancelled=True)
    count.left_while_draining()
    for n in range(22):
        count.left_while_draining(cut=f"GET /stream/{n}")
    assert (count.drained_count, count.cancelled_count, count.cut_count) == (2, 1, 22)
    assert count.cut_names == [f"GET /stream/{n}" for n in range(20)]
    assert (count.in_flight, len(woken)) == (0, 25)
