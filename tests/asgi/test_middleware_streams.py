"""Responses that meet the shutdown, in-process: cut mid-body at the deadline (counted apart,
named, never stuck behind a client that stopped reading), or ended at the closing notice
(`until_closing`, sse-starlette), their clients seeing the body end."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any

import pytest
from sse_starlette import EventSourceResponse
from sse_starlette.sse import AppStatus
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from asgi_supervisor import ShutdownReport, Supervisor, SupervisorMiddleware
from asgi_supervisor.testing import LifespanManager
from tests._inprocess import LOOPBACK, Held, client, quiet_supervisor

pytestmark = pytest.mark.timeout(20)

START = {"type": "http.response.start", "status": 200, "headers": []}


def chunk(body: bytes, more_body: bool = True) -> dict[str, Any]:
    return {"type": "http.response.body", "body": body, "more_body": more_body}


class ServerCycle:
    """Plays a server's side of one request as uvicorn does: it refuses a second start and
    any message after the last body, and, from the *stall_after*-th body message on, every
    message waits, as behind a client that stopped reading."""

    def __init__(self, stall_after: int | None = None) -> None:
        self.stall_after = stall_after
        self.sent: list[MutableMapping[str, Any]] = []
        self.started = self.complete = False

    async def receive(self) -> dict[str, Any]:
        if not self.sent:
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # no disconnect: the client is still there
        raise AssertionError("unreachable")

    async def send(self, message: MutableMapping[str, Any]) -> None:
        bodies = sum(1 for sent in self.sent if sent["type"] == "http.response.body")
        if self.stall_after is not None and self.started and bodies >= self.stall_after:
            await asyncio.Event().wait()
        if not self.started:
            if message["type"] != "http.response.start":
                raise RuntimeError("Expected ASGI message 'http.response.start'.")
            self.started = True
        elif self.complete or message["type"] != "http.response.body":
            raise RuntimeError(f"Unexpected ASGI message {message['type']!r}.")
        elif not message.get("more_body", False):
            self.complete = True
        self.sent.append(message)

    def request(self, app: SupervisorMiddleware, path: str = "/stream") -> asyncio.Task[None]:
        scope = {"type": "http", "method": "GET", "path": path, "headers": [], "client": LOOPBACK}
        return asyncio.create_task(app(scope, self.receive, self.send))


def sends_then(
    began: asyncio.Event, *messages: dict[str, Any], then: Callable[[], Awaitable[object]]
) -> Callable[[Any, Any, Any], Awaitable[None]]:
    """A raw ASGI app whose requests send *messages*, set *began*, then await *then()*; it has
    no lifespan of its own (`app_lifespan=False`)."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for message in messages:
                await send(message)
            began.set()
            await then()

    return app


async def drained(
    supervisor: Supervisor, app: SupervisorMiddleware, cycle: ServerCycle, began: asyncio.Event
) -> tuple[ShutdownReport, asyncio.Task[None]]:
    """Run one request of *app* on *cycle* until *began*, then drain; the report, and the
    request's task once it has ended."""
    async with LifespanManager(app):
        request = cycle.request(app)
        await began.wait()
        report = await supervisor.drain()
        await asyncio.wait({request}, timeout=5)
    return report, request


async def test_a_response_cut_mid_body_is_counted_apart_and_named() -> None:
    """1. a stream has sent its start and a chunk; 2. the deadline cancels it; 3. no 503
    follows the start, and the report counts it as cut mid-body, names it, and is not
    clean, where before it counted it as answered 503."""
    supervisor = quiet_supervisor(grace_period=1.5, cancel_timeout=0.5)
    began = asyncio.Event()

    stream = sends_then(began, START, chunk(b"tick\n"), then=lambda: asyncio.sleep(3600))
    cycle = ServerCycle()
    report, request = await drained(
        supervisor,
        SupervisorMiddleware(stream, supervisor=supervisor, app_lifespan=False),
        cycle,
        began,
    )
    assert request.done()
    assert not request.cancelled()
    assert [m.get("status") for m in cycle.sent if m["type"] == "http.response.start"] == [200]
    assert (report.requests_cut_count, report.requests_cancelled_count) == (1, 0)
    assert report.requests_cut == ("GET /stream from 127.0.0.1:4000",)
    assert report.reasons == (
        "1 response cut mid-body at the deadline (GET /stream from 127.0.0.1:4000)",
    )


