"""The drain sequence on a real uvicorn process, with real signals and real clients.

Every claim of the shutdown timeline is shown here the way users meet it: a uvicorn
subprocess serving `tests.servers.served:app`, httpx and a `websockets` client on loopback,
and `os.kill`. Times are measured from the moment the signal was sent.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest
import websockets

from tests.servers._process import (
    ServerProcess,
    events_named,
    wait_for_event,
    wait_for_output,
    wait_for_status,
)

pytestmark = [pytest.mark.server, pytest.mark.timeout(60)]

APP = "tests.servers.served:app"


async def test_readiness_fails_at_once_while_requests_are_still_served(tmp_path: Path) -> None:
    """1. SIGTERM; 2. readiness is 503 within 0.3 s; 3. requests still get 200 with
    Connection: close for the shutdown delay; 4. liveness stays 200."""
    env = {"ASGI_SUPERVISOR_SHUTDOWN_DELAY": "2"}
    with ServerProcess(APP, tmp_path=tmp_path, env=env) as server:
        sent = server.signal(signal.SIGTERM)
        failed_at = await wait_for_status(
            f"{server.base_url}/_supervisor/health/ready", 503, within=1.0
        )
        assert failed_at - sent < 0.3
        async with httpx.AsyncClient(base_url=server.base_url, timeout=2.0) as client:
            served = 0
            while time.monotonic() - sent < 1.5:
                response = await client.get("/")
                assert response.status_code == 200
                assert response.headers["connection"] == "close"
                served += 1
                await asyncio.sleep(0.05)
            live = await client.get("/_supervisor/health/live")
        assert served >= 10
        assert live.status_code == 200
        assert live.json()["state"] == "draining"
        assert server.wait_exit(timeout=8) == -signal.SIGTERM


async def test_closing_rejects_new_requests_and_the_slow_one_completes(tmp_path: Path) -> None:
    """1. a 3 s request starts; 2. SIGTERM; 3. after the delay new requests get 503 with
    Retry-After; 4. the slow request completes with 200; 5. the process then exits."""
    env = {"ASGI_SUPERVISOR_SHUTDOWN_DELAY": "0.5", "ASGI_SUPERVISOR_RETRY_AFTER": "9"}
    with ServerProcess(APP, tmp_path=tmp_path, env=env) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as client:
            slow = asyncio.create_task(client.get("/slow", params={"seconds": 3}))
            await wait_for_event(server, "slow started")
            sent = server.signal(signal.SIGTERM)
            await wait_for_output(server, "closing: refusing new requests")
            async with httpx.AsyncClient(base_url=server.base_url, timeout=2.0) as late:
                rejected = await late.get("/")
                health = await late.get("/_supervisor/health/live")
            assert rejected.status_code == 503
            assert rejected.headers["retry-after"] == "9"
            assert rejected.headers["connection"] == "close"
            assert rejected.json() == {"error": "service is shutting down", "state": "closing"}
            assert health.status_code == 200
            response = await slow
        assert response.status_code == 200
        assert response.text == "slept 3.0"
        status = server.wait_exit(timeout=8)
        exited = time.monotonic()
        assert status == -signal.SIGTERM
        assert exited - sent < 6 + 1


async def test_websocket_clients_get_the_configured_close_code_and_reason(tmp_path: Path) -> None:
    """1. two websocket clients; 2. SIGTERM; 3. both receive 4000 'deploying' (not uvicorn's
    1012); 4. the handler saw the same code."""
    env = {
        "ASGI_SUPERVISOR_WEBSOCKET_CLOSE_CODE": "4000",
        "ASGI_SUPERVISOR_WEBSOCKET_CLOSE_REASON": "deploying",
    }
    with ServerProcess(APP, tmp_path=tmp_path, env=env) as server:
        url = f"ws://127.0.0.1:{server.port}/ws"
        async with websockets.connect(url) as first, websockets.connect(url) as second:
            for client in (first, second):
                await client.send("ping")
                assert await client.recv() == "ping"
            server.signal(signal.SIGTERM)
            for client in (first, second):
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(client.recv(), 5)
                assert closed.value.rcvd is not None
                assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4000, "deploying")
        assert server.wait_exit(timeout=8) == -signal.SIGTERM
        assert len(events_named(server, "websocket disconnected 4000")) == 2


async def test_streaming_response_is_ended_within_the_deadline(tmp_path: Path) -> None:
    """1. an endless stream is read; 2. SIGTERM; 3. the stream ends once its budget is spent
    (grace 4 s - cancel 1.5 s), and the process exits before the grace period."""
    env = {"ASGI_SUPERVISOR_GRACE_PERIOD": "4", "ASGI_SUPERVISOR_CANCEL_TIMEOUT": "1.5"}
    with ServerProcess(APP, tmp_path=tmp_path, env=env) as server:
        ticks = 0
        sent = 0.0

        async def read_stream() -> None:
            nonlocal ticks, sent
            async with (
                httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as client,
                client.stream("GET", "/stream") as response,
            ):
                async for _ in response.aiter_lines():
                    ticks += 1
                    if ticks == 5:
                        sent = server.signal(signal.SIGTERM)

        with pytest.raises(httpx.RemoteProtocolError):
            await read_stream()
        ended = time.monotonic()
        assert 2.0 <= ended - sent < 4.0
        assert server.wait_exit(timeout=5) == -signal.SIGTERM
        assert time.monotonic() - sent < 4 + 1
        assert events_named(server, "stream ended")


async def test_exit_within_grace_period_with_the_servers_usual_status(tmp_path: Path) -> None:
    """1. a worker swallows cancellation; 2. SIGTERM; 3. exit within grace + 1 s, status -15."""
    env = {"TEST_FAULTS": "swallow", "ASGI_SUPERVISOR_GRACE_PERIOD": "3"}
    with ServerProcess(APP, tmp_path=tmp_path, env=env) as server:
        sent = server.signal(signal.SIGTERM)
        status = server.wait_exit(timeout=3 + 2)
        assert time.monotonic() - sent < 3 + 1
        assert status == -signal.SIGTERM
        assert "abandoned worker 'swallows-cancel'" in server.output()


async def test_second_sigterm_forces_an_early_exit(tmp_path: Path) -> None:
    """1. a 30 s request holds the drain; 2. SIGTERM; 3. a second SIGTERM skips the waits;
    4. the process exits within cancel_timeout of it, long before the 20 s grace period."""
    env = {"ASGI_SUPERVISOR_GRACE_PERIOD": "20", "ASGI_SUPERVISOR_CANCEL_TIMEOUT": "2"}
    with ServerProcess(APP, tmp_path=tmp_path, env=env) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30.0) as client:
            slow = asyncio.create_task(client.get("/slow", params={"seconds": 30}))
            await wait_for_event(server, "slow started")
            server.signal(signal.SIGTERM)
            await wait_for_status(f"{server.base_url}/_supervisor/health/ready", 503, within=1.0)
            forced = server.signal(signal.SIGTERM)
            status = server.wait_exit(timeout=10)
            assert time.monotonic() - forced < 2 + 1
            assert status == -signal.SIGTERM
            await asyncio.wait({slow}, timeout=5)
        assert "forced: skipping the remaining waits" in server.output()
        assert events_named(server, "worker stopped")


async def test_app_shutdown_runs_after_the_workers_stopped(tmp_path: Path) -> None:
    """1. SIGTERM; 2. the workers stop (cooperatively, and a slow cleanup finishes); 3. only
    then does the app's own lifespan shutdown run."""
    env = {"TEST_FAULTS": "slow_cleanup"}
    with ServerProcess(APP, tmp_path=tmp_path, env=env) as server:
        server.signal(signal.SIGTERM)
        assert server.wait_exit(timeout=8) == -signal.SIGTERM
        events = [event for _, event in server.events()]
    assert events.index("worker stopped") < events.index("app shutdown")
    assert events.index("slow cleanup done") < events.index("app shutdown")


