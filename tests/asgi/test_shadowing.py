"""The app keeps its routes: at the default prefix nothing is shadowed, and a prefix chosen so
that the endpoints would shadow a route fails the lifespan startup, naming the route."""

from __future__ import annotations

import re
import typing

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client import CollectorRegistry, make_asgi_app
from prometheus_fastapi_instrumentator import Instrumentator
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Host, Mount, Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from asgi_supervisor import StartupError, SupervisorMiddleware
from asgi_supervisor._asgi.shadowing import shadowed_routes
from asgi_supervisor.testing import LifespanManager, LifespanStartupFailed
from tests._inprocess import ADMIN, quiet_supervisor

ENDPOINTS = ("/health", "/health/ready", "/tasks", "/drain", "/metrics")


async def own(request: Request) -> Response:
    return PlainTextResponse(f"the app's own {request.url.path}")


async def socket(websocket: WebSocket) -> None:
    await websocket.close()


def app_with_the_same_names() -> Starlette:
    """An app with its own /health, /health/ready, /tasks, /drain and /metrics."""
    routes = [Route(path, own, methods=["GET", "POST"]) for path in ENDPOINTS]
    return Starlette(routes=routes)


def http(app: object) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app)  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", headers=ADMIN)


async def test_at_the_defaults_the_apps_own_routes_keep_answering() -> None:
    """1. an app with routes named like the endpoints, at the default prefix; 2. during the
    lifespan each of them answers the app's body, for GET and POST; 3. the supervisor answers
    under /_supervisor."""
    supervisor = quiet_supervisor(admin_token="t0ken")
    app = SupervisorMiddleware(app_with_the_same_names(), supervisor=supervisor)
    async with LifespanManager(app), http(app) as client:
        for path in ENDPOINTS:
            assert (await client.get(path)).text == f"the app's own {path}"
            assert (await client.post(path)).text == f"the app's own {path}"
        ready = await client.get("/_supervisor/health/ready")
        tasks = await client.get("/_supervisor/tasks")
    assert ready.json() == {"status": "ready", "state": "ready"}
    assert tasks.json()["state"] == "ready"


async def test_prometheus_fastapi_instrumentator_keeps_its_metrics() -> None:
    """A FastAPI app instrumented by prometheus-fastapi-instrumentator, its middleware in the
    supervisor's: /metrics is the instrumentator's (it counts the app's requests), and the
    supervisor's metrics are at /_supervisor/metrics."""
    supervisor = quiet_supervisor()
    app = FastAPI(middleware=[Middleware(SupervisorMiddleware, supervisor=supervisor)])

    @app.get("/items")
    async def items() -> list[int]:
        return [1, 2]

    registry = CollectorRegistry()
    Instrumentator(registry=registry).instrument(app).expose(app)
    async with LifespanManager(app), http(app) as client:
        assert (await client.get("/items")).json() == [1, 2]
        theirs = (await client.get("/metrics")).text
        ours = (await client.get("/_supervisor/metrics")).text
    assert 'http_requests_total{handler="/items",method="GET",status="2xx"} 1.0' in theirs
    assert "asgi_supervisor_state" not in theirs
    assert 'asgi_supervisor_state{state="ready"} 1.0' in ours


@pytest.mark.parametrize(
    ("app", "prefix", "named"),
    [
        (app_with_the_same_names(), "", "'/health' (own)"),
        (Starlette(routes=[Route("/ops/tasks", own)]), "/ops", "'/ops/tasks' (own)"),
        (
            Starlette(routes=[Mount("/ops", routes=[Route("/drain", own, methods=["POST"])])]),
            "/ops",
            "'/ops/drain' (own)",
        ),
        (
            Starlette(routes=[Mount("/ops", app=Starlette(routes=[Route("/health", own)]))]),
            "/ops",
            "'/ops/health' (own)",
        ),
        (Starlette(routes=[Route("/items/{name}", own)]), "/items", "'/items/{name}'"),
        (
            # prometheus_client's own recipe for FastAPI: the mounted app answers /metrics.
            Starlette(routes=[Mount("/metrics", app=make_asgi_app(CollectorRegistry()))]),
            "",
            "'/metrics'",
        ),
        (
            # A Host's routes answer the paths they match, whatever the host.
            Starlette(routes=[Host("api.example", app=Starlette(routes=[Route("/x/tasks", own)]))]),
            "/x",
            "'/x/tasks' (own)",
        ),
    ],
    ids=["root", "route", "mount", "mounted-app", "parameter", "opaque-mount", "host"],
)
def test_a_prefix_that_shadows_a_route_is_refused_at_startup(
    app: Starlette, prefix: str, named: str
) -> None:
    """The lifespan startup fails with the sentence, naming the route, as the app's own
    failed startup would: TestClient raises it."""
    supervisor = quiet_supervisor(path_prefix=prefix)
    wrapped = SupervisorMiddleware(app, supervisor=supervisor)
    with (
        pytest.raises(
            StartupError,
            match=rf"^asgi-supervisor's endpoints under path_prefix={prefix!r} would shadow "
            rf"routes of the app, which would never be reached: .*{re.escape(named)}.*\. Set "
            r"path_prefix to a prefix no route of the app uses, such as the default "
            r"'/_supervisor', or move the app's routes\.$",
        ),
        TestClient(wrapped),
    ):
        pass
    assert not supervisor.has_started


