"""`/metrics`: every metric in a known state, before and after a drain, and without the extra."""

from __future__ import annotations

import asyncio
import sys

import httpx
import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute

from asgi_supervisor import ShutdownReport, Supervisor, SupervisorMiddleware, WorkerState
from asgi_supervisor._core.verdict import REASONS
from asgi_supervisor._observe.metrics import take_snapshot
from asgi_supervisor.testing import LifespanManager
from tests._inprocess import (
    LOOPBACK,
    REMOTE,
    FakeWebSocketClient,
    Held,
    client,
    named,
    parse,
    quiet_supervisor,
    value,
    wait_until,
)
from tests.apps import cleanup_raises, crash_loop, echo_socket, parked


async def failing_check() -> bool:
    raise ConnectionError("cache is down")


async def passing_check() -> bool:
    return True


def metrics_app(supervisor: Supervisor, held: Held) -> SupervisorMiddleware:
    """A held route, an echo websocket, two workers (one crash-looping), two checks."""
    supervisor.add_worker(parked, name="parked")
    supervisor.add_worker(crash_loop, name="crash-loop", max_restarts=1, backoff_delay=0.01)
    supervisor.add_check("db", passing_check)
    supervisor.add_check("cache", failing_check, critical=False)
    routes = [Route("/held", held.endpoint), WebSocketRoute("/ws", echo_socket)]
    return SupervisorMiddleware(Starlette(routes=routes), supervisor=supervisor)


def crash_loop_gave_up(supervisor: Supervisor) -> bool:
    return any(
        w.name == "crash-loop" and w.state is WorkerState.FAILED for w in supervisor.workers()
    )


async def test_metrics_in_a_known_ready_state() -> None:
    """1. ready, a request in flight, a spawned task, a worker that gave up after one restart,
    a passing and a failing check; 2. each metric says so; 3. no shutdown metric yet."""
    supervisor = quiet_supervisor()
    held = Held()
    app = metrics_app(supervisor, held)
    async with LifespanManager(app), client(app) as http:
        await wait_until(lambda: crash_loop_gave_up(supervisor))
        request = asyncio.create_task(http.get("/held"))
        await held.entered.wait()
        spawned = supervisor.spawn(parked, name="spawned")
        response = await http.get("/_supervisor/metrics")
        checks = {result.name: result for result in await supervisor.check_results()}
        counts = supervisor.counts()
        held.release.set()
        await request
        spawned.cancel()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = parse(response.text)
    assert named(samples, "state") == {
        frozenset({("state", state)}): float(state == "ready")
        for state in ("starting", "ready", "draining", "closing", "stopping", "stopped", "failed")
    }
    tasks = {dict(labels)["kind"]: v for labels, v in named(samples, "tasks").items()}
    assert tasks == {"worker": counts["workers"], "task": 1, "websocket": 0, "request": 1}
    assert value(samples, "worker_restarts_total", worker="crash-loop") == 1
    assert value(samples, "worker_give_ups_total", worker="crash-loop") == 1
    assert value(samples, "worker_state", worker="crash-loop", state="failed") == 1
    assert value(samples, "worker_restarts_total", worker="parked") == 0
    assert value(samples, "worker_give_ups_total", worker="parked") == 0
    assert value(samples, "worker_state", worker="parked", state="running") == 1
    parked_states = {
        dict(labels)["state"]: v
        for labels, v in named(samples, "worker_state").items()
        if dict(labels)["worker"] == "parked"
    }
    assert parked_states == {
        state.value: float(state is WorkerState.RUNNING) for state in WorkerState
    }
    assert value(samples, "check_success", check="db", critical="true") == 1
    assert value(samples, "check_success", check="cache", critical="false") == 0
    for name in ("db", "cache"):
        assert value(samples, "check_duration_seconds", check=name) == checks[name].duration
    assert not [key for key in samples if "last_shutdown" in key[0] or "deadline" in key[0]]
    assert not [key for key in samples if "pid" in dict(key[1])]


