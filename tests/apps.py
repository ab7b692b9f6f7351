"""Tiny apps and workers the tests run, in-process and under real servers.

`build` makes the app; ``tests/servers/served.py`` builds the one real servers run: its
settings come from ``ASGI_SUPERVISOR_*`` variables, its faults from ``TEST_FAULTS``
(comma-separated), and it appends what happens, with a monotonic timestamp, to the file named by
``TEST_EVENTS``, so the tests can check the order of events across the process boundary.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import os
import time
from collections.abc import AsyncIterator, Callable

from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from asgi_supervisor import Supervisor, SupervisorMiddleware


def record(event: str) -> None:
    """Append *event* with the time to the events file, if the test named one."""
    path = os.environ.get("TEST_EVENTS")
    if path:
        with open(path, "a") as events:
            events.write(f"{time.monotonic():.6f} {event}\n")


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello")


async def slow_route(request: Request) -> Response:
    seconds = float(request.query_params.get("seconds", "1"))
    record("slow started")
    await asyncio.sleep(seconds)
    record("slow finished")
    return PlainTextResponse(f"slept {seconds}")


async def endless_stream(request: Request) -> Response:
    async def ticks() -> AsyncIterator[bytes]:
        try:
            n = 0
            while True:
                yield f"tick {n}\n".encode()
                n += 1
                await asyncio.sleep(0.05)
        finally:
            record("stream ended")

    return StreamingResponse(ticks(), media_type="text/plain")


async def big_stream(request: Request) -> Response:
    """An endless stream of 64 KiB chunks, as fast as the client reads them."""

    async def chunks() -> AsyncIterator[bytes]:
        record("big stream started")
        try:
            while True:
                yield b"x" * 65536
        finally:
            record("big stream ended")

    return StreamingResponse(chunks(), media_type="application/octet-stream")


async def ticks(name: str) -> AsyncIterator[str]:
    """An endless tick every 0.1 s, recording when it starts and ends."""
    record(f"{name} started")
    try:
        n = 0
        while True:
            yield f"tick {n}"
            n += 1
            await asyncio.sleep(0.1)
    finally:
        record(f"{name} ended")


async def event_stream(request: Request) -> Response:
    """An endless sse-starlette stream, with nothing in it about shutting down."""
    return EventSourceResponse({"data": tick} async for tick in ticks("events"))


async def until_closing_stream(supervisor: Supervisor, request: Request) -> Response:
    """An endless StreamingResponse that ends at the closing notice."""
    lines = (f"{tick}\n".encode() async for tick in ticks("until-closing"))
    return StreamingResponse(supervisor.until_closing(lines), media_type="text/plain")


async def block_loop(request: Request) -> Response:
    seconds = float(request.query_params.get("seconds", "30"))
    record("blocking the loop")
    # The fault under test: sync code that blocks the event loop.
    time.sleep(seconds)
    return PlainTextResponse("unblocked")


def hold_the_loop(seconds: float) -> None:
    """Sync code that keeps the event loop from turning: what loop-lag detection must name."""
    time.sleep(seconds)


def line_of(fn: Callable[..., object], text: str) -> int:
    """The line number of the first line of *fn*'s source that contains *text*."""
    lines, first = inspect.getsourcelines(fn)
    return first + next(i for i, line in enumerate(lines) if text in line)


async def echo_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    record("websocket accepted")
    try:
        while True:
            await websocket.send_text(await websocket.receive_text())
    except WebSocketDisconnect as exc:
        record(f"websocket disconnected {exc.code}")


async def cooperative_worker(supervisor: Supervisor) -> None:
    """Works until `stopping` is set, then finishes by itself."""
    record("worker started")
    try:
        await supervisor.stopping.wait()
        await asyncio.sleep(0.05)  # a last bit of work
    finally:
        record("worker stopped")


async def parked() -> None:
    """Waits until cancelled: a worker or spawned task with nothing to clean up."""
    await asyncio.sleep(3600)


async def slow_cleanup_worker() -> None:
    """Parks until cancelled, then needs a moment (an await) to clean up."""
    try:
        await asyncio.sleep(3600)
    finally:
        await asyncio.sleep(0.3)
        record("slow cleanup done")


async def swallows_cancel() -> None:
    """Catches every cancellation and carries on: the classic stuck task."""
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            record("swallowed cancel")


