"""The shutdown sequence in-process: bounded waits, and a report that matches what happened."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from asgi_supervisor import Supervisor, SupervisorMiddleware
from asgi_supervisor.testing import LifespanManager
from tests._inprocess import bare_app, client, quiet_supervisor

pytestmark = pytest.mark.timeout(30)


class SlowCloseServer:
    """Plays the server for one websocket whose close frame takes *close_delay* to go out
    (None: never, like a silent client under ``uvicorn --ws websockets``)."""

    def __init__(self, app: Any, close_delay: float | None) -> None:
        self.app = app
        self.close_delay = close_delay
        self.to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.accepted = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def send(self, message: dict[str, Any]) -> None:
        if message["type"] == "websocket.accept":
            self.accepted.set()
        elif message["type"] == "websocket.close":
            if self.close_delay is None:
                await asyncio.Event().wait()
            else:
                await asyncio.sleep(self.close_delay)
            await self.to_app.put({"type": "websocket.disconnect", "code": 1000})

    async def connect(self) -> None:
        scope = {"type": "websocket", "path": "/ws", "headers": [], "query_string": b""}
        self.task = asyncio.create_task(self.app(scope, self.to_app.get, self.send))
        await self.to_app.put({"type": "websocket.connect"})
        await self.accepted.wait()


def websocket_app(supervisor: Supervisor) -> SupervisorMiddleware:
    async def listen(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.receive()  # parks until the disconnect

    routes = [WebSocketRoute("/ws", listen)]
    return SupervisorMiddleware(Starlette(routes=routes), supervisor=supervisor)


async def test_a_close_that_never_goes_out_cannot_hang_a_shutdown_with_no_drain_budget(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """1. in Kubernetes, shutdown_delay=None takes what grace_period leaves once
    cancel_timeout is kept, so the drain budget is 0 (the startup warns, see test_budget);
    2. a websocket's close frame never goes out; 3. the shutdown still ends at its deadline."""
    supervisor = quiet_supervisor(grace_period=1.5, shutdown_delay=None, cancel_timeout=0.5)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    assert supervisor.config.effective_shutdown_delay == 1.0
    app = websocket_app(supervisor)
    async with LifespanManager(app):
        server = SlowCloseServer(app, close_delay=None)
        await server.connect()
        report = await asyncio.wait_for(supervisor.drain(), 5)
    assert report.duration < 2.0
    assert report.websockets_closed == {}  # the client never got our frame
    assert report.websockets_cancelled_count == 1
    assert report.websockets_unclosed_count == 1
    assert report.reasons == ("1 websocket cancelled before its close frame went out",)


async def test_a_close_slower_than_a_second_is_counted() -> None:
    """A close frame that takes 1.2 s to go out still counts as closed with our code."""
    supervisor = quiet_supervisor(grace_period=4.0, cancel_timeout=1.0)
    app = websocket_app(supervisor)
    async with LifespanManager(app):
        server = SlowCloseServer(app, close_delay=1.2)
        await server.connect()
        report = await supervisor.drain()
    assert report.websockets_closed == {1012: 1}
    assert report.websockets_cancelled_count == 0
    assert report.websockets_unclosed_count == 0


async def test_workers_that_stop_by_themselves_while_draining_count_as_finished() -> None:
    """A cooperative worker that returns when `stopping` is set is counted, as finished."""
    supervisor = quiet_supervisor(shutdown_delay=0.2)

    async def cooperative() -> None:
        await supervisor.stopping.wait()

    supervisor.add_worker(cooperative, name="cooperative")
    async with LifespanManager(bare_app(supervisor)):
        report = await supervisor.drain()
    assert (report.tasks_finished_count, report.tasks_cancelled_count) == (1, 0)
    assert report.clean


async def test_requests_and_websockets_are_not_counted_as_tasks() -> None:
    """Only workers and spawned tasks are tasks in the report."""
    supervisor = quiet_supervisor(grace_period=1.5, cancel_timeout=0.5)
    app = websocket_app(supervisor)
    async with LifespanManager(app):
        server = SlowCloseServer(app, close_delay=None)
        await server.connect()
        supervisor.spawn(asyncio.sleep, 3600, name="parked")
        report = await supervisor.drain()
    tasks = report.to_dict()["tasks"]
    assert tasks == {"finished": 0, "cancelled": 1, "failed": 0, "cut_short": 0, "abandoned": 0}


async def test_cleanup_needing_most_of_cancel_timeout_finishes_and_the_report_is_clean() -> None:
    """A worker whose `finally` needs 60 % of cancel_timeout is not cut: the report is clean."""
    supervisor = quiet_supervisor(cancel_timeout=1.0)
    cleaned = asyncio.Event()

    async def slow_cleanup() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.6)
            cleaned.set()

    supervisor.add_worker(slow_cleanup, name="slow-cleanup")
    async with LifespanManager(bare_app(supervisor)):
        report = await supervisor.drain()
    assert cleaned.is_set()
    assert report.clean
    assert report.cut_short == ()


