"""Latency of `/tasks` with 10 000 tracked tasks, with and without stacks.

The middleware is called in-process with an authorized GET. Target: 50 ms without stacks.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from starlette.applications import Starlette

from asgi_supervisor import Supervisor, SupervisorMiddleware
from asgi_supervisor.testing import LifespanManager
from bench._harness import Summary, interleave_async, print_table

TOKEN = "bench-token"


async def parked_in_user_code() -> None:
    await asyncio.sleep(3600)


def get(app: SupervisorMiddleware, query: bytes) -> Callable[[], Awaitable[float]]:
    async def run() -> float:
        body: list[bytes] = []
        statuses: list[int] = []
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/_supervisor/tasks",
            "query_string": query,
            "headers": [(b"authorization", f"Bearer {TOKEN}".encode())],
            "client": ("127.0.0.1", 1234),
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: Any) -> None:
            if "status" in message:
                statuses.append(message["status"])
            body.append(message.get("body", b""))

        started = time.perf_counter()
        await app(scope, receive, send)
        elapsed = time.perf_counter() - started
        if statuses != [200] or not body[-1]:
            raise RuntimeError(f"/tasks answered {statuses} with {body[-1][:200]!r}")
        return elapsed * 1e3

    return run


async def measure(n: int, repeats: int) -> dict[str, Summary]:
    """Interleaved latencies (ms) of /tasks variants with *n* spawned tasks."""
    supervisor = Supervisor(
        handle_signals=False,
        watchdog=False,
        grace_period=600,
        cancel_timeout=300,
        admin_token=TOKEN,
        local_token=False,
    )
    app = SupervisorMiddleware(Starlette(), supervisor=supervisor)
    async with LifespanManager(app):
        for _ in range(n):
            supervisor.spawn(parked_in_user_code)
        await asyncio.sleep(0)
        results = await interleave_async(
            {
                "/tasks (first 100)": get(app, b""),
                "/tasks?kind=task&name=x (filter all)": get(app, b"kind=task&name=x"),
                f"/tasks?limit={n} (all rows)": get(app, f"limit={n}".encode()),
                "/tasks?stack=1 (first 100)": get(app, b"stack=1"),
                f"/tasks?limit={n}&stack=1": get(app, f"limit={n}&stack=1".encode()),
            },
            repeats,
        )
        await supervisor.drain()
    return results


def main(argv: Sequence[str] = ()) -> int:
    n, repeats = (50, 1) if "--quick" in argv else (10_000, 5)
    results = asyncio.run(measure(n, repeats))
    rows = list(results.values())
    print_table(f"/tasks latency with {n:,} tracked tasks (ms)", "ms", rows, rows[0])
    default = results["/tasks (first 100)"]
    full = results[f"/tasks?limit={n} (all rows)"]
    verdict = "met" if default.median <= 50 else "MISSED"
    print(f"  target <= 50 ms without stacks: {verdict} ({default.median:.1f} ms for the default")
    print(f"  page of 100; {full.median:.1f} ms to list all {n:,} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
