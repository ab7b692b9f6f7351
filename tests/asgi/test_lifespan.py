"""Lifespan composition: the app's own lifespan keeps working around the supervisor's."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI, Request
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from asgi_supervisor import State, Supervisor, SupervisorMiddleware
from asgi_supervisor.testing import LifespanManager, LifespanStartupFailed
from tests._inprocess import quiet_supervisor


async def call(app: Any, path: str, state: dict[str, Any]) -> tuple[int, bytes]:
    """One GET through the app with the lifespan state, as a server passes it."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
        "state": dict(state),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    await app(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body


def _recording_worker(supervisor: Supervisor, events: list[str]) -> None:
    async def worker() -> None:
        events.append("worker started")
        try:
            await asyncio.sleep(3600)
        finally:
            events.append("worker stopped")

    supervisor.add_worker(worker)


async def test_fastapi_lifespan_state_and_order() -> None:
    """FastAPI's lifespan runs first, its state reaches requests, and it shuts down last."""
    supervisor = quiet_supervisor()
    events: list[str] = []
    _recording_worker(supervisor, events)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, str]]:
        events.append("app startup")
        yield {"db": "pool"}
        events.append("app shutdown")

    app = FastAPI(
        lifespan=lifespan, middleware=[Middleware(SupervisorMiddleware, supervisor=supervisor)]
    )

    @app.get("/db")
    async def db(request: Request) -> dict[str, str]:
        return {"db": request.state.db}

    async with LifespanManager(app) as manager:
        assert supervisor.state is State.READY
        assert await call(app, "/db", manager.state) == (200, b'{"db":"pool"}')
    assert events == ["app startup", "worker started", "worker stopped", "app shutdown"]
    assert manager.shutdown_messages == [{"type": "lifespan.shutdown.complete"}]


async def test_starlette_lifespan_wrapped_directly() -> None:
    """Wrapping a Starlette app keeps its lifespan state and ordering."""
    supervisor = quiet_supervisor()
    events: list[str] = []
    _recording_worker(supervisor, events)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, int]]:
        events.append("app startup")
        yield {"answer": 42}
        events.append("app shutdown")

    async def answer(request: Request) -> Response:
        return PlainTextResponse(str(request.state.answer))

    inner = Starlette(routes=[Route("/", answer)], lifespan=lifespan)
    app = SupervisorMiddleware(inner, supervisor=supervisor)
    async with LifespanManager(app) as manager:
        assert await call(app, "/", manager.state) == (200, b"42")
    assert events == ["app startup", "worker started", "worker stopped", "app shutdown"]


async def test_failing_app_startup_reports_the_cause_and_starts_no_worker() -> None:
    """An app whose startup raises yields lifespan.startup.failed naming the error."""
    supervisor = quiet_supervisor()
    events: list[str] = []
    _recording_worker(supervisor, events)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        raise ConnectionRefusedError("database at db:5432 refused")
        yield  # noqa: V201 (unreachable, and what makes this function a generator)

    app = SupervisorMiddleware(Starlette(lifespan=lifespan), supervisor=supervisor)
    with pytest.raises(LifespanStartupFailed, match="database at db:5432 refused"):
        async with LifespanManager(app):
            pass
    assert supervisor.state is State.FAILED
    assert events == []


async def test_worker_failing_at_startup_tears_the_app_down_first() -> None:
    """When a worker fails while starting, the app's own shutdown runs before the failure."""
    supervisor = quiet_supervisor()
    events: list[str] = []

    async def broken() -> None:
        raise RuntimeError("queue unreachable")

    supervisor.add_worker(broken, name="consumer")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("app startup")
        yield
        events.append("app shutdown")

    app = SupervisorMiddleware(Starlette(lifespan=lifespan), supervisor=supervisor)
    with pytest.raises(LifespanStartupFailed, match=r"worker 'consumer' failed while starting"):
        async with LifespanManager(app):
            pass
    assert events == ["app startup", "app shutdown"]


async def test_app_without_lifespan_support_gets_workers_when_it_says_so() -> None:
    """With ``app_lifespan=False``, an app that rejects lifespan scopes never sees one, and
    its workers run and stop all the same."""
    supervisor = quiet_supervisor()
    events: list[str] = []
    _recording_worker(supervisor, events)
    scopes: list[str] = []

    async def bare(scope: Any, receive: Any, send: Any) -> None:
        scopes.append(scope["type"])
        if scope["type"] != "http":
            raise RuntimeError(f"unsupported scope {scope['type']}")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = SupervisorMiddleware(bare, supervisor=supervisor, app_lifespan=False)
    async with LifespanManager(app) as manager:
        assert supervisor.state is State.READY
        assert await call(app, "/", manager.state) == (204, b"")
    assert events == ["worker started", "worker stopped"]
    assert scopes == ["http"]
    assert manager.shutdown_messages == [{"type": "lifespan.shutdown.complete"}]


async def test_lifespan_shutdown_joins_an_earlier_drain() -> None:
    """A drain begun by the API is joined, not restarted, by lifespan shutdown."""
    supervisor = quiet_supervisor()
    async with LifespanManager(SupervisorMiddleware(Starlette(), supervisor=supervisor)):
        report = await supervisor.drain()
    assert supervisor.last_report is report
    assert report.trigger == "api"
