"""Helpers the in-process tests share: a quiet supervisor and an app around it, an httpx
client on an ASGI app, a request to hold in flight, a websocket client played through queues,
a bounded wait for a condition, a parser for Prometheus' text format, and a loopback listener
with a client that stops reading.

Test modules import from here (and the apps from `tests.apps`), never from each other nor
from ``conftest.py``.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from asgi_supervisor import Supervisor, SupervisorMiddleware
from asgi_supervisor._host.connections import client_connections

# Client addresses: they decide nothing (admin access needs a token), tests show it.
LOOPBACK = ("127.0.0.1", 4000)
REMOTE = ("203.0.113.7", 5000)
TOKEN = "t0ken"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def quiet_supervisor(**settings: Any) -> Supervisor:
    """A supervisor for in-process tests: no signal handlers, no watchdog, no loop-lag thread,
    no process group and no local token file (nothing written outside the test, and pytest's
    own listening sockets must not get one), short deadlines."""
    defaults: dict[str, Any] = {
        "grace_period": 3.0,
        "cancel_timeout": 1.0,
        "shutdown_delay": 0.0,
        "handle_signals": False,
        "watchdog": False,
        "local_token": False,
        "loop_lag_threshold": None,
        "process_group": False,
    }
    return Supervisor(**{**defaults, **settings})


def bare_app(supervisor: Supervisor) -> SupervisorMiddleware:
    """An empty Starlette app wrapped in the middleware."""
    return SupervisorMiddleware(Starlette(), supervisor=supervisor)


async def wait_until(condition: Callable[[], object], *, within: float = 5.0) -> None:
    """Return as soon as *condition()* is true; fail naming it after *within* seconds.

    For a state another task or a timer reaches (a lifecycle state, a worker's record) and
    that offers no event to wait on; it looks every 10 ms.
    """
    try:
        async with asyncio.timeout(within):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"{condition!r} did not hold within {within} s") from None


def client(app: Any, address: tuple[str, int] = LOOPBACK) -> httpx.AsyncClient:
    """An in-process client whose requests come from *address* and carry the admin token."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app, client=address),
        base_url="http://testserver",
        headers=ADMIN,
    )


class Held:
    """A route that stays in flight until released."""

    def __init__(self) -> None:
        self.entered = asyncio.Event()
        self.release = asyncio.Event()

    async def endpoint(self, request: Request) -> Response:
        self.entered.set()
        await self.release.wait()
        return PlainTextResponse("done")


class FakeWebSocketClient:
    """Drives the websocket scope through queues, as a server would."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def connect(self) -> dict[str, Any]:
        scope = {
            "type": "websocket",
            "path": "/ws",
            "headers": [],
            "query_string": b"",
            "client": ("127.0.0.1", 5),
            "server": ("127.0.0.1", 80),
            "subprotocols": [],
        }
        self.task = asyncio.create_task(self._run(scope))
        await self.to_app.put({"type": "websocket.connect"})
        return await self.from_app.get()

    async def _run(self, scope: dict[str, Any]) -> None:
        await self.app(scope, self.to_app.get, self.from_app.put)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    """Every sample of a text-format exposition, keyed by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The value of one sample; KeyError names it when it is missing."""
    return samples[("asgi_supervisor_" + name, frozenset(labels.items()))]


def named(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """Every sample of one name, by labels."""
    return {labels: v for (n, labels), v in samples.items() if n == "asgi_supervisor_" + name}


class Listener:
    """A listening socket on loopback, and the connections it accepted; `close` ends all.

    Its calls block (briefly, on loopback): from a coroutine, run them in a thread.
    """

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port: int = self.sock.getsockname()[1]
        self.opened: list[socket.socket] = [self.sock]

    def connect(self, receive_buffer: int | None = None) -> tuple[socket.socket, socket.socket]:
        """A client (with a small receive buffer, if given) and our end of its connection."""
        client = socket.socket()
        if receive_buffer is not None:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        client.connect(("127.0.0.1", self.port))
        accepted, _ = self.sock.accept()
        self.opened += [client, accepted]
        return client, accepted

    def stall(self, accepted: socket.socket, within: float = 5.0) -> None:
        """Write to *accepted* until the kernel takes no more, and wait until it probes the
        client's closed window: a client that stopped reading, as the kernel sees it."""
        accepted.setblocking(False)
        try:
            for _ in range(10_000):
                accepted.send(b"x" * 65536)
            raise AssertionError("the client took 640 MB: it is reading")
        except BlockingIOError:
            pass
        deadline = time.monotonic() + within
        while not any(c.stalled for c in client_connections({self.port})):
            if time.monotonic() > deadline:
                raise AssertionError(f"no stalled connection: {client_connections({self.port})}")
            time.sleep(0.01)

    def close(self) -> None:
        for sock in self.opened:
            sock.close()
