"""The same drain ordering under hypercorn in-process mode (``-w 0``).

Hypercorn installs its handlers with ``loop.add_signal_handler``; the supervisor takes the
loop's handle over and runs it when the server may stop. (Hypercorn's default mode runs the
app in a child process that never receives the signal: see docs/servers.md.)
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest
import websockets

from tests.servers._process import ServerProcess, wait_for_event, wait_for_status

pytestmark = [pytest.mark.server, pytest.mark.timeout(60)]


async def test_hypercorn_drain_ordering(tmp_path: Path) -> None:
    """1. a slow request and a websocket are open; 2. SIGTERM; 3. readiness 503 while requests
    are served with Connection: close; 4. the websocket gets our code; 5. the slow request
    completes; 6. workers stop before the app's shutdown; 7. hypercorn exits 0 in time."""
    env = {
        "ASGI_SUPERVISOR_SHUTDOWN_DELAY": "1",
        "ASGI_SUPERVISOR_WEBSOCKET_CLOSE_CODE": "1001",
        "ASGI_SUPERVISOR_WEBSOCKET_CLOSE_REASON": "going away",
    }
    with ServerProcess(
        "tests.servers.served:app", tmp_path=tmp_path, server="hypercorn", env=env
    ) as server:
        async with (
            httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as client,
            websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as ws,
        ):
            slow = asyncio.create_task(client.get("/slow", params={"seconds": 2}))
            await wait_for_event(server, "slow started")
            sent = server.signal(signal.SIGTERM)
            assert (
                await wait_for_status(f"{server.base_url}/_supervisor/health/ready", 503, 1.0)
                - sent
                < 0.3
            )
            async with httpx.AsyncClient(base_url=server.base_url, timeout=2.0) as other:
                served = await other.get("/")
            assert served.status_code == 200
            assert served.headers["connection"] == "close"
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1001, "going away")
            assert (await slow).status_code == 200
        assert server.wait_exit(timeout=8) == 0
        assert time.monotonic() - sent < 6 + 1
        events = [event for _, event in server.events()]
    assert "websocket disconnected 1001" in events
    assert events.index("worker stopped") < events.index("app shutdown")
    assert events.index("slow finished") < events.index("app shutdown")
