"""The endpoints the middleware answers: health in every state, /tasks, /drain, and auth."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Route

from asgi_supervisor import State, Supervisor, SupervisorMiddleware, WorkerState
from asgi_supervisor.testing import LifespanManager
from tests._inprocess import (
    LOOPBACK,
    REMOTE,
    TOKEN,
    Held,
    client,
    quiet_supervisor,
    wait_until,
)


def admin_supervisor(**settings: Any) -> Supervisor:
    """A quiet supervisor whose admin endpoints answer `ADMIN` (in-process there is no
    listening socket, so no local token)."""
    return quiet_supervisor(**{"admin_token": TOKEN, **settings})


def make_app(supervisor: Supervisor, held: Held | None = None) -> SupervisorMiddleware:
    routes = [Route("/held", (held or Held()).endpoint)]
    return SupervisorMiddleware(Starlette(routes=routes), supervisor=supervisor)


async def parked_in_helper() -> None:
    """A coroutine of the test's own, so `where` has a user frame to point at."""
    await asyncio.sleep(3600)  # the line `where` must name


PARKED_LINE = parked_in_helper.__code__.co_firstlineno + 2


async def test_health_before_startup_and_when_ready() -> None:
    """Before startup: live 200, ready and startup 503; when ready: all 200."""
    supervisor = admin_supervisor()
    app = make_app(supervisor)
    async with client(app) as http:
        assert (await http.get("/_supervisor/health/live")).json() == {
            "status": "live",
            "state": "starting",
        }
        ready = await http.get("/_supervisor/health/ready")
        assert (ready.status_code, ready.json()["reasons"]) == (503, ["state is starting"])
        assert (await http.get("/_supervisor/health/startup")).status_code == 503
        assert (await http.post("/_supervisor/drain")).status_code == 503
        async with LifespanManager(app):
            assert (await http.get("/_supervisor/health/ready")).json() == {
                "status": "ready",
                "state": "ready",
            }
            assert (await http.get("/_supervisor/health/startup")).json() == {
                "status": "started",
                "state": "ready",
            }
            summary = await http.get("/_supervisor/health")
            assert summary.status_code == 200
            assert summary.json() == {
                "state": "ready",
                "live": True,
                "ready": True,
                "started": True,
                "reasons": [],
                "checks": {},
                "workers": {},
                "counts": {"requests": 0, "websockets": 0, "tasks": 0, "workers": 0},
                "deadline_remaining": None,
                "process_group": "off",
            }


async def test_health_through_every_shutdown_state() -> None:
    """1. draining: ready 503, live 200; 2. closing with a request in flight: health still
    answered; 3. stopped: ready 503, startup still 200."""
    supervisor = admin_supervisor(shutdown_delay=0.3, grace_period=3.0)
    held = Held()
    app = make_app(supervisor, held)
    async with LifespanManager(app), client(app) as http:
        request = asyncio.create_task(http.get("/held"))
        await held.entered.wait()
        supervisor.begin_drain()

        async def probes_once(state: State) -> list[int]:
            await wait_until(lambda: supervisor.state is state)
            remaining = (await http.get("/_supervisor/health")).json()["deadline_remaining"]
            assert 0 < remaining <= 3.0
            return [
                (await http.get(path)).status_code
                for path in (
                    "/_supervisor/health/live",
                    "/_supervisor/health/ready",
                    "/_supervisor/health/startup",
                    "/_supervisor/health",
                )
            ]

        seen = {state.value: await probes_once(state) for state in (State.DRAINING, State.CLOSING)}
        held.release.set()
        await request
        await supervisor.drain()
        stopped = [
            (await http.get(path)).status_code
            for path in (
                "/_supervisor/health/live",
                "/_supervisor/health/ready",
                "/_supervisor/health/startup",
            )
        ]
        reasons = (await http.get("/_supervisor/health/ready")).json()["reasons"]
    assert seen == {"draining": [200, 503, 200, 503], "closing": [200, 503, 200, 503]}
    # No signal will end this in-process run: liveness fails so it would be restarted.
    assert stopped == [503, 503, 200]
    assert reasons == ["state is stopped"]


