"""`SupervisorMiddleware`: gates requests and websockets by state, and answers the endpoints.

The per-request path is the hot path of every app that uses this library: it does one dict
lookup for the endpoints, reads two precomputed flags, and records the request's task in a
dict. Everything else (`Connection: close`, rejections) happens only while shutting down.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

from ._asyncio_only import current_task as asyncio_task
from ._asyncio_only import on_asyncio, refuse_lifespan
from ._endpoints import Endpoints
from ._lifespan import run_lifespan
from ._state import State
from ._websocket import WebSocketConnection

if TYPE_CHECKING:
    from ._supervisor import Supervisor
    from ._types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SupervisorMiddleware", "WebSocketConnection"]

_CLOCK_PERIOD = 0.1
_monotonic = time.monotonic
# `asyncio.current_task()` costs 0.4 us on 3.11, mostly in `get_running_loop()`; the loop's
# entry in this dict is the same answer for 0.03 us. Python versions without the dict (3.14
# keeps the current task in the thread state) fall back to the public function.
_tasks_by_loop: dict[object, asyncio.Task[Any]] | None = getattr(
    asyncio.tasks, "_current_tasks", None
)
if not isinstance(_tasks_by_loop, dict):
    _tasks_by_loop = None


class SupervisorMiddleware:
    """Pure ASGI middleware that ties an app to a `Supervisor`.

    Example::

        app = FastAPI(
            lifespan=app_lifespan,
            middleware=[Middleware(SupervisorMiddleware, supervisor=supervisor)],
        )

    It composes the supervisor with the app's own lifespan (workers start after the app's
    startup and stop before its shutdown), tracks every request and websocket, answers the
    health, tasks and drain endpoints under ``path_prefix``, and refuses new work once the
    supervisor is closing: 503 with ``Retry-After`` for HTTP, a refused handshake for
    websockets. Cancellation of tracked requests happens in the stopping phase only.

    Args:
        app: the ASGI app to wrap.
        supervisor: the supervisor whose state and registry this middleware feeds.
    """

    def __init__(self, app: ASGIApp, *, supervisor: Supervisor) -> None:
        self.app = app
        self.supervisor = supervisor
        self._routes = Endpoints(supervisor).routes
        # Held directly: both live as long as the supervisor (reset in place).
        self._lifecycle = supervisor.lifecycle
        self._requests = supervisor.registry.requests
        self._loop: asyncio.AbstractEventLoop | None = None
        # A request's start time only feeds its age in /tasks. Reading this attribute is
        # measurably cheaper than calling the clock on every request; a timer refreshes it
        # to 0.1 s while the lifespan runs. Outside a lifespan it is 0.0 and the clock is
        # read instead.
        self.now = 0.0
        self._ticker: asyncio.TimerHandle | None = None
        config = supervisor.config
        # Built once per state: a rejection is the same bytes every time.
        self._rejections: dict[State, tuple[bytes, list[tuple[bytes, bytes]]]] = {}
        for state in State:
            body = json.dumps({"error": "service is shutting down", "state": state.value}).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(config.retry_after).encode()),
                (b"connection", b"close"),
            ]
            self._rejections[state] = (body, headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            route = self._routes.get(scope["path"])
            if route is not None:
                await route(scope, receive, send)
                return
            if self._lifecycle.draining:
                await self._http_while_draining(scope, receive, send)
                return
            # Inlined `_current_task()`: this is the path every request takes.
            task = _tasks_by_loop.get(self._loop) if _tasks_by_loop is not None else None
            if task is None:
                task = self._current_task()
            requests = self._requests
            requests[task] = self.now or _monotonic()
            try:
                await self.app(scope, receive, send)
            finally:
                del requests[task]
                # Scenario: the request started while ready, and draining began meanwhile;
                # the drain is waiting for it.
                if self._lifecycle.draining:
                    self._request_done()
        elif scope["type"] == "websocket":
            await self._websocket(scope, receive, send)
        elif scope["type"] == "lifespan":
            if not on_asyncio():  # a sentence, not "no running event loop" (trio: issue 12)
                await refuse_lifespan(receive, send)
            self._loop = asyncio.get_running_loop()
            self._tick()
            try:
                await run_lifespan(self.app, self.supervisor, scope, receive, send)
            finally:
                if self._ticker is not None:
                    self._ticker.cancel()
                    self._ticker = None
                self.now = 0.0
        else:
            await self.app(scope, receive, send)

    async def _http_while_draining(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._lifecycle.accepting:
            await self._reject(send)
            return
        requests = self._requests
        task = self._current_task()
        requests[task] = _monotonic()
        try:
            await self.app(scope, receive, _ConnectionClose(send))
        finally:
            del requests[task]
            self._request_done()

    def _tick(self) -> None:
        self.now = _monotonic()
        assert self._loop is not None
        self._ticker = self._loop.call_later(_CLOCK_PERIOD, self._tick)

    def _current_task(self) -> asyncio.Task[Any]:
        task = None
        if _tasks_by_loop is not None:
            task = _tasks_by_loop.get(self._loop)
        if task is None:
            # No lifespan ran in this loop (lifespan off, or a test client in a new loop).
            task = asyncio_task()  # off asyncio, a clear NotAsyncioError (trio: issue 12)
        return task

    def _request_done(self) -> None:
        shutdown = self.supervisor.shutdown
        if shutdown is not None:
            shutdown.request_done()

    async def _reject(self, send: Send) -> None:
        shutdown = self.supervisor.shutdown
        if shutdown is not None:
            shutdown.requests_rejected_count += 1
        body, headers = self._rejections[self.supervisor.state]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        supervisor = self.supervisor
        lifecycle = supervisor.lifecycle
        if not lifecycle.accepting:
            # Closing before accepting refuses the handshake (servers answer 403).
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.close", "code": 1013})
            return
        connection = WebSocketConnection(receive, send)
        websockets = supervisor.registry.websockets
        task = self._current_task()
        websockets[task] = connection
        try:
            await self.app(scope, connection.receive, connection.send)
        finally:
            del websockets[task]
            if lifecycle.draining and supervisor.shutdown is not None:
                supervisor.shutdown.websocket_done()


class _ConnectionClose:
    """A send that adds ``Connection: close`` to the response, while draining."""

    __slots__ = ("_send",)

    def __init__(self, send: Send) -> None:
        self._send = send

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"connection"]
            headers.append((b"connection", b"close"))
            message = {**message, "headers": headers}
        await self._send(message)
