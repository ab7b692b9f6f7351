"""The supervisor: spawning, stopping, the shutdown report, and its errors."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator

import pytest

from asgi_supervisor import NotRunningError, State, SupervisorClosedError
from asgi_supervisor.testing import LifespanManager
from tests._inprocess import bare_app, quiet_supervisor


async def test_spawned_task_exception_is_logged_and_kept() -> None:
    """A spawned task's exception is logged with its name and lands in the history."""
    supervisor = quiet_supervisor()

    async def send_email(address: str) -> None:
        await asyncio.sleep(0)
        raise ConnectionError(f"smtp refused {address}")

    async with LifespanManager(bare_app(supervisor)):
        task = supervisor.spawn(send_email, "a@example.com", name="send-email")
        await asyncio.wait({task})
        finished = supervisor._registry.history
        assert [f.name for f in finished] == ["send-email"]
        assert finished[0].ending.value == "failed"
        assert finished[0].detail == "ConnectionError: smtp refused a@example.com"
        assert supervisor.counts()["tasks"] == 0


async def test_spawned_failure_log(caplog: pytest.LogCaptureFixture) -> None:
    """The log line names the task and carries the traceback."""
    supervisor = quiet_supervisor()
    caplog.set_level(logging.ERROR, logger="asgi_supervisor")

    async def boom() -> None:
        raise KeyError("missing")

    async with LifespanManager(bare_app(supervisor)):
        await asyncio.wait({supervisor.spawn(boom(), name="boom")})
    assert "task 'boom' failed: KeyError: 'missing'" in caplog.text
    assert caplog.records[0].exc_info is not None


async def test_spawn_after_closing_raises_and_closes_the_coroutine() -> None:
    """spawn() once closing raises a clear error and never leaks an un-awaited coroutine."""
    supervisor = quiet_supervisor()
    async with LifespanManager(bare_app(supervisor)):
        await supervisor.drain()
        coro = asyncio.sleep(1)
        with pytest.raises(SupervisorClosedError, match=r"Cannot spawn: <Supervisor stopped .*"):
            supervisor.spawn(coro)
        assert coro.cr_frame is None  # type: ignore[attr-defined]  # closed: no "never awaited"
        with pytest.raises(SupervisorClosedError, match="is stopped"):
            supervisor.spawn(asyncio.sleep, 1)


async def test_spawn_rejects_what_is_not_async(supervisor: object) -> None:
    """spawn() of a plain function names what it got."""
    sup = quiet_supervisor()
    async with LifespanManager(bare_app(sup)):
        with pytest.raises(TypeError, match=r"spawn\(\) needs an async function"):
            sup.spawn(lambda: 1)  # type: ignore[arg-type, return-value]
        with pytest.raises(TypeError, match=r"spawn\(\) needs a coroutine or an async function"):
            sup.spawn(42)  # type: ignore[arg-type]


async def test_ten_thousand_spawned_tasks_are_stopped_and_nothing_leaks() -> None:
    """Draining stops 10 000 parked spawned tasks and leaves no record and no task behind."""
    supervisor = quiet_supervisor(grace_period=20.0, cancel_timeout=10.0)
    cleaned = 0

    async def parked() -> None:
        nonlocal cleaned
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0)
            cleaned += 1

    async with LifespanManager(bare_app(supervisor)):
        tasks = [supervisor.spawn(parked) for _ in range(10_000)]
        await asyncio.sleep(0)
        report = await supervisor.drain()
        assert report.tasks_cancelled_count == 10_000
        assert not report.abandoned
        assert cleaned == 10_000
        assert all(task.cancelled() for task in tasks)
        assert supervisor.counts()["tasks"] == 0
    del tasks
    gc.collect()
    leftovers = [t for t in asyncio.all_tasks() if "parked" in repr(t.get_coro())]
    assert leftovers == []


