"""Per-request cost of the middleware, in-process, against plain Starlette and no-op wrappers.

Calls the ASGI app directly with a fixed scope and dummy receive/send, so only Python work
is measured: no sockets, no server. Target: SupervisorMiddleware adds at most 0.5 us.

Then the cost of loop-lag detection: the same supervised app, the loop turning between
requests (so the heartbeat runs), without detection and with it at two thresholds. The clock
is the process's CPU time, which counts the watcher thread too.
Metrics are computed when scraped, so enabling them should add nothing per request: the
"metrics on" variant is one worker of a process group (three siblings in this process,
members of its listener folder) and is scraped before each sample; the cost of a scrape
itself, which asks the siblings over the folder's channel, is measured apart, per scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import socket
import sys
import tempfile
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from asgi_supervisor import Supervisor, SupervisorMiddleware
from asgi_supervisor._host.looplag import LoopLagMonitor
from asgi_supervisor._host.presence import Presence
from asgi_supervisor._host.runtime_dir import RuntimeDir
from asgi_supervisor._host.tcp_table import Listener
from asgi_supervisor._observe.metrics import take_snapshot
from asgi_supervisor.testing import LifespanManager
from bench._harness import Summary, clock, interleave_async, paired_delta, print_table

App = Callable[[Any, Any, Any], Awaitable[None]]
SCOPE = {
    "type": "http",
    "asgi": {"version": "3.0"},
    "http_version": "1.1",
    "method": "GET",
    "scheme": "http",
    "path": "/",
    "raw_path": b"/",
    "query_string": b"",
    "headers": [],
    "client": ("127.0.0.1", 1234),
    "server": ("127.0.0.1", 8000),
    "state": {},
}
METRICS = "/_supervisor/metrics"  # the endpoint at the default path_prefix


async def hello(request: Request) -> Response:
    return PlainTextResponse("hello")


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        await websocket.send_text(message["text"])


def starlette() -> Starlette:
    return Starlette(routes=[Route("/", hello), WebSocketRoute("/ws", echo)])


class NoOp:
    """The cheapest pure-ASGI middleware: the floor any middleware pays."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


class BaseNoOp(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        return await call_next(request)


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Any) -> None:
    return None


def per_request(app: App, calls: int) -> Callable[[], Awaitable[float]]:
    async def run() -> float:
        started = clock()
        for _ in range(calls):
            await app(dict(SCOPE), _receive, _send)
        return (clock() - started) / calls * 1e6

    return run


def websocket_round_trip(app: App, messages: int) -> Callable[[], Awaitable[float]]:
    async def run() -> float:
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        outbox: asyncio.Queue[Any] = asyncio.Queue()
        scope = {
            **SCOPE,
            "type": "websocket",
            "path": "/ws",
            "raw_path": b"/ws",
            "subprotocols": [],
        }
        await inbox.put({"type": "websocket.connect"})
        handler = asyncio.ensure_future(app(scope, inbox.get, outbox.put))
        await outbox.get()  # accept
        started = clock()
        for _ in range(messages):
            await inbox.put({"type": "websocket.receive", "text": "ping"})
            await outbox.get()
        elapsed = clock() - started
        await inbox.put({"type": "websocket.disconnect", "code": 1000})
        await handler
        return elapsed / messages * 1e6

    return run


def per_request_watched(
    app: App, calls: int, loop_lag_threshold: float | None
) -> Callable[[], Awaitable[float]]:
    """Per-request cost with loop-lag detection at *loop_lag_threshold* (None: off) running
    only during the sample, the loop turning after each request."""
    monitor = LoopLagMonitor(loop_lag_threshold)

    async def run() -> float:
        monitor.start(asyncio.get_running_loop())
        started = clock()
        for _ in range(calls):
            await app(dict(SCOPE), _receive, _send)
            await asyncio.sleep(0)  # a turn of the loop: heartbeats run here
        elapsed = clock() - started
        monitor.stop()
        await monitor.wait_finished()
        return elapsed / calls * 1e6

    return run


def scraped(app: App, calls: int) -> Callable[[], Awaitable[float]]:
    """`per_request`, after one untimed scrape of ``/metrics``."""
    timed = per_request(app, calls)

    async def run() -> float:
        await scrape(app, 1)()
        return await timed()

    return run


async def measure_loop_lag(calls: int, repeats: int) -> dict[str, Summary]:
    """Interleaved per-request timings (us) without and with loop-lag detection."""
    supervisor = Supervisor(handle_signals=False, watchdog=False, loop_lag_threshold=None)
    supervised = SupervisorMiddleware(starlette(), supervisor=supervisor)
    variants = {
        "loop-lag detection off": per_request_watched(supervised, calls, None),
        "loop-lag 0.5 s (default)": per_request_watched(supervised, calls, 0.5),
        "loop-lag 0.01 s (the minimum)": per_request_watched(supervised, calls, 0.01),
    }
    async with LifespanManager(supervised):
        for run in variants.values():
            await run()  # warm up
        return await interleave_async(variants, repeats)


def scrape(app: App, calls: int) -> Callable[[], Awaitable[float]]:
    """Microseconds per ``GET /metrics``."""
    scope = {**SCOPE, "path": METRICS, "raw_path": METRICS.encode()}

    async def run() -> float:
        started = clock()
        for _ in range(calls):
            await app(dict(scope), _receive, _send)
        return (clock() - started) / calls * 1e6

    return run


