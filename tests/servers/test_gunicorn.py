"""gunicorn with `asgi_supervisor.gunicorn.UvicornWorker`: reloads and the kill timeout."""

from __future__ import annotations

import asyncio
import collections
import signal
from pathlib import Path

import httpx
import pytest

from tests.servers._process import ServerProcess, wait_for_status

pytestmark = [pytest.mark.server, pytest.mark.timeout(60)]

APP = "tests.servers.served:app"


def booted_workers(server: ServerProcess) -> int:
    return server.output().count("Booting worker with pid")


def finished_workers(server: ServerProcess) -> int:
    return server.output().count("Finished server process")


async def test_a_reload_loses_no_request(tmp_path: Path) -> None:
    """1. four clients send requests in a loop to two workers; 2. SIGHUP to the master; 3. the
    old workers stop accepting at once, finish what they have, and the new ones take over;
    4. not one response is other than 200 (old workers used to answer 503 from the shared
    listener while they drained)."""
    with ServerProcess(APP, tmp_path=tmp_path, server="gunicorn", args=("-w", "2")) as server:
        statuses: collections.Counter[int] = collections.Counter()
        errors: collections.Counter[str] = collections.Counter()
        reloaded = asyncio.Event()
        after_reload = 0

        async def client() -> None:
            nonlocal after_reload
            async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as http:
                while not reloaded.is_set() or after_reload < 200:
                    try:
                        response = await http.get("/")
                    except httpx.TransportError as exc:
                        # A connection uvicorn accepted but had not read yet is reset at its
                        # shutdown, with or without the supervisor: counted, not asserted.
                        errors[type(exc).__name__] += 1
                        continue
                    statuses[response.status_code] += 1
                    if reloaded.is_set():
                        after_reload += 1

        clients = [asyncio.create_task(client()) for _ in range(4)]
        async with asyncio.timeout(30):
            while sum(statuses.values()) < 200:
                await asyncio.sleep(0.01)
            server.signal(signal.SIGHUP)
            # The load runs on until both old workers have drained and exited, and then for
            # 200 more requests, served by the new ones.
            while booted_workers(server) < 4 or finished_workers(server) < 2:
                await asyncio.sleep(0.05)
            reloaded.set()
            await asyncio.gather(*clients)
        output = server.output()
    assert set(statuses) == {200}, f"{statuses} (transport errors: {dict(errors)})"
    assert output.count("draining: signal SIGTERM") == 2
    # No kill-timeout warning: the default graceful_timeout (30 s) covers grace_period.
    assert "shorter than grace_period" not in output


async def test_a_graceful_timeout_below_the_grace_period_is_named_at_startup(
    tmp_path: Path,
) -> None:
    """1. gunicorn would kill workers 3 s after SIGTERM, the grace period is 6 s; 2. the
    worker's log says so at startup, with both values and the setting to raise."""
    args = ("--graceful-timeout", "3")
    with ServerProcess(APP, tmp_path=tmp_path, server="gunicorn", args=args) as server:
        await wait_for_status(f"{server.base_url}/_supervisor/health/ready", 200, within=10.0)
        output = server.output()
    assert (
        "gunicorn's --graceful-timeout is 3 s, shorter than grace_period=6 s plus a 2 s margin"
        in output
    )
    assert "Set --graceful-timeout to 8 or more, or lower grace_period." in output


async def test_a_prestop_drain_leaves_the_only_worker_in_place(tmp_path: Path) -> None:
    """1. gunicorn with one worker; 2. POST /drain (preStop); 3. the worker stays, failing
    liveness, and the master starts no fresh, ready worker in its place (it would if the
    worker ended itself); 4. SIGTERM: the master exits 0."""
    with ServerProcess(APP, tmp_path=tmp_path, server="gunicorn") as server:
        headers = await asyncio.to_thread(server.admin_headers)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as client:
            drained = await client.post("/_supervisor/drain", headers=headers)
            assert drained.json()["drained"] is True
            await wait_for_status(f"{server.base_url}/_supervisor/health/live", 503, within=5.0)
            assert (await client.get("/_supervisor/health/ready")).status_code == 503
        assert booted_workers(server) == 1
        server.signal(signal.SIGTERM)
        assert await asyncio.to_thread(server.wait_exit, 10) == 0