async def test_drain_report_and_idempotent_triggers(caplog: pytest.LogCaptureFixture) -> None:
    """drain() twice runs one shutdown; its report is kept and logged once."""
    supervisor = quiet_supervisor()
    caplog.set_level(logging.INFO, logger="asgi_supervisor")
    async with LifespanManager(bare_app(supervisor)):
        supervisor.spawn(asyncio.sleep, 3600, name="parked")
        first, second = await asyncio.gather(supervisor.drain(), supervisor.drain())
        assert first is second is supervisor.last_report
        assert supervisor.state is State.STOPPED
    report = first.to_dict()
    assert report["trigger"] == "api"
    assert [phase.name for phase in first.phases] == ["draining", "closing", "stopping"]
    assert report["tasks"] == {
        "finished": 0,
        "cancelled": 1,
        "failed": 0,
        "cut_short": 0,
        "abandoned": 0,
    }
    assert caplog.text.count("shutdown report") == 1


async def test_drain_before_startup_is_an_error() -> None:
    """Draining a supervisor whose lifespan never started says what to do."""
    supervisor = quiet_supervisor()
    with pytest.raises(NotRunningError, match="its lifespan is not running"):
        await supervisor.drain()


async def test_stopping_is_set_when_draining_begins() -> None:
    """Cooperative tasks see `stopping` from the first trigger, before any cancellation."""
    supervisor = quiet_supervisor(shutdown_delay=0.2)
    async with LifespanManager(bare_app(supervisor)):
        assert not supervisor.stopping.is_set()
        supervisor.begin_drain()
        assert supervisor.stopping.is_set()
        assert supervisor.state is State.DRAINING
        assert supervisor.is_draining
        await supervisor.drain()


async def test_closing_is_set_when_the_closing_phase_begins_after_the_delay() -> None:
    """`closing` is not set while draining (balancers still send requests here), and is set
    the moment closing begins: what long-lived responses wait on."""
    supervisor = quiet_supervisor(shutdown_delay=0.2)
    async with LifespanManager(bare_app(supervisor)):
        supervisor.begin_drain()
        assert supervisor.state is State.DRAINING
        assert not supervisor.closing.is_set()
        await asyncio.wait_for(supervisor.closing.wait(), 2)
        assert supervisor.state is not State.DRAINING
        await supervisor.drain()


async def test_until_closing_passes_everything_through_outside_a_lifespan() -> None:
    """Before any lifespan (a route tested without one) the source is not cut."""
    supervisor = quiet_supervisor()

    async def three() -> AsyncIterator[int]:
        for item in range(3):
            yield item

    assert [item async for item in supervisor.until_closing(three())] == [0, 1, 2]


async def test_workers_stop_in_reverse_order_before_the_app_shuts_down() -> None:
    """Workers are cancelled last-registered first, and all before the app's own shutdown."""
    supervisor = quiet_supervisor()
    order: list[str] = []

    def make(name: str):  # type: ignore[no-untyped-def]
        async def worker() -> None:
            try:
                await asyncio.sleep(3600)
            finally:
                order.append(name)

        return worker

    for name in ("first", "second", "third"):
        supervisor.add_worker(make(name), name=name)
    async with LifespanManager(bare_app(supervisor)):
        pass
    assert order == ["third", "second", "first"]


def test_repr_shows_live_state() -> None:
    """repr names the state and the counts."""
    supervisor = quiet_supervisor()
    assert repr(supervisor) == "<Supervisor starting workers=0 tasks=0 requests=0 websockets=0>"


async def test_add_worker_after_startup_is_refused() -> None:
    """Workers are registered before startup; later ones would never be supervised."""
    supervisor = quiet_supervisor()

    async def late() -> None:
        return None

    async with LifespanManager(bare_app(supervisor)):
        with pytest.raises(SupervisorClosedError, match="workers are registered before startup"):
            supervisor.add_worker(late)


async def test_supervisor_can_serve_a_second_lifespan() -> None:
    """After a full shutdown, a new lifespan starts afresh (test clients do this per test)."""
    supervisor = quiet_supervisor()
    started = 0

    async def worker() -> None:
        nonlocal started
        started += 1
        await asyncio.sleep(3600)

    supervisor.add_worker(worker)
    app = bare_app(supervisor)
    for _ in range(2):
        async with LifespanManager(app):
            assert supervisor.state.value == "ready"
        assert supervisor.state.value == "stopped"
    assert started == 2
