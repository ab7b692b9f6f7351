"""What asking asyncio's call graph costs (Python 3.14 and later), against the walk by hand.

Two measurements, each side by side in one run:

1. per task, 10 000 tasks parked three coroutines deep: the walk by hand down ``cr_await``
   (what finds request tasks on every Python), `asyncio.capture_call_graph`, and
   `stacks.waiting` (what a /tasks row costs: the graph, bounded, and the user frame);
2. the bottom task of layered gathers (each of L layers two tasks gathering the two below):
   `asyncio.capture_call_graph` builds a node per path up the awaited-by edges, 2**(L+1) - 2
   of them, where `stacks.waiting` counts at most `GRAPH_LIMIT` nodes and then walks by hand.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from asgi_supervisor._core import stacks
from bench._harness import Summary, interleave, print_table


async def parked() -> None:
    await asyncio.sleep(3600)


async def middle() -> None:
    await parked()


async def outer() -> None:
    await middle()


async def gathers(below: list[asyncio.Future[Any]]) -> None:
    await asyncio.gather(*below)


def per_task(tasks: list[asyncio.Task[None]], ask: Callable[[Any], object]) -> Callable[[], float]:
    def run() -> float:
        started = time.perf_counter()
        for task in tasks:
            ask(task)
        return (time.perf_counter() - started) / len(tasks) * 1e6

    return run


def once(task: asyncio.Task[None], ask: Callable[[Any], object]) -> Callable[[], float]:
    def run() -> float:
        started = time.perf_counter()
        ask(task)
        return (time.perf_counter() - started) * 1e3

    return run


async def measure(
    n: int, levels: Sequence[int], repeats: int
) -> list[tuple[str, dict[str, Summary]]]:
    capture = asyncio.capture_call_graph  # type: ignore[attr-defined, unused-ignore]
    tasks = [asyncio.create_task(outer()) for _ in range(n)]
    await asyncio.sleep(0)
    tables = [
        (
            f"per task, {n:,} tasks three coroutines deep (µs per task)",
            interleave(
                {
                    "walk by hand (cr_await)": per_task(
                        tasks, lambda t: stacks._walk(t.get_coro())
                    ),
                    "asyncio.capture_call_graph": per_task(tasks, capture),
                    "stacks.waiting (a /tasks row)": per_task(tasks, stacks.waiting),
                },
                repeats,
            ),
        )
    ]
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)
    for depth in levels:
        bottom = asyncio.get_running_loop().create_future()
        layer: list[asyncio.Future[Any]] = [bottom]
        layered: list[asyncio.Task[None]] = []
        for _ in range(depth):
            layer = [asyncio.create_task(gathers(layer)) for _ in range(2)]
            layered.extend(t for t in layer if isinstance(t, asyncio.Task))
        await asyncio.sleep(0)
        first = layered[0]  # awaited by every task above it, along 2**depth - 2 paths
        tables.append(
            (
                f"the bottom task of {depth} layers of two gathering tasks (ms)",
                interleave(
                    {
                        "asyncio.capture_call_graph": once(first, capture),
                        "stacks.waiting": once(first, stacks.waiting),
                    },
                    repeats,
                ),
            )
        )
        bottom.cancel()
        await asyncio.wait(layered)
    return tables


def main(argv: Sequence[str] = ()) -> int:
    if sys.version_info < (3, 14):
        print("call graph: asyncio.capture_call_graph is new in Python 3.14; nothing to measure")
        return 0
    n, levels, repeats = (100, (4,), 1) if "--quick" in argv else (10_000, (8, 10, 12), 5)
    for title, results in asyncio.run(measure(n, levels, repeats)):
        rows = list(results.values())
        print_table(title, "µs" if "µs" in title else "ms", rows, rows[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