async def test_fastapi_routers_and_the_middleware_form_are_read_too() -> None:
    """An APIRouter included under /ops, with the middleware in FastAPI's own stack: the
    startup fails under LifespanManager with the route's path, and raises StartupError."""
    supervisor = quiet_supervisor(path_prefix="/ops")
    app = FastAPI(middleware=[Middleware(SupervisorMiddleware, supervisor=supervisor)])
    router = APIRouter(prefix="/ops")

    @router.get("/health")  # noqa: V103 (a route: the router calls it)
    async def ops_health() -> str:
        return "ours"

    app.include_router(router)
    with pytest.raises(
        LifespanStartupFailed, match=r"/ops/health would answer for the app's route '/ops/health'"
    ) as failed:
        async with LifespanManager(app):
            pass
    assert isinstance(failed.value.__cause__, StartupError)


@pytest.mark.parametrize(
    "routes",
    [
        [Route("/{path:path}", own)],  # a single-page app's fallback
        [Mount("/", app=make_asgi_app(CollectorRegistry()))],  # everything mounted at the root
        [WebSocketRoute("/health", socket)],  # the endpoints answer HTTP only
        [Route("/health/", own)],  # the slash makes it another path
    ],
    ids=["catch-all", "root-mount", "websocket", "trailing-slash"],
)
async def test_fallbacks_and_websocket_routes_are_not_shadowed(routes: list[object]) -> None:
    """Routes that answer an endpoint's path only as a fallback from the root, or not over
    HTTP, start as before, at the root prefix too."""
    app = Starlette(routes=routes)  # type: ignore[arg-type]
    assert shadowed_routes(app, ["/health", "/metrics"]) == []
    supervisor = quiet_supervisor(path_prefix="")
    async with LifespanManager(SupervisorMiddleware(app, supervisor=supervisor)):
        assert supervisor.has_started


def test_an_app_whose_routes_cannot_be_read_starts() -> None:
    """A plain ASGI callable has no route table: nothing to check, nothing refused."""

    async def plain(scope: object, receive: object, send: object) -> None:
        raise AssertionError("not called")

    assert shadowed_routes(plain, ["/health"]) == []


def fastapi_with_route() -> FastAPI:
    app = FastAPI()

    @app.post("/drain")  # noqa: V103 (a route: the router calls it)
    async def drain_queue() -> None: ...

    return app


def fastapi_with_mount() -> FastAPI:
    app = FastAPI()
    app.mount("/metrics", make_asgi_app(CollectorRegistry()))
    return app


def fastapi_with_nested_routers() -> FastAPI:
    app, outer, inner = FastAPI(), APIRouter(prefix="/v1"), APIRouter(prefix="/jobs")

    @inner.get("/tasks")  # noqa: V103 (a route: the router calls it)
    async def job_tasks() -> None: ...

    outer.include_router(inner)
    app.include_router(outer)
    return app


@pytest.mark.parametrize(
    ("build", "prefix", "expected"),
    [
        (fastapi_with_route, "", [("/drain", "/drain", "drain_queue")]),
        (fastapi_with_mount, "", [("/metrics", "/metrics", None)]),
        (fastapi_with_nested_routers, "/v1/jobs", [("/v1/jobs/tasks", "/v1/jobs/tasks", None)]),
        (fastapi_with_nested_routers, "", []),
    ],
    ids=["route", "mount", "nested-routers", "nested-routers-at-the-root"],
)
def test_fastapi_routes_mounts_and_included_routers_are_found(
    build: typing.Callable[[], FastAPI], prefix: str, expected: list[tuple[str, str, str | None]]
) -> None:
    """Each kind of FastAPI route answers for itself, through the route's own `matches`."""
    endpoints = [f"{prefix}{path}" for path in ("/health", "/tasks", "/drain", "/metrics")]
    found = shadowed_routes(build(), endpoints)
    assert [(s.endpoint, s.template, s.name) for s in found] == expected