async def test_cleanup_cut_by_the_second_cancel_is_reported() -> None:
    """A cleanup still running at the second cancel is named, and the report is not clean."""
    supervisor = quiet_supervisor(cancel_timeout=0.5)

    async def endless_cleanup() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(3600)

    supervisor.add_worker(endless_cleanup, name="endless-cleanup")
    async with LifespanManager(bare_app(supervisor)):
        report = await supervisor.drain()
    assert report.cut_short == ("worker endless-cleanup",)
    assert not report.clean
    assert report.to_dict()["tasks"] == {
        "finished": 0,
        "cancelled": 1,
        "failed": 0,
        "cut_short": 1,
        "abandoned": 0,
    }


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager task factories are 3.12+")
async def test_a_worker_crashing_after_its_first_suspension_is_restarted_under_eager_tasks() -> (
    None
):
    """With an eager task factory, a crash after the first real suspension is a crash to
    restart, not a failed startup."""
    loop = asyncio.get_running_loop()
    loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined,unused-ignore]
    supervisor = quiet_supervisor()
    runs = 0
    restarted = asyncio.Event()

    async def crashes_once() -> None:
        nonlocal runs
        runs += 1
        if runs > 1:
            restarted.set()
            await asyncio.sleep(3600)
        await asyncio.sleep(0)
        raise RuntimeError("lost the connection")

    supervisor.add_worker(crashes_once, name="flaky", backoff_delay=0.0)
    try:
        async with LifespanManager(bare_app(supervisor)):
            await asyncio.wait_for(restarted.wait(), 5)
            assert supervisor.workers()[0].restarts == 1
    finally:
        loop.set_task_factory(None)


async def test_a_drain_nothing_will_follow_names_the_liveness_path_that_now_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """1. signals off, so nothing can end the process; 2. a drain ends; 3. the warning names
    the liveness path under the configured prefix, and that path answers 503."""
    supervisor = quiet_supervisor(path_prefix="/_ops")
    app = bare_app(supervisor)
    async with LifespanManager(app), client(app) as http:
        with caplog.at_level(logging.WARNING, logger="asgi_supervisor"):
            await supervisor.drain()
        live = await http.get("/_ops/health/live")
    assert live.status_code == 503
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "stopped, and no signal will end this process: /_ops/health/live now fails so that "
        "it is restarted"
    ]


WATCHDOG_EXIT = """
import asyncio, contextlib, logging, sys, time
from starlette.applications import Starlette
from asgi_supervisor import Supervisor, SupervisorMiddleware
from asgi_supervisor.testing import LifespanManager

logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(levelname)s %(message)s")
supervisor = Supervisor(
    grace_period=1.5, cancel_timeout=0.5, shutdown_delay=0.0, handle_signals=False,
    local_token=False, process_group=False, loop_lag_threshold=None, watchdog_delay=0.2,
)

async def blocks_when_cancelled():
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        time.sleep(30)  # sync code: the loop, and the shutdown, stop here

@contextlib.asynccontextmanager
async def lifespan(app):
    yield
    time.sleep(30)  # the app's own shutdown hangs in sync code

if {stuck_worker}:
    supervisor.add_worker(blocks_when_cancelled, name="blocks")
app = Starlette(lifespan=None if {stuck_worker} else lifespan)
app = SupervisorMiddleware(app, supervisor=supervisor)

async def main():
    async with LifespanManager(app, shutdown_timeout=60):
        pass

asyncio.run(main())
"""


@pytest.mark.parametrize("stuck_worker", [False, True], ids=["after-the-report", "before-it"])
def test_a_process_the_watchdog_ends_logs_a_report_saying_so(stuck_worker: bool) -> None:
    """The watchdog ends the process (status 70): first the shutdown report is logged, once,
    not clean because the watchdog ended it, whether the shutdown had made its report (the
    app's own shutdown hung) or not yet (a worker blocked the loop while stopping)."""
    code = textwrap.dedent(WATCHDOG_EXIT.format(stuck_worker=stuck_worker))
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 70, result.stderr
    reports = [line for line in result.stderr.splitlines() if "shutdown report: " in line]
    assert reports[-1].startswith("ERROR shutdown report: lifespan shutdown, NOT clean, ")
    stuck = "1 task abandoned at the deadline (blocks), " if stuck_worker else ""
    assert reports[-1].endswith(f"not clean: {stuck}ended by the watchdog")
    assert result.stderr.index(reports[-1]) < result.stderr.index("watchdog: the shutdown")
