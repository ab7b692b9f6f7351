"""Stopping N parked tasks: the supervisor against the raw floor, TaskGroup and aiojobs.

Every variant stops the same tasks: parked in ``asyncio.sleep(3600)``, with one ``await`` in
their cleanup. Each run gets a fresh event loop. Target: the supervisor within 1.3x of the
raw floor (cancel all, then gather), and faster than aiojobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiojobs
from starlette.applications import Starlette

from asgi_supervisor import Supervisor, SupervisorMiddleware
from asgi_supervisor.testing import LifespanManager
from bench._harness import Summary, interleave, print_table


async def parked() -> None:
    try:
        await asyncio.sleep(3600)
    finally:
        await asyncio.sleep(0)


async def raw_floor(n: int) -> float:
    tasks = [asyncio.create_task(parked()) for _ in range(n)]
    await asyncio.sleep(0)
    started = time.perf_counter()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return time.perf_counter() - started


async def task_group(n: int) -> float:
    started = 0.0

    async def run() -> None:
        async with asyncio.TaskGroup() as group:
            for _ in range(n):
                group.create_task(parked())
            await asyncio.sleep(0)
            nonlocal started
            started = time.perf_counter()
            raise asyncio.CancelledError  # cancels the group's children, then waits for them

    with_group = asyncio.create_task(run())
    with contextlib.suppress(asyncio.CancelledError):
        await with_group
    return time.perf_counter() - started


async def aiojobs_close(n: int) -> float:
    scheduler: Any = aiojobs.Scheduler(close_timeout=600, limit=None, pending_limit=0)
    for _ in range(n):
        await scheduler.spawn(parked())
    await asyncio.sleep(0)
    started = time.perf_counter()
    await scheduler.close()
    return time.perf_counter() - started


async def supervisor_drain(n: int) -> float:
    supervisor = Supervisor(
        handle_signals=False, watchdog=False, shutdown_delay=0, grace_period=600, cancel_timeout=300
    )
    async with LifespanManager(SupervisorMiddleware(Starlette(), supervisor=supervisor)):
        # Held here, as the floor holds its list: freeing 10 000 tasks and their frames is
        # the same work for every variant, and is measured by none.
        tasks = [supervisor.spawn(parked) for _ in range(n)]
        await asyncio.sleep(0)
        started = time.perf_counter()
        report = await supervisor.drain()
        elapsed = time.perf_counter() - started
        del tasks
    if report.tasks_cancelled_count != n:
        raise RuntimeError(f"the supervisor stopped {report.tasks_cancelled_count} of {n} tasks")
    return elapsed


def fresh_loop(variant: Callable[[int], Any], n: int) -> Callable[[], float]:
    def run() -> float:
        return float(asyncio.run(variant(n))) * 1e3

    return run


def measure(n: int, repeats: int) -> dict[str, Summary]:
    """Interleaved timings (ms) of every variant for *n* tasks."""
    return interleave(
        {
            "raw cancel + gather": fresh_loop(raw_floor, n),
            "asgi-supervisor drain()": fresh_loop(supervisor_drain, n),
            "asyncio.TaskGroup": fresh_loop(task_group, n),
            "aiojobs Scheduler.close()": fresh_loop(aiojobs_close, n),
        },
        repeats,
    )


def main(argv: Sequence[str] = ()) -> int:
    sizes = [(50, 1)] if "--quick" in argv else [(10_000, 5), (100_000, 3)]
    if "--small" in argv:
        sizes = [(10_000, 5)]
    for n, repeats in sizes:
        results = measure(n, repeats)
        floor = results["raw cancel + gather"]
        print_table(f"Stopping {n:,} parked tasks (ms)", "ms", list(results.values()), floor)
        supervisor = results["asgi-supervisor drain()"]
        aiojobs_result = results["aiojobs Scheduler.close()"]
        within = supervisor.median <= 1.3 * floor.median
        faster = supervisor.median < aiojobs_result.median
        print(
            f"  target <= 1.3x the floor: {'met' if within else 'MISSED'}; "
            f"faster than aiojobs: {'yes' if faster else 'NO'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
