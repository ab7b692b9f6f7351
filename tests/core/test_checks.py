"""Readiness checks: bounded, cached, and never a task leaked per probe."""

from __future__ import annotations

import asyncio

import pytest

from asgi_supervisor._core.checks import Checks

pytestmark = pytest.mark.timeout(30)


async def test_a_check_that_ignores_cancellation_leaks_one_task_not_one_per_probe() -> None:
    """1. a check swallows the cancel at its timeout; 2. ten probes follow; 3. still one run
    of it is alive, and every probe reports it failing."""
    release = asyncio.Event()
    runs = 0

    async def deaf() -> bool:
        nonlocal runs
        runs += 1
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                continue
        return True

    checks = Checks(cache_period=0.0)
    checks.add("deaf", deaf, timeout=0.05, critical=True)
    try:
        for _ in range(10):
            (result,) = await checks.results()
            assert not result.ok
        assert runs == 1
        alive = [t for t in asyncio.all_tasks() if "deaf" in repr(t.get_coro())]
        assert len(alive) == 1
        assert result.error is not None
        assert "still running" in result.error
    finally:
        release.set()
        for task in [t for t in asyncio.all_tasks() if "deaf" in repr(t.get_coro())]:
            task.cancel()  # wakes it: it sees `release` and returns
            await asyncio.wait({task}, timeout=1)
    (result,) = await checks.results()
    assert result.ok  # once it ended, the check runs again
    assert runs == 2
