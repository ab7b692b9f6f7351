"""HTTP and websocket gating by state, in-process (real servers are in tests/servers/)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from asgi_supervisor import State, Supervisor, SupervisorMiddleware
from asgi_supervisor.testing import LifespanManager
from tests._inprocess import FakeWebSocketClient, Held, client, quiet_supervisor
from tests.apps import hello


def gated_app(supervisor: Supervisor, gate: Held, seen: list[Any]) -> SupervisorMiddleware:
    """``/`` answers at once, ``/held`` when *gate* releases it, and ``/ws`` echoes until
    the disconnect, whose code it appends to *seen*."""

    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            while True:
                await websocket.send_text(await websocket.receive_text())
        except WebSocketDisconnect as exc:
            seen.append(("disconnect", exc.code))

    routes = [Route("/", hello), Route("/held", gate.endpoint), WebSocketRoute("/ws", socket)]
    return SupervisorMiddleware(Starlette(routes=routes), supervisor=supervisor)


async def hold_until_closing(
    http: httpx.AsyncClient, gate: Held, supervisor: Supervisor
) -> asyncio.Task[httpx.Response]:
    """Hold a request in flight, start draining with no delay, and return once closing."""
    held = asyncio.create_task(http.get("/held"))
    await gate.entered.wait()
    supervisor.begin_drain()
    for _ in range(100):  # the shutdown task gets there within a few loop iterations
        if supervisor.state is State.CLOSING:
            return held
        await asyncio.sleep(0)
    raise AssertionError(f"{supervisor!r} did not reach closing")


async def test_draining_serves_requests_with_connection_close() -> None:
    """1. trigger with a delay; 2. requests still succeed; 3. each says Connection: close."""
    supervisor = quiet_supervisor(shutdown_delay=1.0)
    app = gated_app(supervisor, Held(), [])
    async with LifespanManager(app), client(app) as http:
        ready = await http.get("/")
        assert ready.status_code == 200
        assert "connection" not in ready.headers
        supervisor.begin_drain()
        draining = await http.get("/")
        assert supervisor.state is State.DRAINING
        assert draining.status_code == 200
        assert draining.headers["connection"] == "close"
        assert (await http.get("/_supervisor/health/live")).status_code == 200
        assert (await http.get("/_supervisor/health/ready")).status_code == 503


async def test_closing_rejects_new_requests_but_answers_health() -> None:
    """1. hold a request; 2. drain; 3. new ones get 503 + Retry-After; 4. the held one ends 200."""
    supervisor = quiet_supervisor(retry_after=7)
    gate = Held()
    app = gated_app(supervisor, gate, [])
    async with LifespanManager(app), client(app) as http:
        held = await hold_until_closing(http, gate, supervisor)
        rejected = await http.get("/")
        assert rejected.status_code == 503
        assert rejected.headers["retry-after"] == "7"
        assert rejected.headers["connection"] == "close"
        assert rejected.json() == {"error": "service is shutting down", "state": "closing"}
        live = await http.get("/_supervisor/health/live")
        assert (live.status_code, live.json()["state"]) == (200, "closing")
        gate.release.set()
        assert (await held).status_code == 200
        report = await supervisor.drain()
    assert report.requests_drained_count == 1
    assert report.requests_rejected_count == 1
    assert report.requests_cancelled_count == 0


async def test_request_still_running_at_its_budget_is_cancelled_with_a_503() -> None:
    """A request that outlives deadline - cancel_timeout is cancelled in the stopping phase;
    its client gets 503 + Retry-After + Connection: close, not a 500, and it counts once."""
    supervisor = quiet_supervisor(grace_period=1.5, cancel_timeout=0.5)
    gate = Held()
    app = gated_app(supervisor, gate, [])
    async with LifespanManager(app), client(app) as http:
        held = asyncio.create_task(http.get("/held"))
        await gate.entered.wait()
        report = await supervisor.drain()
        assert report.requests_cancelled_count == 1
        assert report.requests_drained_count == 0
        assert 1.0 <= report.duration < 1.5
        response = await held
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.headers["connection"] == "close"


def start_request(app: SupervisorMiddleware) -> tuple[asyncio.Task[None], list[Any]]:
    """A ``GET /`` through *app* in a task of its own, and the messages it sends."""
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "path": "/", "method": "GET", "headers": []}
    return asyncio.create_task(app(scope, receive, send)), sent


async def test_a_request_cancelled_at_the_deadline_and_by_another_stays_cancelled() -> None:
    """1. a request outlives its budget; 2. the stopping phase cancels it; 3. while its
    cleanup awaits, something else cancels it too; 4. that other cancellation reaches the
    request's task: no 503 stands in for it, and the report still counts it as cut."""
    supervisor = quiet_supervisor(grace_period=1.5, cancel_timeout=0.5)
    entered, cleaning = asyncio.Event(), asyncio.Event()

    async def holds_then_cleans_up(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return  # no lifespan of its own: `app_lifespan=False` below
        entered.set()
        try:
            await asyncio.sleep(3600)
        finally:
            cleaning.set()
            await asyncio.sleep(3600)  # the other cancellation lands here

    app = SupervisorMiddleware(holds_then_cleans_up, supervisor=supervisor, app_lifespan=False)
    async with LifespanManager(app):
        request, sent = start_request(app)
        await entered.wait()
        drain = asyncio.create_task(supervisor.drain())
        await cleaning.wait()
        request.cancel()  # someone else: a server whose client left, say
        await asyncio.wait({request})
        report = await drain
    assert request.cancelled()
    assert sent == []
    assert report.requests_cancelled_count == 1


async def test_a_deadline_cut_keeps_a_cancellation_the_app_counted_before() -> None:
    """A request whose task caught an earlier cancellation without withdrawing it is cut
    at the deadline: it gets its 503, and only our request is withdrawn (its count stays)."""
    supervisor = quiet_supervisor(grace_period=1.5, cancel_timeout=0.5)
    entered = asyncio.Event()

    async def caught_one_earlier(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        me = asyncio.current_task()
        assert me is not None
        me.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)  # caught, not uncancel()ed: the count stays at 1
        entered.set()
        await asyncio.sleep(3600)

    app = SupervisorMiddleware(caught_one_earlier, supervisor=supervisor, app_lifespan=False)
    async with LifespanManager(app):
        request, sent = start_request(app)
        await entered.wait()
        report = await supervisor.drain()
        await request
    assert sent[0]["status"] == 503
    assert request.cancelling() == 1
    assert report.requests_cancelled_count == 1


async def test_closing_sends_the_configured_close_frame_and_app_sees_it() -> None:
    """1. a websocket is open; 2. closing sends our code and reason; 3. the handler sees it."""
    supervisor = quiet_supervisor(websocket_close_code=4001, websocket_close_reason="bye now")
    seen: list[Any] = []
    app = gated_app(supervisor, Held(), seen)
    async with LifespanManager(app):
        ws = FakeWebSocketClient(app)
        assert (await ws.connect())["type"] == "websocket.accept"
        await ws.to_app.put({"type": "websocket.receive", "text": "ping"})
        assert (await ws.from_app.get())["text"] == "ping"
        report_task = asyncio.create_task(supervisor.drain())
        close = await asyncio.wait_for(ws.from_app.get(), 2)
        assert close == {"type": "websocket.close", "code": 4001, "reason": "bye now"}
        # The server answers the app's pending receive with the disconnect, as uvicorn does.
        await ws.to_app.put({"type": "websocket.disconnect", "code": 1000})
        report = await report_task
        assert ws.task is not None
        await asyncio.wait({ws.task}, timeout=1)
    assert seen == [("disconnect", 4001)]
    assert report.websockets_closed == {4001: 1}
    assert report.tasks_cancelled_count == 0


async def test_new_websocket_handshake_refused_while_closing() -> None:
    """A handshake arriving while closing is refused before accept."""
    supervisor = quiet_supervisor()
    gate = Held()
    app = gated_app(supervisor, gate, [])
    async with LifespanManager(app), client(app) as http:
        held = await hold_until_closing(http, gate, supervisor)
        ws = FakeWebSocketClient(app)
        assert await ws.connect() == {"type": "websocket.close", "code": 1013}
        gate.release.set()
        await held
        await supervisor.drain()


async def test_websocket_handler_that_ignores_the_close_is_cancelled() -> None:
    """1. a handler parks without reading; 2. closing sends the close frame; 3. it does not
    return, so the stopping phase cancels it, and the report counts it."""
    supervisor = quiet_supervisor(grace_period=1.5, cancel_timeout=0.5)
    cancelled = asyncio.Event()

    async def deaf(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    app = SupervisorMiddleware(
        Starlette(routes=[WebSocketRoute("/ws", deaf)]), supervisor=supervisor
    )
    async with LifespanManager(app):
        ws = FakeWebSocketClient(app)
        assert (await ws.connect())["type"] == "websocket.accept"
        report = await supervisor.drain()
        assert (await ws.from_app.get())["type"] == "websocket.close"
    assert cancelled.is_set()
    assert report.websockets_cancelled_count == 1
    assert report.tasks_cancelled_count == 0  # a websocket is not a task
    assert report.websockets_closed == {1012: 1}
    assert report.clean  # its client had its close code before the handler was cancelled
    assert 1.0 <= report.duration < 1.5