async def process_group(stack: contextlib.AsyncExitStack, peers: int) -> SupervisorMiddleware:
    """A supervised app in a process group of *peers* + 1, its lifespan running on *stack*.

    The peers are members of its listener folder in this process, under made-up pids, each
    answering a scrape with a copy of the app's own snapshot.
    """
    listener = stack.enter_context(socket.create_server(("127.0.0.1", 0)))
    address, port = listener.getsockname()[:2]
    found = {Listener(address, port, os.fstat(listener.fileno()).st_ino, os.geteuid())}
    directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-"))
    supervisor = Supervisor(
        handle_signals=False, watchdog=False, local_token=False, runtime_dir=directory
    )
    app = SupervisorMiddleware(starlette(), supervisor=supervisor)
    await stack.enter_async_context(LifespanManager(app))
    snapshot = await take_snapshot(supervisor)
    loop = asyncio.get_running_loop()
    where = RuntimeDir(Path(directory), removable=False)
    for n in range(peers):
        peer = Presence(
            loop, runtime_dir=lambda endpoints: where, pid=2**22 + n, find=lambda: found
        )
        copy = dataclasses.replace(snapshot, pid=peer.pid).to_dict()

        async def answer(body: dict[str, Any], copy: dict[str, Any] = copy) -> dict[str, Any]:
            return copy

        peer.channel.serve("metrics", answer)
        peer.start()
        stack.push_async_callback(peer.aclose)
    async with asyncio.timeout(10):  # every peer answers a scrape
        while (await _scraped_pids(app)) < peers + 1:
            await asyncio.sleep(0.01)
    return app


async def _scraped_pids(app: App) -> int:
    body = bytearray()

    async def collect(message: Any) -> None:
        body.extend(message.get("body", b""))

    await app({**SCOPE, "path": METRICS, "raw_path": METRICS.encode()}, _receive, collect)
    return body.count(b"asgi_supervisor_group_answered{")


async def measure(calls: int, repeats: int) -> dict[str, Summary]:
    """Interleaved per-request and websocket timings (us), with started supervisors."""
    supervisor = Supervisor(handle_signals=False, watchdog=False)
    supervised = SupervisorMiddleware(starlette(), supervisor=supervisor)
    plain = starlette()
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(LifespanManager(supervised))
        metered = await process_group(stack, peers=3)
        variants = {
            "plain Starlette": per_request(plain, calls),
            "+ SupervisorMiddleware": per_request(supervised, calls),
            "+ SupervisorMiddleware, metrics on": scraped(metered, calls),
            "+ no-op pure ASGI middleware": per_request(NoOp(starlette()), calls),
            "+ no-op BaseHTTPMiddleware": per_request(BaseNoOp(starlette()), max(1, calls // 10)),
            "websocket: plain": websocket_round_trip(plain, calls),
            "websocket: + SupervisorMiddleware": websocket_round_trip(supervised, calls),
        }
        for run in variants.values():
            await run()  # warm up
        return await interleave_async(variants, repeats)


async def measure_scrape(calls: int, repeats: int, peers: int = 3) -> dict[str, Summary]:
    """Microseconds per scrape: one process, and one of a group with *peers* other workers."""
    # Outside any group: in this one process it would find the group's listener too.
    single_supervisor = Supervisor(
        handle_signals=False, watchdog=False, local_token=False, process_group=False
    )
    single = SupervisorMiddleware(starlette(), supervisor=single_supervisor)
    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(LifespanManager(single))
        group = await process_group(stack, peers)
        variants = {
            "scrape /metrics, one process": scrape(single, calls),
            f"scrape /metrics, group of {peers + 1}": scrape(group, calls),
        }
        for run in variants.values():
            await run()  # warm up
        return await interleave_async(variants, repeats)


def main(argv: Sequence[str] = ()) -> int:
    calls, repeats = (200, 1) if "--quick" in argv else (10_000, 31)
    results = asyncio.run(measure(calls, repeats))
    lag = asyncio.run(measure_loop_lag(calls, repeats))
    http = [results[name] for name in list(results)[:5]]
    print_table(
        "Per-request cost, in-process (us per request)", "us", http, results["plain Starlette"]
    )
    ws = [results["websocket: plain"], results["websocket: + SupervisorMiddleware"]]
    print_table("Websocket message round trip, in-process (us)", "us", ws, ws[0])
    scrapes = asyncio.run(measure_scrape(max(1, calls // 100), repeats))
    rows = list(scrapes.values())
    print_table("Scraping /metrics, in-process (us per scrape)", "us", rows, rows[0])
    added = results["+ SupervisorMiddleware"].median - results["plain Starlette"].median
    floor = results["+ no-op pure ASGI middleware"].median - results["plain Starlette"].median
    metrics = paired_delta(
        results["+ SupervisorMiddleware, metrics on"], results["+ SupervisorMiddleware"]
    )
    print(
        f"\n  SupervisorMiddleware adds {added:+.3f} us per request (no-op floor {floor:+.3f} us);"
    )
    print(f"  target <= 0.5 us: {'met' if added <= 0.5 else 'MISSED'}")
    print(f"  metrics on (one of a group of 4, scraped): {metrics:+.3f} us per request")
    rows = list(lag.values())
    print_table(
        "Loop-lag detection, the loop turning after each request (us per request)",
        "us",
        rows,
        rows[0],
    )
    default = paired_delta(rows[1], rows[0])
    print(f"\n  loop-lag detection at 0.5 s adds {default:+.3f} us per request")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
