"""The HTTP endpoints the middleware answers itself: health, tasks and drain.

Health endpoints are public and say only names and states. `/tasks` and `/drain` are admin
endpoints: with no token configured they answer loopback clients only; with one they want
``Authorization: Bearer <token>``, compared in constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from ._negotiate import prefers_html
from ._state import State
from ._tasks_page import HtmlPage, tasks_page
from ._tasks_view import TasksQuery, tasks_payload

if TYPE_CHECKING:
    from ._supervisor import Supervisor
    from ._types import Receive, Scope, Send

__all__ = ["Endpoints"]

Handler = Callable[["Scope", "Receive", "Send"], Awaitable[None]]
_READ = ("GET", "HEAD")


class Endpoints:
    """The endpoint handlers of one supervisor, keyed by full path in `routes`."""

    def __init__(self, supervisor: Supervisor) -> None:
        self._sup = supervisor
        prefix = supervisor.config.path_prefix
        token = supervisor.config.admin_token
        self._token = f"Bearer {token}".encode() if token is not None else None
        self.routes: dict[str, Handler] = {
            f"{prefix}/health/live": self._guard(_READ, admin=False, fn=self._live),
            f"{prefix}/health/ready": self._guard(_READ, admin=False, fn=self._ready),
            f"{prefix}/health/startup": self._guard(_READ, admin=False, fn=self._startup),
            f"{prefix}/health": self._guard(_READ, admin=False, fn=self._health),
            f"{prefix}/tasks": self._guard(_READ, admin=True, fn=self._tasks),
            f"{prefix}/drain": self._guard(("GET", "HEAD", "POST"), admin=True, fn=self._drain),
        }

    def _guard(
        self,
        methods: tuple[str, ...],
        *,
        admin: bool,
        fn: Callable[[Scope], Awaitable[tuple[int, dict[str, Any] | HtmlPage]]],
    ) -> Handler:
        allow = ", ".join(methods).encode()

        async def handle(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["method"] not in methods:
                error = {"error": f"method {scope['method']} is not allowed here"}
                await _respond(send, scope, 405, error, [(b"allow", allow)])
                return
            if admin:
                refusal = self._authorize(scope)
                if refusal is not None:
                    await _respond(send, scope, *refusal)
                    return
            try:
                status, body = await fn(scope)
            except _BadRequest as exc:
                status, body = 400, {"error": str(exc)}
            if isinstance(body, HtmlPage):  # /tasks for a browser
                await body.send(send, scope, status)
                return
            await _respond(send, scope, status, body)

        return handle

    def _authorize(
        self, scope: Scope
    ) -> tuple[int, dict[str, Any], list[tuple[bytes, bytes]]] | None:
        if self._token is None:
            if _is_loopback(scope.get("client")):
                return None
            return (
                403,
                {"error": "admin endpoints answer loopback clients only without a token"},
                [],
            )
        for name, value in scope.get("headers", ()):
            if name == b"authorization" and hmac.compare_digest(value, self._token):
                return None
        challenge = [(b"www-authenticate", b'Bearer realm="asgi-supervisor"')]
        return 401, {"error": "a valid bearer token is required"}, challenge

    # -- health -----------------------------------------------------------------------------

    async def _live(self, scope: Scope) -> tuple[int, dict[str, Any]]:
        # Answering at all proves the loop runs; liveness never follows draining.
        return 200, {"status": "live", "state": self._sup.state.value}

    async def _ready(self, scope: Scope) -> tuple[int, dict[str, Any]]:
        reasons = await self._not_ready_reasons()
        state = self._sup.state.value
        if reasons:
            return 503, {"status": "not ready", "state": state, "reasons": reasons}
        return 200, {"status": "ready", "state": state}

    async def _startup(self, scope: Scope) -> tuple[int, dict[str, Any]]:
        started = self._sup.lifecycle.entered(State.READY) is not None
        state = self._sup.state.value
        if started:
            return 200, {"status": "started", "state": state}
        return 503, {"status": "starting", "state": state}

    async def _health(self, scope: Scope) -> tuple[int, dict[str, Any]]:
        sup = self._sup
        reasons = await self._not_ready_reasons()
        checks = {r.name: {"ok": r.ok, "critical": r.critical} for r in await sup.check_results()}
        workers = {r.name: {"state": r.state, "restarts": r.restarts} for r in sup.registry.workers}
        remaining = sup.deadline_remaining()
        body = {
            "state": sup.state.value,
            "live": True,
            "ready": not reasons,
            "started": sup.lifecycle.entered(State.READY) is not None,
            "reasons": reasons,
            "checks": checks,
            "workers": workers,
            "counts": sup.registry.counts(),
            "deadline_remaining": None if remaining is None else round(remaining, 3),
        }
        return (503 if reasons else 200), body

    async def _not_ready_reasons(self) -> list[str]:
        sup = self._sup
        reasons = []
        if sup.state is not State.READY:
            reasons.append(f"state is {sup.state.value}")
        reasons.extend(sup.failures().values())
        for result in await sup.check_results():
            if result.critical and not result.ok:
                reasons.append(f"check {result.name!r} failed")
        return reasons

    # -- admin ------------------------------------------------------------------------------

    async def _tasks(self, scope: Scope) -> tuple[int, dict[str, Any] | HtmlPage]:
        try:
            query = TasksQuery.parse(scope.get("query_string", b""))
        except ValueError as exc:
            raise _BadRequest(str(exc)) from None
        payload = tasks_payload(self._sup, query)
        if prefers_html(scope.get("headers", ())):
            return 200, tasks_page(self._sup, payload)
        return 200, payload

    async def _drain(self, scope: Scope) -> tuple[int, dict[str, Any]]:
        sup = self._sup
        if sup.shutdown is None:
            return 503, {"error": "the lifespan has not started: nothing to drain yet"}
        sup.begin_drain("drain endpoint")
        # This request is not tracked, so the drain never waits for itself.
        await sup.wait_drained()
        registry = sup.registry
        shutdown = sup.shutdown
        assert shutdown is not None
        drained = not registry.requests and not registry.websockets
        return 200, {"state": sup.state.value, "drained": drained, "report": shutdown.progress()}


class _BadRequest(Exception):
    pass


def _is_loopback(client: object) -> bool:
    if client is None:
        return True  # a unix socket: only local processes can connect
    try:
        host = client[0]  # type: ignore[index]
        address = ipaddress.ip_address(host)
    except (TypeError, ValueError, IndexError, KeyError):
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


async def _respond(
    send: Send,
    scope: Scope,
    status: int,
    body: dict[str, Any],
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    payload = json.dumps(body, separators=(",", ":"), default=str).encode()
    head = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"cache-control", b"no-store"),
        *(headers or ()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": head})
    body_bytes = b"" if scope["method"] == "HEAD" else payload
    await send({"type": "http.response.body", "body": body_bytes})