async def test_checks_hang_raise_cache_and_never_leak_errors() -> None:
    """A hanging check times out under its name, a raising one fails, a non-critical one
    does not fail readiness, results are cached, and no error text reaches the probe."""
    supervisor = admin_supervisor(check_cache_period=0.3)
    runs = {"db": 0}
    hang = asyncio.Event()

    async def db() -> None:
        runs["db"] += 1

    async def cache() -> None:
        await hang.wait()

    async def search() -> None:
        raise ConnectionError("password=hunter2 refused")

    supervisor.add_check("db", db)
    supervisor.add_check("cache", cache, timeout=0.1)
    supervisor.add_check("search", search, critical=False)
    app = make_app(supervisor)
    async with LifespanManager(app), client(app) as http:
        probes = await asyncio.gather(*(http.get("/_supervisor/health/ready") for _ in range(5)))
        assert {p.status_code for p in probes} == {503}
        assert probes[0].json()["reasons"] == ["check 'cache' failed"]
        assert runs["db"] == 1  # five concurrent probes, one run
        summary = (await http.get("/_supervisor/health")).text
        assert "hunter2" not in summary
        assert "ConnectionError" not in summary
        assert json.loads(summary)["checks"] == {
            "db": {"ok": True, "critical": True},
            "cache": {"ok": False, "critical": True},
            "search": {"ok": False, "critical": False},
        }
        await asyncio.sleep(0.35)  # the cached results (0.3 s) expire: time is the input here
        hang.set()
        await http.get("/_supervisor/health/ready")
        assert runs["db"] == 2
        assert (await http.get("/_supervisor/health/ready")).status_code == 200


async def test_check_registration_errors() -> None:
    """Bad check registrations name the problem."""
    supervisor = admin_supervisor()

    async def ok() -> None:
        return None

    supervisor.add_check("a", ok)
    with pytest.raises(ValueError, match="A check named 'a' is already registered"):
        supervisor.add_check("a", ok)
    with pytest.raises(ValueError, match=r"timeout=0 for check 'b' must be positive"):
        supervisor.add_check("b", ok, timeout=0)
    with pytest.raises(TypeError, match="Check 'c' must be an async function"):
        supervisor.add_check("c", lambda: None)  # type: ignore[arg-type, return-value]


async def test_methods_and_head() -> None:
    """Wrong methods get 405 with Allow; HEAD answers without a body."""
    supervisor = admin_supervisor()
    app = make_app(supervisor)
    async with LifespanManager(app), client(app) as http:
        wrong = await http.post("/_supervisor/health/ready")
        assert (wrong.status_code, wrong.headers["allow"]) == (405, "GET, HEAD")
        assert (await http.delete("/_supervisor/drain")).headers["allow"] == "POST"
        head = await http.head("/_supervisor/health/live")
        assert (head.status_code, head.content) == (200, b"")
        assert int(head.headers["content-length"]) > 0


async def test_tasks_lists_every_kind_with_where_filters_and_pages() -> None:
    """/tasks shows workers, spawned tasks and requests, where each waits, and filters."""
    supervisor = admin_supervisor()

    async def worker() -> None:
        await parked_in_helper()

    supervisor.add_worker(worker, name="consumer", critical=True)
    held = Held()
    app = make_app(supervisor, held)
    async with LifespanManager(app), client(app) as http:
        for n in range(5):
            supervisor.spawn(parked_in_helper, name=f"job-{n}")
        request = asyncio.create_task(http.get("/held"))
        await held.entered.wait()
        await asyncio.sleep(0)
        body = (await http.get("/_supervisor/tasks")).json()
        kinds = sorted(task["kind"] for task in body["tasks"])
        assert kinds == ["request", "task", "task", "task", "task", "task", "worker"]
        worker_row = next(t for t in body["tasks"] if t["kind"] == "worker")
        assert worker_row["name"] == "consumer"
        assert worker_row["state"] == "running"
        assert worker_row["where"] == f"{__file__}:{PARKED_LINE} in parked_in_helper"
        assert worker_row["awaiting"][-3:-1] == [
            "test_tasks_lists_every_kind_with_where_filters_and_pages.<locals>.worker",
            "parked_in_helper",
        ]
        assert "stack" not in worker_row
        request_row = next(t for t in body["tasks"] if t["kind"] == "request")
        assert request_row["where"].endswith("in endpoint")
        tasks = (
            await http.get("/_supervisor/tasks", params={"kind": "task", "limit": 2, "offset": 1})
        ).json()
        assert (tasks["total"], tasks["count"]) == (5, 2)
        assert [t["name"] for t in tasks["tasks"]] == ["job-1", "job-2"]
        named = (await http.get("/_supervisor/tasks", params={"name": "job-4"})).json()
        assert [t["name"] for t in named["tasks"]] == ["job-4"]
        stacked = (
            await http.get("/_supervisor/tasks", params={"kind": "worker", "stack": "1"})
        ).json()
        assert any("parked_in_helper" in line for line in stacked["tasks"][0]["stack"])
        everything = (
            await http.get("/_supervisor/tasks", params={"all": "1", "kind": "untracked"})
        ).json()
        assert everything["total"] >= 1  # at least the lifespan's own task
        held.release.set()
        await request