async def test_a_client_that_stopped_reading_cannot_hold_the_cut_response() -> None:
    """1. a stream's second chunk waits for a client that stopped reading; 2. the deadline
    cancels it; 3. the 503 it tries would wait too, so it gives up within its bound: the
    request ends (not by the second cancel, with a traceback) and counts as cut."""
    supervisor = quiet_supervisor(grace_period=2.5, cancel_timeout=1.5)
    began = asyncio.Event()

    async def stream(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send(START)
            await send(chunk(b"x" * 65536))
            began.set()
            await send(chunk(b"x" * 65536))  # waits: the client is not reading

    cycle = ServerCycle(stall_after=1)
    report, request = await drained(
        supervisor,
        SupervisorMiddleware(stream, supervisor=supervisor, app_lifespan=False),
        cycle,
        began,
    )
    assert request.done()
    assert not request.cancelled()
    assert request.exception() is None
    assert report.requests_cut_count == 1
    assert report.cut_short == ()
    assert report.duration < 2.5 - 0.3  # over before the second cancel was due


async def test_a_request_cancelled_after_its_response_was_complete_counts_as_cancelled() -> None:
    """Cancelled while its work after a complete response runs (a background task): its
    client got the whole answer, so it is not cut; its work was, so it counts cancelled."""
    supervisor = quiet_supervisor(grace_period=1.5, cancel_timeout=0.5)
    began = asyncio.Event()

    # After its whole response, the request goes on (sending an email, say).
    then_background = sends_then(
        began, START, chunk(b"done", more_body=False), then=lambda: asyncio.sleep(3600)
    )
    cycle = ServerCycle()
    report, _ = await drained(
        supervisor,
        SupervisorMiddleware(then_background, supervisor=supervisor, app_lifespan=False),
        cycle,
        began,
    )
    assert (report.requests_cancelled_count, report.requests_cut_count) == (1, 0)
    assert cycle.sent == [START, chunk(b"done", more_body=False)]


async def test_a_stream_that_stops_without_ending_its_body_at_the_notice_is_ended() -> None:
    """1. a stream ends itself at the closing notice but returns without its last message
    (what sse-starlette does); 2. the middleware sends it, so the client sees the body end;
    3. the report counts a stream ended at the notice, and is clean."""
    supervisor = quiet_supervisor()
    began = asyncio.Event()

    stops_at_the_notice = sends_then(
        began, START, chunk(b"data: 1\n\n"), then=supervisor.closing.wait
    )
    cycle = ServerCycle()
    report, _ = await drained(
        supervisor,
        SupervisorMiddleware(stops_at_the_notice, supervisor=supervisor, app_lifespan=False),
        cycle,
        began,
    )
    assert cycle.sent[-1] == chunk(b"", more_body=False)
    assert cycle.complete
    assert (report.streams_ended_count, report.requests_drained_count) == (1, 1)
    assert report.clean


async def test_a_request_that_completes_while_closing_gets_nothing_more() -> None:
    """A request that ends with a whole response after the notice is drained, not a stream:
    the server refuses the last message the middleware offers, and nothing else is sent."""
    supervisor = quiet_supervisor()
    gate = Held()

    async def answered(request: Request) -> Response:
        await gate.endpoint(request)
        return Response("done")

    app = SupervisorMiddleware(
        Starlette(routes=[Route("/stream", answered)]), supervisor=supervisor
    )
    cycle = ServerCycle()
    async with LifespanManager(app):
        request = cycle.request(app)
        await gate.entered.wait()
        drain = asyncio.create_task(supervisor.drain())
        await asyncio.wait_for(supervisor.closing.wait(), 2)
        gate.release.set()
        await request
        report = await drain
    assert [m["type"] for m in cycle.sent] == ["http.response.start", "http.response.body"]
    assert (report.requests_drained_count, report.streams_ended_count) == (1, 0)


async def endless(began: asyncio.Event) -> AsyncIterator[bytes]:
    n = 0
    while True:
        yield f"tick {n}\n".encode()
        began.set()
        n += 1
        await asyncio.sleep(0.01)


async def streamed_through_a_drain(
    supervisor: Supervisor, endpoint: Callable[[Request], Awaitable[Response]], began: asyncio.Event
) -> tuple[str, ShutdownReport]:
    """GET the endless stream *endpoint* answers until *began*, then drain: the body the
    client got, and the report."""
    routes = [Route("/stream", endpoint)]
    app = SupervisorMiddleware(Starlette(routes=routes), supervisor=supervisor)
    async with LifespanManager(app), client(app) as http:
        response = asyncio.create_task(http.get("/stream"))
        await began.wait()
        report = await supervisor.drain()
        body = (await asyncio.wait_for(response, 2)).text
    assert (report.streams_ended_count, report.requests_drained_count) == (1, 1)
    assert report.clean
    assert report.duration < 1.0
    return body, report


async def test_until_closing_ends_a_streaming_response_at_the_notice() -> None:
    """1. an endless StreamingResponse through `until_closing` streams; 2. drain: at the
    notice its iterator ends, Starlette sends the end of the body, and the client gets a
    whole response; 3. the report counts a stream ended at the notice, and is clean."""
    supervisor = quiet_supervisor()
    began = asyncio.Event()

    async def stream(request: Request) -> Response:
        return StreamingResponse(supervisor.until_closing(endless(began)))

    body, _ = await streamed_through_a_drain(supervisor, stream, began)
    assert body.startswith("tick 0\n")
    assert body.endswith("\n")


async def test_an_event_source_response_ends_at_the_notice_with_no_code_in_the_app() -> None:
    """1. an endless sse-starlette EventSourceResponse; 2. drain: at the notice the
    middleware raises sse-starlette's own shutdown flag, the stream ends within its 0.5 s
    poll, and the middleware ends the body sse-starlette left open; 3. the report counts a
    stream ended at the notice; 4. the flag is lowered once the lifespan is over."""
    supervisor = quiet_supervisor()
    began = asyncio.Event()

    async def events(request: Request) -> Response:
        async def ticks() -> AsyncIterator[dict[str, str]]:
            async for tick in endless(began):
                yield {"data": tick.decode().strip()}

        return EventSourceResponse(ticks())

    assert not AppStatus.should_exit
    body, _ = await streamed_through_a_drain(supervisor, events, began)
    assert body.startswith("data: tick 0\r\n\r\n")
    assert not AppStatus.should_exit
