"""Every single-process row of the servers table (docs/servers.md), measured on the real server.

Each server runs the test app with one worker process (or none), a 1 s shutdown delay and a
6 s grace period. Three ways to stop it, each on a fresh process:

* **SIGTERM** with a websocket open: does readiness answer 503 while the server still
  serves (an early trigger), what close code the websocket client gets, the exit status,
  and whether the app's own shutdown ran after the workers stopped;
* **double SIGINT** (Ctrl-C twice): the exit status, and whether the app's shutdown ran;
* **the preStop path**: ``POST /drain`` with a websocket open (the client gets our close
  code and reason); then the process exits by itself, or waits for the SIGTERM that
  follows the hook (a worker its server would replace): the exit status.

`EXPECTED` is what that table says; a server that changes its behaviour fails here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import websockets

from tests.servers._process import ServerProcess

pytestmark = [pytest.mark.server, pytest.mark.timeout(60)]

APP = "tests.servers.served:app"
ENV = {"ASGI_SUPERVISOR_SHUTDOWN_DELAY": "1"}
REASON = "server restarting"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Row:
    """What one server does, as docs/servers.md's table says it."""

    early_trigger: bool  # readiness answers 503 after SIGTERM, while the server still serves
    websocket_close: tuple[int, str] | None  # what a websocket client gets at SIGTERM
    sigterm_exit: int  # exit status after SIGTERM (negative: ended by that signal)
    double_sigint_exit: int  # the app's own shutdown runs in every case (asserted)
    prestop_exit: int  # exit status after POST /drain: by itself, or at the SIGTERM after it
    prestop_self_exit: bool  # the process ended by itself after the drain


OURS = (1012, REASON)
EXPECTED = {
    "uvicorn": Row(
        early_trigger=True,
        websocket_close=OURS,
        sigterm_exit=-signal.SIGTERM,
        double_sigint_exit=0,
        prestop_exit=-signal.SIGTERM,
        prestop_self_exit=True,
    ),
    "gunicorn": Row(
        early_trigger=True,
        websocket_close=OURS,
        sigterm_exit=0,
        double_sigint_exit=0,
        prestop_exit=0,
        prestop_self_exit=False,
    ),
    "hypercorn": Row(
        early_trigger=True,
        websocket_close=OURS,
        sigterm_exit=0,
        double_sigint_exit=0,
        prestop_exit=0,
        prestop_self_exit=True,
    ),
    # The loop hears the signal itself: the listener closes at once (a warning says so).
    "hypercorn-uvloop": Row(
        early_trigger=False,
        websocket_close=OURS,
        sigterm_exit=0,
        double_sigint_exit=0,
        prestop_exit=0,
        prestop_self_exit=True,
    ),
    # The app's process never gets the signal; hypercorn cancels after its own 3 s.
    "hypercorn-workers": Row(
        early_trigger=False,
        websocket_close=(1011, ""),
        sigterm_exit=0,
        double_sigint_exit=0,
        prestop_exit=0,
        prestop_self_exit=False,
    ),
    # granian's main process drops the listener, and its worker the websockets, at once;
    # when its only worker ends itself after a drain, it exits 1.
    "granian": Row(
        early_trigger=False,
        websocket_close=None,
        sigterm_exit=0,
        double_sigint_exit=0,
        prestop_exit=1,
        prestop_self_exit=True,
    ),
}


async def stopped(server: ServerProcess) -> tuple[int, list[str]]:
    """The exit status and the app's events, once the server has exited (within 12 s)."""
    status = await asyncio.to_thread(server.wait_exit, 12.0)
    return status, [event for _, event in server.events()]


async def readiness_after_signal(server: ServerProcess, sent: float) -> int | None:
    """What readiness answers on a new connection 0.3 s after the signal (sent at *sent*):
    503 while the server still serves (an early trigger); None once it no longer answers.

    An answer within the first 0.3 s proves nothing: a connection the server accepted just
    before its listener closed may still be answered.
    """
    deadline = sent + 3.0
    async with httpx.AsyncClient(
        timeout=0.5, limits=httpx.Limits(max_keepalive_connections=0)
    ) as client:
        while time.monotonic() < deadline:
            try:
                status = (
                    await client.get(f"{server.base_url}/_supervisor/health/ready")
                ).status_code
            except httpx.TransportError:
                return None
            if status != 200 and time.monotonic() - sent >= 0.3:
                return status
            await asyncio.sleep(0.01)
    return 200


async def websocket_close(ws: websockets.ClientConnection) -> tuple[int, str] | None:
    """The close frame the client got (code, reason); None when the TCP connection dropped
    without one (what browsers report as 1006)."""
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 10)
    frame = closed.value.rcvd
    return (frame.code, frame.reason) if frame is not None else None