async def test_tasks_names_the_tasks_awaiting_each_task_from_3_14_on() -> None:
    """A spawned job awaited by a worker lists that worker in its ``awaited_by``, by the id
    and name of the worker's own row; the worker, awaited by nobody, lists none. Before
    Python 3.14 who awaits a task is unknown, and ``awaited_by`` is null."""
    supervisor = admin_supervisor()

    async def worker() -> None:
        await supervisor.spawn(parked_in_helper, name="job")

    supervisor.add_worker(worker, name="consumer")
    app = make_app(supervisor)
    async with LifespanManager(app), client(app) as http:
        await wait_until(lambda: len(supervisor._registry.records) == 2, within=5.0)
        await asyncio.sleep(0)  # the job takes its first step
        rows = {row["name"]: row for row in (await http.get("/_supervisor/tasks")).json()["tasks"]}
        if sys.version_info >= (3, 14):
            consumer = rows["consumer"]
            assert rows["job"]["awaited_by"] == [{"id": consumer["id"], "name": "consumer"}]
            assert consumer["awaited_by"] == []
        else:
            assert rows["job"]["awaited_by"] is None
            assert rows["consumer"]["awaited_by"] is None
        assert rows["job"]["where"] == f"{__file__}:{PARKED_LINE} in parked_in_helper"


async def test_tasks_history_says_how_tasks_ended() -> None:
    """Finished tasks appear in the history as completed, failed (with the error) or
    cancelled (with why)."""
    supervisor = admin_supervisor()
    app = make_app(supervisor)

    async def fails() -> None:
        raise ValueError("bad input 42")

    async with LifespanManager(app), client(app) as http:
        done = supervisor.spawn(asyncio.sleep, 0, name="quick")
        failed = supervisor.spawn(fails, name="fails")
        cancelled = supervisor.spawn(parked_in_helper, name="parked")
        await asyncio.sleep(0)
        cancelled.cancel("user went away")
        await asyncio.wait({done, failed, cancelled})
        await asyncio.sleep(0)
        history = (await http.get("/_supervisor/tasks")).json()["history"]
    endings = {item["name"]: (item["ending"], item["detail"]) for item in history}
    assert endings == {
        "quick": ("completed", None),
        "fails": ("failed", "ValueError: bad input 42"),
        "parked": ("cancelled", "user went away"),
    }


async def test_work_the_shutdown_abandoned_shows_so_until_it_ends() -> None:
    """1. a worker and a spawned task swallow their cancellation; 2. the drain abandons both
    at its deadline; 3. /health, /tasks, the metrics and `workers()` show them abandoned;
    4. once they end after all, the worker shows the state its own loop wrote."""
    supervisor = admin_supervisor(grace_period=1.3, cancel_timeout=0.3)
    release = asyncio.Event()

    async def stuck() -> None:
        while not release.is_set():
            with contextlib.suppress(asyncio.CancelledError):
                await release.wait()

    supervisor.add_worker(stuck, name="stuck-worker")
    app = make_app(supervisor)
    async with LifespanManager(app), client(app) as http:
        stuck_tasks = {supervisor.spawn(stuck, name="stuck-task")}
        stuck_tasks |= {t for t in asyncio.all_tasks() if t.get_name() == "worker stuck-worker"}
        try:
            report = await supervisor.drain()
            assert sorted(a.name for a in report.abandoned) == ["stuck-task", "stuck-worker"]
            health = (await http.get("/_supervisor/health")).json()
            assert health["workers"] == {"stuck-worker": {"state": "abandoned", "restarts": 0}}
            rows = (await http.get("/_supervisor/tasks")).json()["tasks"]
            assert {row["name"]: row["state"] for row in rows} == {
                "stuck-worker": "abandoned",
                "stuck-task": "abandoned",
            }
            metrics = (await http.get("/_supervisor/metrics")).text
            assert 'worker_state{state="abandoned",worker="stuck-worker"} 1.0' in metrics
            assert [w.state for w in supervisor.workers()] == [WorkerState.ABANDONED]
        finally:
            release.set()  # whatever failed: stuck tasks would hang the loop's close
            await asyncio.wait(stuck_tasks, timeout=5.0)
        assert [w.state for w in supervisor.workers()] == [WorkerState.COMPLETED]


