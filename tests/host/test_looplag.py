"""Loop-lag detection names the code that holds the event loop, once per stall, and counts it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from collections.abc import AsyncIterator, Iterator

import pytest
from blockbuster import BlockBuster
from starlette.applications import Starlette

from asgi_supervisor import Config, LoopLagStats, SupervisorMiddleware
from asgi_supervisor._host.looplag import LoopLagMonitor
from asgi_supervisor.testing import LifespanManager
from tests._inprocess import bare_app, quiet_supervisor, wait_until
from tests.apps import hold_the_loop, line_of

THREAD_NAME = "asgi-supervisor-loop-lag"


@pytest.fixture(autouse=True)
def unwrapped_sleep(blockbuster: BlockBuster | None) -> Iterator[None]:
    """These tests hold the loop on purpose, with ``time.sleep`` (`hold_the_loop`), and check
    that the frame holding it is named: blockbuster's wrapper around ``time.sleep`` would be
    that frame. So ``time.sleep`` is unwrapped, in this module alone."""
    if blockbuster is None:
        yield
        return
    sleep = blockbuster.functions["time.sleep"]
    sleep.deactivate()
    try:
        yield
    finally:
        sleep.activate()


def stall_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The records loop-lag detection logged about `hold_the_loop`: a stall of this shared
    machine's own (the whole process descheduled) names the loop's `select`, not it."""
    return [
        record
        for record in caplog.records
        if record.getMessage().startswith("event loop")
        and "in hold_the_loop" in str(getattr(record, "where", ""))
    ]


