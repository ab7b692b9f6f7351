"""Workers: restart policies, backoff with jitter, a cap per period, and giving up."""

from __future__ import annotations

import ast
import asyncio
import itertools
import logging
import time
from pathlib import Path

import pytest

import asgi_supervisor
from asgi_supervisor import Restart, State, Supervisor, WorkerSnapshot, WorkerState
from asgi_supervisor._core.workers import WorkerSpec
from asgi_supervisor.testing import LifespanManager, LifespanStartupFailed
from tests._inprocess import bare_app, quiet_supervisor, wait_until


def _spec(**overrides: object) -> WorkerSpec:
    async def fn() -> None:
        return None

    values: dict[str, object] = {
        "fn": fn,
        "args": (),
        "name": "w",
        "restart": Restart.ON_FAILURE,
        "critical": False,
        "max_restarts": 5,
        "restart_period": 60.0,
        "backoff_delay": 0.1,
        "backoff_max_delay": 2.0,
    }
    values.update(overrides)
    return WorkerSpec(**values)  # type: ignore[arg-type]


def test_backoff_doubles_with_equal_jitter_and_a_ceiling() -> None:
    """Restart n waits between half and all of min(max, base * 2**(n-1))."""
    spec = _spec()
    for attempt, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (6, 2.0), (20, 2.0)]:
        delays = [spec.backoff(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > 0  # jittered, not lockstep


def test_registration_rejects_bad_workers(supervisor: Supervisor) -> None:
    """A sync worker, an unknown policy or a duplicate name is refused with the fix."""

    def sync_worker() -> None:
        return None

    async def worker() -> None:
        return None

    with pytest.raises(TypeError, match=r"is not an async function; define it with `async def`"):
        supervisor.add_worker(sync_worker)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"restart='sometimes' is not a restart policy; use one of"
    ):
        supervisor.add_worker(worker, restart="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"max_restarts=-1 must be 0 or more"):
        supervisor.add_worker(worker, max_restarts=-1)
    supervisor.add_worker(worker)
    with pytest.raises(
        ValueError, match=r"A worker named '.*worker' exists; pass a distinct name="
    ):
        supervisor.add_worker(worker)


async def test_crashing_worker_restarts_with_backoff_then_gives_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A crash loop is restarted with growing delays, then given up and logged."""
    supervisor = quiet_supervisor()
    starts: list[float] = []
    gave_up = asyncio.Event()

    async def crashes() -> None:
        starts.append(time.monotonic())
        await asyncio.sleep(0)
        if len(starts) == 4:
            gave_up.set()
        raise RuntimeError(f"crash {len(starts)}")

    supervisor.add_worker(crashes, name="crashes", max_restarts=3, backoff_delay=0.05)
    caplog.set_level(logging.INFO, logger="asgi_supervisor")
    async with LifespanManager(bare_app(supervisor)):
        await asyncio.wait_for(gave_up.wait(), 5)
        await wait_until(lambda: supervisor.workers()[0].state is WorkerState.FAILED)
        assert supervisor.workers() == (
            WorkerSnapshot(
                name="crashes",
                state=WorkerState.FAILED,
                restarts=3,
                last_error="RuntimeError: crash 4",
            ),
        )
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert len(starts) == 4
    assert gaps[0] >= 0.025
    assert gaps[1] >= 0.05
    assert gaps[2] >= 0.1
    assert "worker 'crashes' gave up" in caplog.text
    assert caplog.text.count("worker 'crashes' crashed") == 4


async def test_restart_never_gives_up_at_once_and_critical_fails_readiness() -> None:
    """A critical worker with restart='never' that crashes makes the supervisor unhealthy."""
    supervisor = quiet_supervisor()
    crashed = asyncio.Event()

    async def fails_later() -> None:
        await asyncio.sleep(0.01)
        crashed.set()
        raise ValueError("db gone")

    supervisor.add_worker(fails_later, name="consumer", restart="never", critical=True)
    async with LifespanManager(bare_app(supervisor)):
        await asyncio.wait_for(crashed.wait(), 5)
        await wait_until(supervisor.failures)
        assert supervisor.failures() == {"consumer": "critical worker 'consumer' gave up"}
        assert supervisor.workers()[0].restarts == 0
        assert supervisor.state is State.READY


async def test_critical_failure_can_shut_down() -> None:
    """With on_critical_failure='shutdown' a critical worker giving up starts draining."""
    supervisor = Supervisor(
        on_critical_failure="shutdown",
        grace_period=3.0,
        cancel_timeout=1.0,
        shutdown_delay=0.0,
        handle_signals=False,
        watchdog=False,
    )

    async def fails() -> None:
        await asyncio.sleep(0.01)
        raise ValueError("boom")

    supervisor.add_worker(fails, restart="never", critical=True)
    async with LifespanManager(bare_app(supervisor)):
        await asyncio.wait_for(supervisor.stopping.wait(), 5)
        report = await supervisor.drain()
        assert report.trigger == "critical worker failed"


async def test_restart_always_restarts_a_worker_that_returns() -> None:
    """restart='always' runs a worker again after it returns normally."""
    supervisor = quiet_supervisor()
    runs = 0
    third = asyncio.Event()

    async def returns() -> None:
        nonlocal runs
        runs += 1
        if runs == 3:
            third.set()
        await asyncio.sleep(0.001)

    supervisor.add_worker(returns, restart="always", backoff_delay=0.001, max_restarts=100)
    async with LifespanManager(bare_app(supervisor)):
        await asyncio.wait_for(third.wait(), 5)
    assert runs >= 3


async def test_on_failure_does_not_restart_a_worker_that_returns() -> None:
    """restart='on-failure' leaves a worker that returned normally alone."""
    supervisor = quiet_supervisor()
    runs = 0

    async def returns() -> None:
        nonlocal runs
        runs += 1
        await asyncio.sleep(0.001)

    supervisor.add_worker(returns)
    async with LifespanManager(bare_app(supervisor)):
        # "completed" is final: the worker's loop has returned, and nothing runs it again.
        await wait_until(lambda: supervisor.workers()[0].state is WorkerState.COMPLETED)
        assert runs == 1


async def test_worker_failing_while_starting_fails_startup() -> None:
    """A worker that raises before its first suspension makes lifespan startup fail."""
    supervisor = quiet_supervisor()

    async def broken() -> None:
        raise ConnectionError("no broker")

    supervisor.add_worker(broken, name="broken")
    with pytest.raises(LifespanStartupFailed, match=r"worker 'broken' failed while starting"):
        async with LifespanManager(bare_app(supervisor)):
            pass
    assert supervisor.state is State.FAILED
    assert supervisor.workers() == (
        WorkerSnapshot(
            name="broken",
            state=WorkerState.FAILED,
            restarts=0,
            last_error="ConnectionError: no broker",
        ),
    )


def test_a_workers_state_has_one_writer() -> None:
    """Outside the record's constructor, only the worker's own loop writes a worker's state:
    the registry and the views read it (and derive ``abandoned``), never store it."""
    package = Path(asgi_supervisor.__file__).parent
    writers = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else []
            for target in targets:
                if (
                    isinstance(target, ast.Attribute)
                    and target.attr == "state"
                    and not (isinstance(target.value, ast.Name) and target.value.id == "self")
                ):
                    writers.add(path.relative_to(package).as_posix())
    assert writers == {"_core/workers.py"}
