"""`SupervisorMiddleware`: gates requests and websockets by state, and answers the endpoints.

The per-request path is the hot path of every app that uses this library: one dict lookup
for the endpoints, one flag, and a count of in-flight requests, with no task lookup and no
allocation. The request tasks are found by walking the loop's tasks for this middleware's
frames when the shutdown must cancel them or `/tasks` lists them (see `_stacks.tasks_running`).
Everything else (`Connection: close`, rejections) happens only while shutting down.

Its shape follows what CPython 3.11 specialises, measured in instructions per request
(bench/README.md): the scope's type is tested first and every other type leaves at once
through `_not_http`, so the test's jump is short enough to stay specialised; the endpoints
are a membership test, not a method call; the app is called through a local, whose load is
specialised where ``self.app(...)`` is not. Together they cut the work beyond what a no-op
middleware pays by a quarter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import TYPE_CHECKING, Any

from asgi_supervisor._core.cancel import finish_cleanup
from asgi_supervisor._core.lifecycle import Lifecycle, State
from asgi_supervisor._core.stacks import tasks_running
from asgi_supervisor._observe.metrics_group import serve_snapshots

from .asyncio_only import on_asyncio, refuse_lifespan
from .endpoints import Endpoints
from .lifespan import LifespanBridge
from .shadowing import explain, refuse_startup, shadowed_routes
from .sse import SseStarletteFlag
from .websocket import WebSocketConnection

if TYPE_CHECKING:
    from asgi_supervisor._core.requests import RequestCount
    from asgi_supervisor._supervisor.run import Run
    from asgi_supervisor._supervisor.supervisor import Supervisor

    from .types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SupervisorMiddleware", "WebSocketConnection"]

_IDLE = Lifecycle()
# The lifespan leaves its listener folders (the local token, the group's socket) within
# this bound: the folder locks time out after 2 s.
_CLEANUP_PERIOD = 3.0


class SupervisorMiddleware:
    """Pure ASGI middleware that ties an app to a `Supervisor`.

    Example::

        app = FastAPI(
            lifespan=app_lifespan,
            middleware=[Middleware(SupervisorMiddleware, supervisor=supervisor)],
        )

    It composes the supervisor with the app's own lifespan (workers start after the app's
    startup and stop before its shutdown), counts every request and tracks every websocket,
    answers the health, tasks, drain and metrics endpoints under ``path_prefix``
    (``/_supervisor`` by default; a route of the app they would shadow fails the lifespan
    startup, naming it, see `shadowing`), and refuses new work once the supervisor is
    closing: 503 with ``Retry-After`` for HTTP, a refused handshake for websockets. Outside
    a lifespan it runs (before startup, after shutdown, in an instance that does not run the
    lifespan, such as one around a mounted sub-app) requests are served exactly as without
    it.

    Cancellation: a request cancelled by the shutdown's deadline before its response began
    is answered 503 with ``Retry-After`` and ``Connection: close``; one whose response had
    begun is ended, and the report counts both as cancelled. Only the shutdown's own request
    is withdrawn: a request cancelled by someone else as well ends cancelled, as it would
    without the middleware.

    The app's lifespan reaches the server as it would without the middleware: an error the
    app raises on the lifespan scope, before or after its first ``receive()``, fails the
    startup the same way, and a server that then serves without lifespan (uvicorn's
    ``--lifespan auto``) serves the app unsupervised, which the middleware logs once as a
    WARNING.

    Args:
        app: the ASGI app to wrap.
        supervisor: the supervisor whose lifespan this middleware runs.
        app_lifespan: False for an app that does not speak the ASGI lifespan protocol
            (Django's ASGIHandler, an app that asserts an HTTP scope): the middleware then
            answers the server's lifespan messages itself and never passes the app a
            lifespan scope, so the supervisor runs all the same.
    """

    def __init__(self, app: ASGIApp, *, supervisor: Supervisor, app_lifespan: bool = True) -> None:
        self.app = app
        self.supervisor = supervisor
        self.app_lifespan = app_lifespan
        self._endpoints = Endpoints(
            supervisor, request_ages=self._request_ages, run=lambda: self._run
        )
        self._routes = self._endpoints.routes
        # What requests need of the lifespan this instance runs; None outside one.
        self._run: Run | None = None
        self._requests: RequestCount | None = None
        self._lifecycle: Lifecycle = _IDLE  # read only while `requests` is set
        # The run that has not left its listener folders yet (see `_leave`).
        self._staying: Run | None = None
        # sse-starlette's shutdown flag, raised at the closing notice of the lifespan this
        # instance runs (`sse`).
        self._sse = SseStarletteFlag()
        # Built once per state: a rejection is the same bytes every time.
        self._rejections: dict[State, tuple[bytes, list[tuple[bytes, bytes]]]] = {}
        retry_after = str(supervisor.config.retry_after).encode()
        for state in State:
            body = json.dumps({"error": "service is shutting down", "state": state.value}).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", retry_after),
                (b"connection", b"close"),
            ]
            self._rejections[state] = (body, headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            # Kept to one call: a long jump over this block would stop CPython 3.11 from
            # specialising the comparison above, which every request runs.
            await self._not_http(scope, receive, send)
            return
        # The hot path: every request of the app runs what follows, measured side by side
        # with plain Starlette and a no-op middleware by bench/overhead.py.
        if scope["path"] in self._routes:
            await self._routes[scope["path"]](scope, receive, send)
            return
        requests = self._requests
        if requests is None:
            await self.app(scope, receive, send)
            return
        lifecycle = self._lifecycle
        if lifecycle.draining:
            if not lifecycle.accepting:
                await self._reject(send, requests, lifecycle.state)
                return
            send = _ConnectionClose(send)
        # A local, called: CPython 3.11 specialises the load of an instance attribute,
        # not the method-call form of it (`self.app(...)`), which costs 0.04 us more.
        app = self.app
        # `started` marks this frame as a counted request (see `_COUNTED`) and gives its
        # age to /tasks; it is read from the frame, never here.
        started = requests.now  # noqa: F841
        ending = _RETURNED
        requests.in_flight += 1
        try:
            await app(scope, receive, send)
        except asyncio.CancelledError:
            ending = _RAISED
            task = asyncio.current_task()
            assert task is not None
            before = requests.deadline_cancels.get(task)
            if before is None:
                raise  # not ours: the client left, or the app's caller cancelled it
            # The shutdown cancelled this request at the deadline. Withdraw that request
            # and only it, as asyncio's timeouts.py does: a count still above the one
            # before ours means someone else cancelled the task too, and theirs goes on.
            ending = _CANCELLED
            if task.uncancel() > before:
                raise
            if await _answer_cut(send, self._rejections[State.STOPPING]):
                ending = _CUT
        except BaseException:
            # Handlers cost nothing on the way through: only the draining branch below
            # needs to know the app did not return.
            ending = _RAISED
            raise
        finally:
            if lifecycle.draining:
                await self._ended_while_draining(scope, send, requests, lifecycle, ending)
            else:
                requests.in_flight -= 1

    async def _not_http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            run = self._run
            if run is None:
                await self.app(scope, receive, send)
            else:
                await self._websocket(run, scope, receive, send)
        elif scope["type"] == "lifespan":
            if not on_asyncio():  # a sentence, not "no running event loop" (trio)
                await refuse_lifespan(receive, send)
            # The app's routes are all there by now: refuse to take one over, before anything
            # of the app or the supervisor has started.
            shadowed = shadowed_routes(self.app, self._routes)
            if shadowed:
                prefix = self.supervisor.config.path_prefix
                await refuse_startup(receive, send, explain(prefix, shadowed))
            bridge = LifespanBridge(
                self.app,
                self.supervisor,
                receive,
                send,
                begin=lambda: self._begin(receive),
                end=self._end,
            )
            try:
                await (bridge(scope) if self.app_lifespan else bridge.run_alone())
            finally:
                await self._leave()  # done already, unless the lifespan ended abnormally
        else:
            await self.app(scope, receive, send)

    # -- the lifespan this instance runs ----------------------------------------------------

    def _begin(self, server_receive: Receive) -> Run:
        loop = asyncio.get_running_loop()

        def find_requests() -> list[asyncio.Task[Any]]:
            found = tasks_running(asyncio.all_tasks(loop), _CALL_CODE, self, _COUNTED)
            return [task for task, _ in found]

        # The server's lifespan receive is a method of its lifespan object, which holds the
        # server's configuration (uvicorn, hypercorn): see `_host.server_wait`.
        server = getattr(server_receive, "__self__", None)
        run = self.supervisor._begin_startup(find_requests, server=server)
        self._run, self._requests, self._lifecycle = run, run.requests, run.lifecycle
        self._staying = run
        run.notice.subscribe(self._sse.raise_flag)
        if run.presence is not None:
            # A sibling's scrape asks this process for its metrics (`metrics_group`).
            serve_snapshots(run.presence.channel, self.supervisor)
        return run

    async def _end(self) -> None:
        self._run = self._requests = None
        self._lifecycle = _IDLE
        self._sse.lower_flag()
        await self._leave()

    async def _leave(self) -> None:
        # The run leaves its listener folders (the last member removes the local token and
        # the folder) before the server hears the lifespan is over: hypercorn cancels the
        # lifespan task right after that, and a cancellation meanwhile only delays this
        # bounded cleanup.
        run, self._staying = self._staying, None
        if run is not None:
            await finish_cleanup([run.leave()], deadline=time.monotonic() + _CLEANUP_PERIOD)

    def _request_ages(self) -> list[tuple[asyncio.Task[Any], float]]:
        """In-flight requests of the running lifespan on its loop, with their start times."""
        run = self._run
        if run is None or not run.requests.in_flight:
            return []
        found = tasks_running(asyncio.all_tasks(run.loop), _CALL_CODE, self, _COUNTED)
        return [(task, frame.f_locals[_COUNTED]) for task, frame in found]

    # -- shutting down ----------------------------------------------------------------------

    async def _ended_while_draining(
        self, scope: Scope, send: Send, requests: RequestCount, lifecycle: Lifecycle, ending: int
    ) -> None:
        # A request that met the shutdown ended: count how. It stays in flight until then,
        # so that the drain does not end while a stream's last message is being sent.
        cut = None
        try:
            if ending == _CUT:
                cut = _request_name(scope)
            elif ending == _RETURNED and not lifecycle.accepting and await _end_body(send):
                # The app returned after the closing notice without ending its body:
                # sse-starlette does, ending a stream by cancelling the task that sends it.
                # End the body for it, so that its client sees the stream end, not a reset.
                run = self._run
                if run is not None:
                    run.notice.stream_ended()
        finally:
            requests.left_while_draining(cancelled=ending == _CANCELLED, cut=cut)

    async def _reject(self, send: Send, requests: RequestCount, state: State) -> None:
        requests.rejected_count += 1
        body, headers = self._rejections[state]
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _websocket(self, run: Run, scope: Scope, receive: Receive, send: Send) -> None:
        lifecycle = run.lifecycle
        if not lifecycle.accepting:
            # Closing before accepting refuses the handshake (servers answer 403).
            message = await receive()
            if message["type"] == "websocket.connect":
                await send({"type": "websocket.close", "code": 1013})
            return
        task = asyncio.current_task()
        assert task is not None
        connection = WebSocketConnection(receive, send)
        run.registry.add_websocket(task, connection)
        try:
            await self.app(scope, connection.receive, connection.send)
        finally:
            run.registry.remove_websocket(task)
            if lifecycle.draining:
                run.shutdown.websocket_done()


# A task runs a counted request when its await chain holds a frame of this code with the
# local `_COUNTED` bound; `request_ages` and the shutdown find requests that way.
_CALL_CODE = SupervisorMiddleware.__call__.__code__
_COUNTED = "started"


# How a request that met the shutdown ended (`SupervisorMiddleware.__call__`'s `ending`).
_RETURNED, _RAISED, _CANCELLED, _CUT = range(4)
# A message to a server that is not stuck writing is taken at once; one stuck behind a client
# that stopped reading waits for it to read, forever. Probing the response's state waits no
# longer than this.
_SEND_TIMEOUT = 0.5
# A request's name in the report is at most this long (the path is cut).
_NAME_LENGTH = 120


async def _answer_cut(send: Send, rejection: tuple[bytes, list[tuple[bytes, bytes]]]) -> bool:
    """Answer 503 to a request the deadline cancelled, if its response had not begun;
    return True when it had, and was not complete: its client got part of a body.

    The task was cancelled by us alone and ends here, quietly: no traceback from the server.
    Whether the response had begun is learnt from the server, at no cost to requests that
    never meet a shutdown: a second response start is refused (or, behind a client that
    stopped reading, waits), and so is a body message after the last one.
    """
    body, headers = rejection
    try:
        async with asyncio.timeout(_SEND_TIMEOUT):
            await send({"type": "http.response.start", "status": 503, "headers": headers})
    except TimeoutError:
        # Stuck behind what was sent before (a start that has not begun never waits): the
        # client stopped reading a response that had begun, and will not get all of it.
        return True
    except Exception:  # refused: the response had begun; was it complete?
        return await _unfinished(send)
    with contextlib.suppress(Exception):  # the client left meanwhile: nothing to tell it
        await send({"type": "http.response.body", "body": body})
    return False


async def _unfinished(send: Send) -> bool:
    # An empty body message that is not the last changes nothing on the wire; the server
    # refuses it only if the response is complete.
    try:
        async with asyncio.timeout(_SEND_TIMEOUT):
            await send({"type": "http.response.body", "body": b"", "more_body": True})
    except TimeoutError:
        return True  # stuck writing the body: its client stopped reading
    except Exception:
        return False  # complete: what was cut came after it (a background task)
    return True


async def _end_body(send: Send) -> bool:
    """Send the last, empty body message; True if the server took it (the body was not
    ended), False if it refused (it was, or never began) or is stuck writing."""
    try:
        async with asyncio.timeout(_SEND_TIMEOUT):
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except Exception:
        return False
    return True


def _request_name(scope: Scope) -> str:
    """``GET /export from 10.0.0.7:51234``: the method, path and client of a request, for
    the report, with what could fake a log line escaped and a long path cut."""
    path = str(scope.get("path", ""))
    if len(path) > _NAME_LENGTH:
        path = path[:_NAME_LENGTH] + "..."
    name = f"{scope.get('method', '?')} {path}"
    client = scope.get("client")
    if client:
        name += f" from {client[0]}:{client[1]}"
    return name.encode("ascii", "backslashreplace").decode().translate(_CONTROLS)


# Control characters, which a decoded path may hold (%0A), written as escapes.
_CONTROLS = {code: f"\\x{code:02x}" for code in (*range(0x20), 0x7F)}


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