def ended(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    """The records among *records* that say a stall ended."""
    return [r for r in records if r.getMessage().startswith("event loop was blocked")]


async def wait_for_ends(caplog: pytest.LogCaptureFixture, count: int) -> None:
    """Wait, at most 10 s, until *count* stalls of `hold_the_loop` have been logged as ended."""
    await wait_until(lambda: len(ended(stall_records(caplog))) >= count, within=10.0)


async def test_a_blocked_loop_is_logged_with_the_function_holding_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """1. A loop blocked in `time.sleep` for 1.2 s with a 0.2 s threshold; 2. one record while
    it is stuck names the function, its file:line and the task; 3. one record when it ends
    gives the duration; 4. the stats count the stall."""
    caplog.set_level(logging.WARNING, logger="asgi_supervisor")
    monitor = LoopLagMonitor(0.2)
    monitor.start(asyncio.get_running_loop())
    try:
        await asyncio.sleep(0.3)  # a healthy moment first: no record for it
        hold_the_loop(1.2)
        await wait_for_ends(caplog, 1)
    finally:
        monitor.stop()
        await monitor.wait_finished()

    expected = f"tests/apps.py:{line_of(hold_the_loop, 'time.sleep(')} in hold_the_loop"
    started, end = stall_records(caplog)
    assert started.levelno == end.levelno == logging.WARNING
    assert "event loop blocked for" in started.getMessage()
    assert expected in started.getMessage()
    assert started.where.endswith(expected)  # type: ignore[attr-defined]
    assert started.function == "hold_the_loop"  # type: ignore[attr-defined]
    assert "test_a_blocked_loop_is_logged" in started.task  # type: ignore[attr-defined]
    assert any("hold_the_loop" in line for line in started.stack)  # type: ignore[attr-defined]
    assert "event loop was blocked for" in end.getMessage()
    assert expected in end.getMessage()
    duration: float = end.loop_stall_duration  # type: ignore[attr-defined]
    # A beat falls due at most threshold/2 after the block began, so it runs that much late.
    assert 1.2 - 0.1 <= duration <= 10.0
    stats = monitor.stats()
    assert stats.threshold == 0.2
    assert stats.stall_count == len(ended(caplog.records)) >= 1
    assert stats.longest_stall_duration >= duration
    assert stats.stalled_duration >= duration


async def test_a_stall_names_the_tasks_awaiting_the_one_that_holds_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A task awaited by this test's task holds the loop: the record while it is stuck names
    that task, and from Python 3.14 on the test's task awaiting it (in the message and in
    ``awaited_by``); before 3.14 who awaits a task is unknown, and ``awaited_by`` is None."""
    caplog.set_level(logging.WARNING, logger="asgi_supervisor")

    async def blocks() -> None:
        hold_the_loop(1.2)

    monitor = LoopLagMonitor(0.2)
    monitor.start(asyncio.get_running_loop())
    try:
        await asyncio.create_task(blocks(), name="the blocker")
        await wait_for_ends(caplog, 1)
    finally:
        monitor.stop()
        await monitor.wait_finished()
    started = stall_records(caplog)[0]
    assert started.task.startswith("'the blocker' (")  # type: ignore[attr-defined]
    current = asyncio.current_task()
    assert current is not None
    awaiter = f"{current.get_name()!r} ({current.get_coro().__qualname__})"  # type: ignore[union-attr]
    if sys.version_info >= (3, 14):
        assert started.awaited_by == [awaiter]  # type: ignore[attr-defined]
        assert started.getMessage().endswith(f", awaited by {awaiter}")
    else:
        assert started.awaited_by is None  # type: ignore[attr-defined]
        assert "awaited by" not in started.getMessage()


async def test_a_healthy_loop_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """A loop that keeps turning (awaiting, never blocking) for three thresholds logs no stall."""
    caplog.set_level(logging.WARNING, logger="asgi_supervisor")
    monitor = LoopLagMonitor(0.5)
    monitor.start(asyncio.get_running_loop())
    try:
        # The loop under test, not a pause: 1.5 s of turning every 20 ms, watched all along.
        for _ in range(75):
            await asyncio.sleep(0.02)
    finally:
        monitor.stop()
        await monitor.wait_finished()
    assert [r.getMessage() for r in caplog.records] == []
    assert monitor.stats() == LoopLagStats(threshold=0.5)


async def test_each_stall_is_logged_once_however_long(caplog: pytest.LogCaptureFixture) -> None:
    """Two separate stalls of 0.8 s with a 0.2 s threshold: two records each, both counted."""
    caplog.set_level(logging.WARNING, logger="asgi_supervisor")
    monitor = LoopLagMonitor(0.2)
    monitor.start(asyncio.get_running_loop())
    try:
        hold_the_loop(0.8)
        await wait_for_ends(caplog, 1)
        hold_the_loop(0.8)
        await wait_for_ends(caplog, 2)
    finally:
        monitor.stop()
        await monitor.wait_finished()
    assert [r.getMessage().split(" for ")[0] for r in stall_records(caplog)] == [
        "event loop blocked",
        "event loop was blocked",
        "event loop blocked",
        "event loop was blocked",
    ]
    assert monitor.stats().stall_count == len(ended(caplog.records)) >= 2


async def test_the_thread_runs_from_lifespan_startup_to_the_app_s_shutdown() -> None:
    """The watcher thread starts with the lifespan, is stopped before the app's own shutdown
    runs, and has ended before the server hears the shutdown is complete; a daemon, it could
    never keep the process alive."""
    supervisor = quiet_supervisor(loop_lag_threshold=0.1)
    running_in_app_shutdown: list[bool] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        running_in_app_shutdown.append(supervisor._loop_lag.running)

    app = SupervisorMiddleware(Starlette(lifespan=lifespan), supervisor=supervisor)
    assert not supervisor._loop_lag.running
    async with LifespanManager(app):
        assert supervisor._loop_lag.running
        (thread,) = [t for t in threading.enumerate() if t.name == THREAD_NAME]
        assert thread.daemon
    assert running_in_app_shutdown == [False]
    await asyncio.to_thread(thread.join, 5)  # it had ended its work; now it has exited
    assert not thread.is_alive()


async def test_stopping_never_waits_for_the_thread(caplog: pytest.LogCaptureFixture) -> None:
    """1. The watcher thread is held inside a log handler; 2. `stop`, on the loop, returns
    at once (under blockbuster a join there fails the test); 3. `wait_finished` returns once
    the thread, released, has logged the stall's end and counted it."""
    caplog.set_level(logging.WARNING, logger="asgi_supervisor")
    in_handler, release = threading.Event(), threading.Event()

    class HoldsTheThread(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if threading.current_thread().name == THREAD_NAME:
                in_handler.set()
                release.wait(10)

    handler = HoldsTheThread()
    logger = logging.getLogger("asgi_supervisor")
    logger.addHandler(handler)
    monitor = LoopLagMonitor(0.1)
    monitor.start(asyncio.get_running_loop())
    try:
        (thread,) = [t for t in threading.enumerate() if t.name == THREAD_NAME]
        for _ in range(20):  # one stall is enough, unless this shared machine stalls us
            hold_the_loop(0.3)  # the thread logs this stall, and is held in the handler
            await asyncio.sleep(0)
            if in_handler.is_set():
                break
        assert in_handler.is_set(), "the watcher thread logged no stall in 20 tries"
        monitor.stop()
        assert thread.is_alive()
        assert not monitor.running
        release.set()
        await monitor.wait_finished()
        assert monitor.stats().stall_count == 1
        await asyncio.to_thread(thread.join, 5)
        assert not thread.is_alive()
    finally:
        release.set()
        logger.removeHandler(handler)


async def test_off_means_no_thread() -> None:
    """`loop_lag_threshold=None` starts nothing."""
    supervisor = quiet_supervisor(loop_lag_threshold=None)
    async with LifespanManager(bare_app(supervisor)):
        assert not supervisor._loop_lag.running
        assert THREAD_NAME not in {t.name for t in threading.enumerate()}
    assert supervisor.loop_lag == LoopLagStats(threshold=None)


def test_threshold_setting_is_validated_and_read_from_the_environment() -> None:
    """The setting defaults to 0.5 s, refuses tiny values, and `none` in the environment
    turns it off."""
    assert Config().loop_lag_threshold == 0.5
    env = {"ASGI_SUPERVISOR_LOOP_LAG_THRESHOLD": "0.2"}
    assert Config.from_env(env).loop_lag_threshold == 0.2
    off = {"ASGI_SUPERVISOR_LOOP_LAG_THRESHOLD": "none"}
    assert Config.from_env(off).loop_lag_threshold is None
    with pytest.raises(ValueError, match=r"loop_lag_threshold=0.001 is below 0.01 s"):
        Config(loop_lag_threshold=0.001)
    with pytest.raises(ValueError, match=r"ASGI_SUPERVISOR_LOOP_LAG_THRESHOLD='fast' is not"):
        Config.from_env({"ASGI_SUPERVISOR_LOOP_LAG_THRESHOLD": "fast"})