async def test_metrics_after_a_drain_report_the_last_shutdown() -> None:
    """1. a request is in flight and a websocket open; 2. /drain; 3. a request arriving while
    closing is rejected; 4. the request ends; 5. the shutdown's phases, requests, websockets
    closed and tasks are exposed as the report says, and the state is stopped."""
    supervisor = quiet_supervisor(
        shutdown_delay=0.1, websocket_close_code=4001, admin_token="s3cret"
    )
    held = Held()
    app = metrics_app(supervisor, held)
    async with LifespanManager(app), client(app) as http:
        request = asyncio.create_task(http.get("/held"))
        await held.entered.wait()
        ws = FakeWebSocketClient(app)
        assert (await ws.connect())["type"] == "websocket.accept"
        admin = {"Authorization": "Bearer s3cret"}
        drain = asyncio.create_task(http.post("/_supervisor/drain", headers=admin))
        assert (await asyncio.wait_for(ws.from_app.get(), 5))["code"] == 4001
        await ws.to_app.put({"type": "websocket.disconnect", "code": 4001})
        assert (await http.get("/held")).status_code == 503
        during = parse((await http.get("/_supervisor/metrics")).text)
        held.release.set()
        await request
        assert (await drain).status_code == 200
        report = await supervisor.drain()
        response = await http.get("/_supervisor/metrics")
    samples = parse(response.text)
    assert value(during, "state", state="closing") == 1
    assert 0 < value(during, "deadline_remaining_seconds") <= 3.0
    assert value(samples, "state", state="stopped") == 1
    expected = report.to_dict()
    assert value(samples, "last_shutdown_info", trigger="drain endpoint") == 1
    assert value(samples, "last_shutdown_timestamp_seconds") == expected["started_at"]
    assert value(samples, "last_shutdown_duration_seconds") == expected["duration"]
    assert value(samples, "last_shutdown_forced") == 0
    phases = expected["phases"]
    assert isinstance(phases, list)
    assert [phase["name"] for phase in phases] == ["draining", "closing", "stopping"]
    for phase in phases:
        start = value(samples, "last_shutdown_phase_start_seconds", phase=phase["name"])
        duration = value(samples, "last_shutdown_phase_duration_seconds", phase=phase["name"])
        assert (start, duration) == (phase["start"], phase["duration"])
    requests = {dict(k)["outcome"]: v for k, v in named(samples, "last_shutdown_requests").items()}
    assert requests == expected["requests"]
    assert requests == {"drained": 1, "rejected": 1, "cancelled": 0, "cut": 0}
    # The crash-looping worker's last run failed while stopping: the one reason.
    assert value(samples, "last_shutdown_clean") == 0
    assert value(samples, "last_shutdown_streams_ended") == 0
    reasons = {dict(k)["reason"]: v for k, v in named(samples, "last_shutdown_not_clean").items()}
    assert reasons == expected["not_clean"] == {**dict.fromkeys(REASONS, 0), "tasks_failed": 1}
    assert named(samples, "last_shutdown_websockets_closed") == {frozenset({("code", "4001")}): 1}
    tasks = {dict(k)["outcome"]: v for k, v in named(samples, "last_shutdown_tasks").items()}
    assert tasks == expected["tasks"]
    assert tasks["cancelled"] >= 1  # the parked worker


async def test_a_shutdown_that_was_not_clean_says_why_in_its_metrics() -> None:
    """A worker whose cleanup fails: the last shutdown is not clean, and its one reason is
    counted under its name while every other reason is 0."""
    supervisor = quiet_supervisor()
    supervisor.add_worker(cleanup_raises, name="cleanup-raises")
    async with LifespanManager(SupervisorMiddleware(Starlette(), supervisor=supervisor)):
        await supervisor.drain()
        samples = (await take_snapshot(supervisor)).samples
    assert ("asgi_supervisor_last_shutdown_clean", (), 0.0) in samples
    reasons = {labels[0]: count for name, labels, count in samples if name.endswith("not_clean")}
    assert reasons == {**dict.fromkeys(REASONS, 0.0), "tasks_failed": 1.0}


