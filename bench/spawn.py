"""`spawn()` against `asyncio.create_task` and aiojobs `spawn`: time and memory per task.

Target: spawn within 1.5x of create_task in both. Memory is what tracemalloc sees allocated
and still alive per task (task, coroutine, and the tracking record), after collection.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
import tracemalloc
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiojobs
from starlette.applications import Starlette

from asgi_supervisor import Supervisor, SupervisorMiddleware
from asgi_supervisor.testing import LifespanManager
from bench._harness import Summary, print_table

Spawner = Callable[[], Awaitable[Any]]


async def parked() -> None:
    await asyncio.sleep(3600)


async def _per_task(spawn: Spawner, n: int) -> tuple[float, float]:
    """Seconds and bytes per task for *n* calls of *spawn*."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    handles = [await spawn() for _ in range(n)]
    elapsed = time.perf_counter() - started
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    for handle in handles:
        handle.cancel() if hasattr(handle, "cancel") else None
    return elapsed / n * 1e6, (after - before) / n


async def _time_only(spawn: Spawner, n: int) -> float:
    gc.collect()
    started = time.perf_counter()
    handles = [await spawn() for _ in range(n)]
    elapsed = time.perf_counter() - started
    for handle in handles:
        handle.cancel() if hasattr(handle, "cancel") else None
    await asyncio.sleep(0)
    return elapsed / n * 1e6


async def measure(n: int, repeats: int) -> tuple[dict[str, Summary], dict[str, float]]:
    """Interleaved times (us per task, without tracing) and memory (bytes per task)."""
    supervisor = Supervisor(
        handle_signals=False, watchdog=False, grace_period=600, cancel_timeout=300
    )
    scheduler: Any = aiojobs.Scheduler(limit=None, pending_limit=0, close_timeout=600)

    async def create_task() -> Any:
        return asyncio.create_task(parked())

    async def spawn() -> Any:
        return supervisor.spawn(parked)

    async def aiojobs_spawn() -> Any:
        return await scheduler.spawn(parked())

    variants: dict[str, Spawner] = {
        "asyncio.create_task": create_task,
        "asgi-supervisor spawn()": spawn,
        "aiojobs Scheduler.spawn()": aiojobs_spawn,
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    memory: dict[str, float] = {}
    async with LifespanManager(SupervisorMiddleware(Starlette(), supervisor=supervisor)):
        for name, run in variants.items():
            memory[name] = (await _per_task(run, n))[1]
            await asyncio.sleep(0)
        for _ in range(repeats):
            for name, run in variants.items():
                times[name].append(await _time_only(run, n))
        await supervisor.drain()
    await scheduler.close()
    return {name: Summary(name, tuple(values)) for name, values in times.items()}, memory


def main(argv: Sequence[str] = ()) -> int:
    n, repeats = (50, 1) if "--quick" in argv else (20_000, 7)
    times, memory = asyncio.run(measure(n, repeats))
    rows = list(times.values())
    baseline = times["asyncio.create_task"]
    print_table(f"Starting {n:,} tasks (us per task)", "us", rows, baseline)
    print(f"\nMemory per task, alive (bytes, tracemalloc, {n:,} tasks)")
    base_memory = memory["asyncio.create_task"]
    for name, value in memory.items():
        print(f"  {name:<34}{value:>10.0f}  {value / base_memory:>15.3f}x")
    spawn_time = times["asgi-supervisor spawn()"].median / baseline.median
    spawn_memory = memory["asgi-supervisor spawn()"] / base_memory
    met = spawn_time <= 1.5 and spawn_memory <= 1.5
    print(
        f"  target <= 1.5x create_task in time ({spawn_time:.2f}x) and memory "
        f"({spawn_memory:.2f}x): {'met' if met else 'MISSED'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