async def cleanup_raises() -> None:
    """Its cleanup fails: the others must stop all the same."""
    try:
        await asyncio.sleep(3600)
    finally:
        record("cleanup raising")
        raise RuntimeError("cleanup failed")


async def crash_loop() -> None:
    """Fails at once, every time it is started, after a first suspension."""
    await asyncio.sleep(0.01)
    raise RuntimeError("crash")


async def fails_with(message: str) -> None:
    """A spawned task that fails at once with *message* (which may hold markup)."""
    await asyncio.sleep(0)
    raise RuntimeError(message)


async def spawn_route(supervisor: Supervisor, request: Request) -> Response:
    """Spawn a task named by the query: ``what=swallow`` parks it, ``what=fail`` fails it."""
    name = request.query_params["name"]
    if request.query_params.get("what") == "fail":
        supervisor.spawn(fails_with, f"failed: {name}", name=name)
    else:
        supervisor.spawn(swallows_cancel, name=name)
    return PlainTextResponse("spawned")


def build(supervisor: Supervisor, faults: set[str] | None = None) -> SupervisorMiddleware:
    """The test app: routes, a websocket, an app lifespan, workers, and optional faults."""
    faults = faults or set()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        record("app startup")
        yield
        record("app shutdown")

    supervisor.add_worker(cooperative_worker, supervisor, name="cooperative")
    if "swallow" in faults:
        supervisor.add_worker(swallows_cancel, name="swallows-cancel")
    if "cleanup_raises" in faults:
        supervisor.add_worker(cleanup_raises, name="cleanup-raises")
    if "crash_loop" in faults:
        critical = "critical_shutdown" in faults
        supervisor.add_worker(crash_loop, name="crash-loop", max_restarts=3, critical=critical)
    if "slow_cleanup" in faults:
        supervisor.add_worker(slow_cleanup_worker, name="slow-cleanup")
    routes = [
        Route("/", hello),
        Route("/slow", slow_route),
        Route("/stream", endless_stream),
        Route("/big", big_stream),
        Route("/events", event_stream),
        Route("/until-closing", functools.partial(until_closing_stream, supervisor)),
        Route("/block", block_loop),
        Route("/spawn", functools.partial(spawn_route, supervisor), methods=["POST"]),
        WebSocketRoute("/ws", echo_socket),
    ]
    return SupervisorMiddleware(Starlette(routes=routes, lifespan=lifespan), supervisor=supervisor)


# -- apps whose lifespan goes wrong, one way each ------------------------------------------
# By name, for the transparency tests (in-process and under uvicorn): each serves "/" when
# it can, and each goes wrong at a different point of the lifespan, before or after its
# first `receive()`.


class _MisconfiguredMiddleware:
    """A middleware whose constructor raises: Starlette builds its middleware stack on its
    first call, which under a server is the lifespan scope, before any `receive()`."""

    def __init__(self, app: ASGIApp) -> None:
        raise RuntimeError("BROKER_URL is not set")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError  # never made


async def _http_only(scope: Scope, receive: Receive, send: Send) -> None:
    # What Django's ASGIHandler does with a lifespan scope.
    if scope["type"] != "http":
        raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
    await Starlette(routes=[Route("/", hello)])(scope, receive, send)


async def _silent(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await Starlette(routes=[Route("/", hello)])(scope, receive, send)


async def _raises_after_receive(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await receive()
        raise LookupError("no configuration file")
    await Starlette(routes=[Route("/", hello)])(scope, receive, send)


def _with_lifespan(*, fail_at: str) -> Starlette:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if fail_at == "startup":
            raise ConnectionRefusedError("database at db:5432 refused")
        yield
        raise ConnectionResetError("database pool closed twice")

    return Starlette(routes=[Route("/", hello)], lifespan=lifespan)


LIFESPAN_FAULTS: dict[str, Callable[[], ASGIApp]] = {
    "middleware_raises": lambda: Starlette(
        routes=[Route("/", hello)], middleware=[Middleware(_MisconfiguredMiddleware)]
    ),
    "http_only": lambda: _http_only,
    "silent": lambda: _silent,
    "raises_after_receive": lambda: _raises_after_receive,
    "startup_raises": lambda: _with_lifespan(fail_at="startup"),
    "shutdown_raises": lambda: _with_lifespan(fail_at="shutdown"),
}