async def test_drain_endpoint_then_sigterm_is_the_kubernetes_prestop_flow(tmp_path: Path) -> None:
    """1. POST /drain (preStop); 2. while it runs, readiness fails and requests are still
    served; 3. it answers once drained; 4. SIGTERM then exits promptly."""
    env = {"ASGI_SUPERVISOR_SHUTDOWN_DELAY": "2"}
    with ServerProcess(APP, tmp_path=tmp_path, env=env) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as client:
            headers = server.admin_headers()
            started = time.monotonic()
            drain = asyncio.create_task(client.post("/_supervisor/drain", headers=headers))
            await wait_for_status(f"{server.base_url}/_supervisor/health/ready", 503, within=1.5)
            served = await client.get("/")
            assert served.status_code == 200
            assert served.headers["connection"] == "close"
            response = await drain
            assert time.monotonic() - started >= 2
            assert response.status_code == 200
            body = response.json()
            assert body["drained"] is True
            assert body["report"]["trigger"] == "drain endpoint"
        # Drained with no signal, the process already asks its server to exit; the kubelet's
        # SIGTERM that follows the preStop hook changes nothing of that.
        sent = server.signal(signal.SIGTERM)
        assert server.wait_exit(timeout=5) == -signal.SIGTERM
        assert time.monotonic() - sent < 1.5


