"""The registry of tracked work and its bounded history."""

from __future__ import annotations

import asyncio

from asgi_supervisor._core.registry import Ending, Kind, Registry, TaskRecord


async def _record(registry: Registry, coro_task: asyncio.Task[None], kind: Kind) -> TaskRecord:
    return registry.track(coro_task, registry.new_record("job", kind))


async def test_endings_are_classified_and_kept_in_order() -> None:
    """Completed, failed and cancelled tasks leave the registry and enter the history."""
    registry = Registry(history_size=10)

    async def ok() -> None:
        return None

    async def bad() -> None:
        raise LookupError("no such row")

    tasks = [asyncio.create_task(ok()), asyncio.create_task(bad())]
    cancelled = asyncio.create_task(asyncio.sleep(3600))
    for task in [*tasks, cancelled]:
        await _record(registry, task, Kind.TASK)
    await asyncio.sleep(0)
    cancelled.cancel("because the test said so")
    await asyncio.wait([*tasks, cancelled])
    await asyncio.sleep(0)
    assert registry.records == {}
    endings = [(f.ending, f.detail) for f in registry.history]
    assert endings == [
        (Ending.COMPLETED, None),
        (Ending.FAILED, "LookupError: no such row"),
        (Ending.CANCELLED, "because the test said so"),
    ]
    assert registry.history[1].to_dict()["ending"] == "failed"


async def test_history_is_bounded() -> None:
    """Only the last `history_size` endings are kept."""
    registry = Registry(history_size=3)
    for _ in range(5):
        task = asyncio.create_task(asyncio.sleep(0))
        await _record(registry, task, Kind.TASK)
        await task
        await asyncio.sleep(0)
    assert [f.id for f in registry.history] == [3, 4, 5]


async def test_counts_separate_workers_from_spawned_tasks() -> None:
    """`counts()` reports workers, spawned tasks, requests and websockets apart."""
    registry = Registry(history_size=0)
    worker = asyncio.create_task(asyncio.sleep(3600))
    spawned = asyncio.create_task(asyncio.sleep(3600))
    await _record(registry, worker, Kind.WORKER)
    await _record(registry, spawned, Kind.TASK)
    assert registry.counts() == {"requests": 0, "websockets": 0, "tasks": 1, "workers": 1}
    for task in (worker, spawned):
        task.cancel()
    await asyncio.wait({worker, spawned})
    await asyncio.sleep(0)
    assert len(registry.history) == 0
    assert registry.counts(requests=2) == {
        "requests": 2,
        "websockets": 0,
        "tasks": 0,
        "workers": 0,
    }


async def test_endings_are_tallied_from_the_first_trigger_on() -> None:
    """Only endings after `begin_tally` count for the report; before it, history only."""
    registry = Registry(history_size=10)
    early = asyncio.create_task(asyncio.sleep(0))
    await _record(registry, early, Kind.WORKER)
    await asyncio.wait({early})
    await asyncio.sleep(0)
    registry.begin_tally()
    late = asyncio.create_task(asyncio.sleep(0))
    await _record(registry, late, Kind.WORKER)
    await asyncio.wait({late})
    await asyncio.sleep(0)
    assert registry.endings == {Ending.COMPLETED: 1, Ending.FAILED: 0, Ending.CANCELLED: 0}
    assert len(registry.history) == 2
