"""Websockets across a rolling restart: every client gets the close code, then reconnects."""

from __future__ import annotations

import asyncio

import pytest
import websockets

from tests.servers.rig import SUPERVISED_APP, SUPERVISED_ENV, Rig

pytestmark = [pytest.mark.server, pytest.mark.timeout(120)]

CLIENTS = 12


async def whoami(ws: websockets.ClientConnection) -> str:
    """The replica's answer to "whoami", skipping the broadcast ticks in between."""
    await ws.send("whoami")
    while not (answer := str(await asyncio.wait_for(ws.recv(), 5))).startswith("pid "):
        pass
    return answer


async def until_closed(ws: websockets.ClientConnection) -> None:
    """Read (ticks) until the server closes the connection."""
    while True:
        await asyncio.wait_for(ws.recv(), 10)


async def test_websocket_clients_get_the_close_code_and_reconnect_elsewhere() -> None:
    """1. 12 clients connect through HAProxy, spread over both replicas; 2. replica a
    restarts; 3. each of its clients receives 1012 with the reason (never 1006);
    4. they reconnect and land on replica b; 5. b's clients were not disturbed."""
    env = {**SUPERVISED_ENV, "ASGI_SUPERVISOR_WEBSOCKET_CLOSE_REASON": "rolling restart"}
    with Rig(SUPERVISED_APP, env) as rig:
        url = rig.url.replace("http://", "ws://") + "/ws"
        clients = [await websockets.connect(url) for _ in range(CLIENTS)]
        try:
            owners = [await whoami(ws) for ws in clients]
            assert len(set(owners)) == 2
            first = rig.replicas[0]
            assert first.process is not None
            on_first = [
                ws
                for ws, pid in zip(clients, owners, strict=True)
                if pid == f"pid {first.process.pid}"
            ]
            others = [ws for ws in clients if ws not in on_first]
            restart = asyncio.create_task(asyncio.to_thread(rig.restart, first))
            codes = []
            for ws in on_first:
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await until_closed(ws)
                assert closed.value.rcvd is not None
                codes.append((closed.value.rcvd.code, closed.value.rcvd.reason))
            assert codes == [(1012, "rolling restart")] * len(on_first)
            survivor = {await whoami(ws) for ws in others}
            assert len(survivor) == 1
            reconnected = [await websockets.connect(url) for _ in on_first]
            clients.extend(reconnected)
            assert {await whoami(ws) for ws in reconnected} == survivor
            transition = await restart
            assert transition.to_down is not None
        finally:
            for ws in clients:
                await ws.close()