async def test_lifespan_shutdown_fallback_still_stops_everything_in_time(tmp_path: Path) -> None:
    """1. signal handling off, so uvicorn alone hears SIGTERM; 2. lifespan.shutdown is the
    late trigger; 3. workers (with a slow cleanup) still stop before the app's shutdown."""
    env = {"ASGI_SUPERVISOR_HANDLE_SIGNALS": "false", "TEST_FAULTS": "slow_cleanup"}
    with ServerProcess(APP, tmp_path=tmp_path, env=env) as server:
        sent = server.signal(signal.SIGTERM)
        assert server.wait_exit(timeout=8) == -signal.SIGTERM
        assert time.monotonic() - sent < 6 + 1
        output = server.output()
        events = [event for _, event in server.events()]
    assert "draining: lifespan shutdown" in output
    assert events.index("slow cleanup done") < events.index("app shutdown")
    assert events.index("worker stopped") < events.index("app shutdown")


async def test_requests_cut_at_the_deadline_get_503_and_one_summary_line(tmp_path: Path) -> None:
    """1. three 30 s requests are in flight; 2. SIGTERM; 3. at deadline - cancel_timeout they
    are cancelled: each client gets 503 with Retry-After and Connection: close, not a 500;
    4. the log has one summary line and no traceback."""
    env = {"ASGI_SUPERVISOR_GRACE_PERIOD": "3", "ASGI_SUPERVISOR_CANCEL_TIMEOUT": "1.5"}
    with ServerProcess(APP, tmp_path=tmp_path, env=env) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=15.0) as client:
            slow = [
                asyncio.create_task(client.get("/slow", params={"seconds": 30})) for _ in range(3)
            ]
            while len(events_named(server, "slow started")) < 3:
                await wait_for_event(server, "slow started")
                await asyncio.sleep(0.01)
            server.signal(signal.SIGTERM)
            responses = await asyncio.gather(*slow)
        assert [r.status_code for r in responses] == [503, 503, 503]
        assert all(r.headers["retry-after"] == "5" for r in responses)
        assert all(r.headers["connection"] == "close" for r in responses)
        assert server.wait_exit(timeout=8) == -signal.SIGTERM
        output = server.output()
    assert "Traceback" not in output
    assert "Exception in ASGI application" not in output
    (line,) = [line for line in output.splitlines() if "shutdown report: " in line]
    assert "requests drained 0, rejected 0, cancelled 3, cut mid-body 0;" in line
    assert line.endswith(
        "; not clean: 3 requests cancelled at the deadline (answered 503 where no response "
        "had begun)"
    )


async def test_a_critical_failure_with_shutdown_policy_ends_the_process(tmp_path: Path) -> None:
    """1. a critical worker gives up under on_critical_failure="shutdown"; 2. the drain
    runs, and as no signal follows, the process asks uvicorn to exit: it does not linger."""
    env = {"TEST_FAULTS": "crash_loop,critical_shutdown"}
    with ServerProcess(APP, tmp_path=tmp_path, env=env) as server:
        status = server.wait_exit(timeout=15)
        output = server.output()
        events = [event for _, event in server.events()]
    assert status == -signal.SIGTERM
    assert "critical worker failed" in output
    assert "stopped without a signal: asking the server to exit" in output
    assert events.index("worker stopped") < events.index("app shutdown")


async def test_a_drain_that_cannot_end_the_process_fails_liveness(tmp_path: Path) -> None:
    """With signal handling off nothing can ask the server to exit: once the drain has
    stopped everything, /health/live answers 503 so the orchestrator restarts the process."""
    env = {"ASGI_SUPERVISOR_HANDLE_SIGNALS": "false"}
    with ServerProcess(APP, tmp_path=tmp_path, env=env) as server:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as client:
            assert (await client.get("/_supervisor/health/live")).status_code == 200
            drain = await client.post("/_supervisor/drain", headers=server.admin_headers())
            assert drain.status_code == 200
            await wait_for_status(f"{server.base_url}/_supervisor/health/live", 503, within=8)
            live = (await client.get("/_supervisor/health/live")).json()
        assert live == {"status": "stopped", "state": "stopped"}
        assert "/_supervisor/health/live now fails" in server.output()
