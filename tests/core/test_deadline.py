"""The one deadline of a shutdown: the marks of its phases, forcing, and a sibling's deadline.

Every case passes its own clock values (``start``, ``now``), so nothing here waits.
"""

from __future__ import annotations

import pytest

from asgi_supervisor._core.deadline import Deadline


def deadline(
    grace_period: float = 25.0, shutdown_delay: float = 5.0, cancel_timeout: float = 5.0
) -> Deadline:
    """A deadline whose shutdown began at 100.0 on the monotonic clock."""
    return Deadline(
        grace_period=grace_period,
        shutdown_delay=shutdown_delay,
        cancel_timeout=cancel_timeout,
        start=100.0,
    )


def test_the_marks_split_the_grace_period_into_the_phases() -> None:
    """Draining lasts the delay, closing until cancel_timeout before the end, and stopping,
    begun at any time, gets cancel_timeout or what is left before the end."""
    limits = deadline()
    assert (limits.start, limits.delay_end, limits.drain_end, limits.end) == (
        100.0,
        105.0,
        120.0,
        125.0,
    )
    assert limits.stop_end(now=106.0) == 111.0  # the drain ended early: no more than 5 s
    assert limits.stop_end(now=122.0) == 125.0  # late: only what is left
    assert limits.remaining(now=110.0) == 15.0
    assert limits.remaining(now=130.0) == 0.0


@pytest.mark.parametrize(
    ("shutdown_delay", "cancel_timeout", "delay_end", "drain_end"),
    [
        (20.0, 10.0, 115.0, 115.0),  # the delay cannot eat into the stopping phase's share
        (0.0, 30.0, 100.0, 100.0),  # cancel_timeout longer than the grace period: no drain
    ],
)
def test_marks_never_overlap_or_come_before_the_start(
    shutdown_delay: float, cancel_timeout: float, delay_end: float, drain_end: float
) -> None:
    """When the settings leave a phase no time, its mark collapses onto the one before."""
    limits = deadline(25.0, shutdown_delay, cancel_timeout)
    assert (limits.delay_end, limits.drain_end) == (delay_end, drain_end)


def test_force_skips_the_waits_and_keeps_the_cancel_budget() -> None:
    """A forcing signal at 103: draining and closing are over at once, and the end moves to
    cancel_timeout from now; forcing again later never moves it out."""
    limits = deadline()
    limits.force(now=103.0)
    assert limits.forced
    assert (limits.delay_end, limits.drain_end, limits.end) == (100.0, 100.0, 108.0)
    limits.force(now=107.0)
    assert limits.end == 108.0
    assert repr(limits).startswith("<Deadline forced remaining=")


def test_force_near_the_end_keeps_the_end() -> None:
    """Forced with less than cancel_timeout left, the shutdown still ends at its deadline."""
    limits = deadline()
    limits.force(now=123.0)
    assert limits.end == 125.0


def test_a_sibling_can_only_bring_the_end_earlier() -> None:
    """A sibling worker's earlier deadline is adopted, a later one ignored, and one before
    our own start is clamped to it."""
    limits = deadline()
    assert not limits.tighten(130.0)
    assert limits.end == 125.0
    assert limits.tighten(118.0)
    assert (limits.end, limits.drain_end) == (118.0, 113.0)
    assert limits.tighten(90.0)
    assert limits.end == 100.0
    assert repr(limits) == "<Deadline remaining=0.000>"