async def measure_sigterm(
    server: ServerProcess,
) -> tuple[bool, tuple[int, str] | None, int, list[str]]:
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
        await ws.send("ping")
        assert await ws.recv() == "ping"
        sent = server.signal(signal.SIGTERM)
        readiness = await readiness_after_signal(server, sent)
        close = await websocket_close(ws)
    status, events = await stopped(server)
    return readiness == 503, close, status, events


async def measure_double_sigint(server: ServerProcess) -> tuple[int, list[str]]:
    server.signal(signal.SIGINT)
    deadline = time.monotonic() + 3
    while "draining:" not in server.output() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    server.signal(signal.SIGINT)
    return await stopped(server)


async def measure_prestop(server: ServerProcess) -> tuple[int, bool, list[str]]:
    async with (
        websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as ws,
        httpx.AsyncClient(base_url=server.base_url, timeout=10.0) as client,
    ):
        await ws.send("ping")
        assert await ws.recv() == "ping"
        headers = await asyncio.to_thread(server.admin_headers)
        drain = asyncio.create_task(client.post("/_supervisor/drain", headers=headers))
        assert await websocket_close(ws) == OURS
        response = await drain
        assert response.status_code == 200
        assert response.json()["drained"] is True
        assert response.json()["report"]["websockets_closed"] == {"1012": 1}
    # A single process whose drain has ended asks its server to exit by itself (it never
    # lingers serving 503); a worker its server would replace stays, failing liveness, until
    # the SIGTERM that follows the preStop hook. Wait for the one, then send the other.
    try:
        await asyncio.to_thread(server.wait_exit, 3.0)
    except subprocess.TimeoutExpired:
        server.signal(signal.SIGTERM)
        self_exit = False
    else:
        self_exit = True
    status, events = await stopped(server)
    return status, self_exit, events


SERVERS = list(EXPECTED)


@pytest.mark.parametrize("name", SERVERS)
async def test_sigterm(name: str, tmp_path: Path) -> None:
    """1. a websocket is open; 2. SIGTERM; 3. readiness, the close code, the exit status and
    the app's shutdown (after the workers) are as the table says."""
    with ServerProcess(APP, tmp_path=tmp_path, server=name, env=ENV) as server:
        early, close, status, events = await measure_sigterm(server)
        output = server.output()
    expected = EXPECTED[name]
    assert (early, close, status) == (
        expected.early_trigger,
        expected.websocket_close,
        expected.sigterm_exit,
    )
    # granian's worker installs its uvloop signal handlers before or after the lifespan
    # starts, by a race: its row is "no early trigger" either way, with or without the warning.
    if name != "granian":
        warned = "the server at once on this event loop" in output
        assert warned is (name == "hypercorn-uvloop")
    warned = "no server signal handler in this process, and SIGINT is ignored" in output
    assert warned is (name == "hypercorn-workers")
    assert "app shutdown" in events
    assert events.index("worker stopped") < events.index("app shutdown")


@pytest.mark.parametrize("name", SERVERS)
async def test_double_sigint(name: str, tmp_path: Path) -> None:
    """1. SIGINT; 2. SIGINT again once draining; 3. the exit status is as the table says,
    and the app's own shutdown ran."""
    with ServerProcess(APP, tmp_path=tmp_path, server=name, env=ENV) as server:
        status, events = await measure_double_sigint(server)
    assert status == EXPECTED[name].double_sigint_exit
    assert "app shutdown" in events


@pytest.mark.parametrize("name", SERVERS)
async def test_prestop_drain_then_sigterm(name: str, tmp_path: Path) -> None:
    """1. a websocket is open; 2. POST /drain answers once drained, and the client got 1012
    with our reason; 3. the process exits by itself, or at the SIGTERM after it, as the
    table says, with its exit status, and the app's own shutdown ran."""
    with ServerProcess(APP, tmp_path=tmp_path, server=name, env=ENV) as server:
        status, self_exit, events = await measure_prestop(server)
    assert (status, self_exit) == (EXPECTED[name].prestop_exit, EXPECTED[name].prestop_self_exit)
    assert "app shutdown" in events


def test_trio_fails_at_startup_with_the_sentence(tmp_path: Path) -> None:
    """1. hypercorn -k trio; 2. lifespan startup fails with our sentence, not "no running
    event loop"; 3. hypercorn exits with status 1."""
    server = ServerProcess(APP, tmp_path=tmp_path, server="hypercorn-trio", env=ENV)
    try:
        server.start(wait_live=False)
        status = server.wait_exit(timeout=20)
        output = server.output()
    finally:
        server.stop()
    assert status == 1
    assert "asgi-supervisor runs on asyncio; this app runs on trio" in output
    assert "no running event loop" not in output