async def test_report_keys_added_later_are_exposed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tasks outcome the report gains (the coming ``cut_short``) becomes a sample as is."""
    original = ShutdownReport.to_dict

    def with_cut_short(self: ShutdownReport) -> dict[str, object]:
        result = original(self)
        tasks = result["tasks"]
        assert isinstance(tasks, dict)
        result["tasks"] = {**tasks, "cut_short": 2}
        return result

    supervisor = quiet_supervisor()
    async with LifespanManager(SupervisorMiddleware(Starlette(), supervisor=supervisor)):
        await supervisor.drain()
        monkeypatch.setattr(ShutdownReport, "to_dict", with_cut_short)
        snapshot = await take_snapshot(supervisor)
    assert ("asgi_supervisor_last_shutdown_tasks", ("cut_short",), 2.0) in snapshot.samples


async def test_head_post_and_openmetrics() -> None:
    """HEAD gets the headers and no body; POST gets 405; Prometheus' Accept gets
    OpenMetrics."""
    supervisor = quiet_supervisor()
    app = SupervisorMiddleware(Starlette(), supervisor=supervisor)
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"
    async with LifespanManager(app), client(app) as http:
        head = await http.head("/_supervisor/metrics")
        post = await http.post("/_supervisor/metrics")
        negotiated = await http.get("/_supervisor/metrics", headers={"accept": accept})
    assert head.status_code == 200
    assert head.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert int(head.headers["content-length"]) > 0
    assert head.content == b""
    assert (post.status_code, post.headers["allow"]) == (405, "GET, HEAD")
    assert negotiated.headers["content-type"].startswith("application/openmetrics-text")
    # The OpenMetrics parser has no type hints.
    families = {f.name: f for f in openmetrics_families(negotiated.text)}  # type: ignore[no-untyped-call]
    ready = [s for s in families["asgi_supervisor_state"].samples if s.labels["state"] == "ready"]
    assert [sample.value for sample in ready] == [1]


async def test_metrics_are_public_like_health() -> None:
    """With an admin token set, a remote client without it still scrapes (and /tasks is
    refused), so Prometheus needs no secret."""
    supervisor = quiet_supervisor(admin_token="s3cret")
    app = SupervisorMiddleware(Starlette(), supervisor=supervisor)
    async with LifespanManager(app), client(app, REMOTE) as http:
        assert (await http.get("/_supervisor/tasks")).status_code == 401
        metrics = await http.get("/_supervisor/metrics")
    assert metrics.status_code == 200
    assert value(parse(metrics.text), "state", state="ready") == 1


async def test_without_the_extra_metrics_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With prometheus_client not importable, /metrics answers 501 naming the extra, and the
    other endpoints still work."""
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import fails
    supervisor = quiet_supervisor(path_prefix="/ops")
    app = SupervisorMiddleware(Starlette(), supervisor=supervisor)
    async with LifespanManager(app), client(app, LOOPBACK) as http:
        missing = await http.get("/ops/metrics")
        head = await http.head("/ops/metrics")
        ready = await http.get("/ops/health/ready")
    assert missing.status_code == head.status_code == 501
    assert missing.headers["content-type"] == "application/json"
    assert "pip install 'asgi-supervisor[metrics]'" in missing.json()["error"]
    assert ready.status_code == 200


async def test_the_first_scrape_imports_the_extra_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The first scrape imports prometheus_client, which reads files and ``/proc``: in a
    thread, so blockbuster sees nothing block the loop."""
    for name in [n for n in sys.modules if n.partition(".")[0] == "prometheus_client"]:
        monkeypatch.delitem(sys.modules, name)  # put back as they were after the test
    supervisor = quiet_supervisor()
    app = SupervisorMiddleware(Starlette(), supervisor=supervisor)
    async with LifespanManager(app), client(app, LOOPBACK) as http:
        metrics = await http.get("/_supervisor/metrics")
    assert metrics.status_code == 200
    assert "prometheus_client" in sys.modules


async def test_metrics_answer_under_the_path_prefix_only() -> None:
    """The endpoint lives under ``path_prefix``; the app's own ``/metrics`` is left alone."""

    async def own(request: Request) -> Response:
        return PlainTextResponse("the app's own")

    supervisor = quiet_supervisor(path_prefix="/_ops")
    app = SupervisorMiddleware(Starlette(routes=[Route("/metrics", own)]), supervisor=supervisor)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as http,
    ):
        assert (await http.get("/metrics")).text == "the app's own"
        ours = await http.get("/_ops/metrics")
    assert value(parse(ours.text), "state", state="ready") == 1
