"""The benchmarks run (tiny sizes, one repetition) and produce well-formed results.

No timing is asserted here: figures belong to `make bench`, on a quiet machine.
"""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest

from bench import call_graph, overhead, spawn, stop_tasks, tasks_endpoint
from bench._harness import Summary, paired_delta, ratio


def test_harness_ratios() -> None:
    """Ratios and paired deltas come from the samples given."""
    a, b = Summary("a", (2.0, 4.0, 6.0)), Summary("b", (1.0, 2.0, 3.0))
    assert (a.min, a.median, a.max) == (2.0, 4.0, 6.0)
    assert ratio(a, b) == 2.0
    assert paired_delta(a, b) == 2.0


def test_overhead_runs() -> None:
    """Every per-request variant produces positive timings."""
    results = asyncio.run(overhead.measure(calls=20, repeats=1))
    assert len(results) == 7
    assert all(summary.min > 0 for summary in results.values())


def test_overhead_scrape_runs() -> None:
    """Scraping /metrics is timed for one process and for a process group."""
    results = asyncio.run(overhead.measure_scrape(calls=2, repeats=1))
    assert set(results) == {"scrape /metrics, one process", "scrape /metrics, group of 4"}
    assert all(summary.min > 0 for summary in results.values())


def test_overhead_loop_lag_runs() -> None:
    """The loop-lag variants produce positive timings and leave no watcher thread behind."""
    results = asyncio.run(overhead.measure_loop_lag(calls=20, repeats=1))
    assert list(results) == [
        "loop-lag detection off",
        "loop-lag 0.5 s (default)",
        "loop-lag 0.01 s (the minimum)",
    ]
    assert all(summary.min > 0 for summary in results.values())
    assert "asgi-supervisor-loop-lag" not in {thread.name for thread in threading.enumerate()}


def test_stop_tasks_runs() -> None:
    """Every stopping variant stops the tasks and reports a duration."""
    results = stop_tasks.measure(n=50, repeats=1)
    assert set(results) == {
        "raw cancel + gather",
        "asgi-supervisor drain()",
        "asyncio.TaskGroup",
        "aiojobs Scheduler.close()",
    }
    assert all(summary.min > 0 for summary in results.values())


def test_spawn_runs() -> None:
    """Time and memory per task are measured for all three spawners."""
    times, memory = asyncio.run(spawn.measure(n=50, repeats=1))
    assert (
        set(times)
        == set(memory)
        == {
            "asyncio.create_task",
            "asgi-supervisor spawn()",
            "aiojobs Scheduler.spawn()",
        }
    )
    assert all(value > 0 for value in memory.values())


def test_tasks_endpoint_runs() -> None:
    """/tasks answers in every variant with a body."""
    results = asyncio.run(tasks_endpoint.measure(n=50, repeats=1))
    assert len(results) == 5
    assert all(summary.min > 0 for summary in results.values())


@pytest.mark.skipif(sys.version_info < (3, 14), reason="asyncio.capture_call_graph is new in 3.14")
def test_call_graph_runs() -> None:
    """The call graph's costs are measured per task and for layered gathers."""
    tables = asyncio.run(call_graph.measure(n=20, levels=(3,), repeats=1))
    assert [len(results) for _, results in tables] == [3, 2]
    assert all(summary.min > 0 for _, results in tables for summary in results.values())