async def test_tasks_with_ten_thousand_tasks() -> None:
    """With 10 000 tracked tasks /tasks reports them all and pages the answer."""
    supervisor = admin_supervisor(grace_period=20.0, cancel_timeout=10.0)
    app = make_app(supervisor)
    async with LifespanManager(app), client(app) as http:
        for _ in range(10_000):
            supervisor.spawn(parked_in_helper)
        await asyncio.sleep(0)
        body = (await http.get("/_supervisor/tasks", params={"kind": "task"})).json()
        assert (body["total"], body["count"]) == (10_000, 100)
        assert body["tasks"][0]["where"] == f"{__file__}:{PARKED_LINE} in parked_in_helper"
        assert (await http.get("/_supervisor/tasks", params={"limit": 10000})).json()[
            "count"
        ] == 10_000


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("limit=0", "limit=0 must be between 1 and 10000"),
        ("limit=abc", "limit='abc' must be a whole number"),
        ("offset=-1", "offset='-1' must be a whole number"),
        ("kind=thread", "kind='thread' is not one of"),
        ("stack=maybe", "stack='maybe' is not a flag"),
        ("colour=red", "unknown parameter 'colour'"),
    ],
)
async def test_bad_tasks_queries_get_400(query: str, message: str) -> None:
    """Bad query values are a 400 with a JSON error naming them."""
    supervisor = admin_supervisor()
    app = make_app(supervisor)
    async with LifespanManager(app), client(app) as http:
        response = await http.get(f"/_supervisor/tasks?{query}")
    assert response.status_code == 400
    assert message in response.json()["error"]


async def _raw_get(
    app: Any, path: str, query: bytes, client_address: tuple[str, int], *, authorized: bool
) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": [(b"authorization", f"Bearer {TOKEN}".encode())] if authorized else [],
        "client": client_address,
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.fixture
async def running_app() -> AsyncIterator[SupervisorMiddleware]:
    """A started app with a few tracked tasks, shared by the property test's examples."""
    supervisor = admin_supervisor()
    app = make_app(supervisor)
    async with LifespanManager(app):
        for n in range(3):
            supervisor.spawn(parked_in_helper, name=f"job-{n}")
        yield app


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    path=st.sampled_from(
        [
            "/_supervisor/tasks",
            "/_supervisor/drain",
            "/_supervisor/health",
            "/_supervisor/health/ready",
            "/_supervisor/health/live",
        ]
    ),
    query=st.binary(max_size=80)
    | st.lists(
        st.tuples(
            st.sampled_from(["kind", "state", "name", "limit", "offset", "stack", "all", "x", ""]),
            st.text(max_size=12),
        ),
        max_size=6,
    ).map(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8", "surrogatepass")),
    address=st.sampled_from([LOOPBACK, REMOTE]),
    authorized=st.booleans(),
)
async def test_no_input_gets_a_500(
    running_app: SupervisorMiddleware,
    path: str,
    query: bytes,
    address: tuple[str, int],
    authorized: bool,
) -> None:
    """Whatever the query string, endpoints answer 200, 400, 401, 405 or 503, with JSON
    (a GET never drains, so the shared app stays up)."""
    status, body = await _raw_get(running_app, path, query, address, authorized=authorized)
    assert status in (200, 400, 401, 405, 503)
    assert isinstance(json.loads(body), dict)


async def test_drain_endpoint_waits_for_requests_and_joins_concurrent_calls() -> None:
    """1. a request is in flight; 2. two /drain calls start, and the drain waits for the
    request; 3. neither answers before the request ends: each answer counts it drained;
    4. both report the same drain."""
    supervisor = admin_supervisor(grace_period=5.0, cancel_timeout=1.0)
    held = Held()
    app = make_app(supervisor, held)
    async with LifespanManager(app), client(app) as http:
        request = asyncio.create_task(http.get("/held"))
        await held.entered.wait()
        drains = [asyncio.create_task(http.post("/_supervisor/drain")) for _ in range(2)]
        # Closing lasts until the request ends (its budget is 4 s away): no drain is over.
        await wait_until(lambda: supervisor.state is State.CLOSING)
        assert not any(drain.done() for drain in drains)
        held.release.set()
        assert (await request).status_code == 200
        first, second = [(await drain).json() for drain in drains]
    # An answer sent while the request was in flight would say drained False, 0 drained.
    assert first["drained"] is second["drained"] is True
    assert first["report"]["requests"]["drained"] == second["report"]["requests"]["drained"] == 1
    assert first["report"]["trigger"] == second["report"]["trigger"] == "drain endpoint"


async def test_drain_answer_and_its_own_process_line_agree_when_a_request_outlasts_it() -> None:
    """1. a request is in flight; 2. /drain waits out the drain budget while it stays;
    3. the answer says not drained, and so does this process's own line in `processes`."""
    supervisor = admin_supervisor(grace_period=1.5, cancel_timeout=0.5)
    held = Held()
    app = make_app(supervisor, held)
    async with LifespanManager(app), client(app) as http:
        request = asyncio.create_task(http.get("/held"))
        await held.entered.wait()
        body = (await http.post("/_supervisor/drain")).json()
        held.release.set()
        await request
    assert body["drained"] is False
    assert body["processes"][0]["drained"] is False
    assert body["state"] == body["processes"][0]["state"]
