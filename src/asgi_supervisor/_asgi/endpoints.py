"""The HTTP endpoints the middleware answers itself: health, tasks and drain.

Health endpoints are public and say only names and states. `/tasks` and `/drain` are admin
endpoints: they want ``Authorization: Bearer <token>`` with the local token or the configured
``admin_token``, and refuse browsers (see `auth`). `/tasks` only reads, so a browser may also
open it with the session cookie its one-time login link gave it (`/tasks/login`, see
`login`). `/drain` changes state, so it answers ``POST`` only, and never to a session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from asgi_supervisor._admin.auth import AdminAuth
from asgi_supervisor._admin.login import LOGIN_PATH, PAGE_PATH, OneTimeCodes
from asgi_supervisor._core.drain_outcome import is_drained
from asgi_supervisor._core.errors import NotRunningError
from asgi_supervisor._core.lifecycle import State
from asgi_supervisor._observe.page import HtmlPage, tasks_page
from asgi_supervisor._observe.tasks_view import TasksQuery, tasks_payload

from .drain import drain_refusal, group_state, process_outcomes
from .login import LoginEndpoint
from .metrics_http import MetricsEndpoint
from .negotiate import prefers_html
from .response import send_body, send_json

if TYPE_CHECKING:
    from asgi_supervisor._admin.local_token import LocalTokens
    from asgi_supervisor._host.channel import Channel
    from asgi_supervisor._supervisor.run import Run
    from asgi_supervisor._supervisor.supervisor import Supervisor

    from .types import Receive, Scope, Send

__all__ = ["Endpoints"]

Handler = Callable[["Scope", "Receive", "Send"], Awaitable[None]]
_READ = ("GET", "HEAD")


class Endpoints:
    """The endpoint handlers of one supervisor, keyed by full path in `routes`.

    They read what the lifespan running now shares with other processes (its local tokens,
    its channel to the siblings) through *run*, and never create, start or close any of it:
    the run does.
    """

    def __init__(
        self,
        supervisor: Supervisor,
        *,
        request_ages: Callable[[], list[tuple[asyncio.Task[Any], float]]],
        run: Callable[[], Run | None],
    ) -> None:
        self._sup = supervisor
        self._request_ages = request_ages
        self._run = run
        config = supervisor.config
        prefix = config.path_prefix
        self._auth = AdminAuth(config.admin_token, self._local_tokens)
        # Login codes used outside a lifespan (a server run without one): no siblings to tell.
        self._codes = OneTimeCodes(None)
        login = LoginEndpoint(self._auth, self._login_codes, page_path=f"{prefix}{PAGE_PATH}")
        self.routes: dict[str, Handler] = {
            f"{prefix}/health/live": self._guard(_READ, admin=False, fn=self._live),
            f"{prefix}/health/ready": self._guard(_READ, admin=False, fn=self._ready),
            f"{prefix}/health/startup": self._guard(_READ, admin=False, fn=self._startup),
            f"{prefix}/health": self._guard(_READ, admin=False, fn=self._health),
            f"{prefix}/tasks": self._guard(_READ, admin=True, fn=self._tasks, session=True),
            f"{prefix}{LOGIN_PATH}": login,
            f"{prefix}/drain": self._guard(("POST",), admin=True, fn=self._drain),
            f"{prefix}/metrics": MetricsEndpoint(supervisor, self._channel),  # public, like /health
        }

    def _local_tokens(self) -> LocalTokens | None:
        run = self._run()
        return None if run is None else run.local_tokens

    def _login_codes(self) -> OneTimeCodes:
        run = self._run()
        return self._codes if run is None else run.login_codes

    def _channel(self) -> Channel | None:
        run = self._run()
        return None if run is None or run.presence is None else run.presence.channel

    def _guard(
        self,
        methods: tuple[str, ...],
        *,
        admin: bool,
        fn: Callable[[Scope], Awaitable[tuple[int, dict[str, Any] | HtmlPage]]],
        session: bool = False,
    ) -> Handler:
        allowed = ", ".join(methods)
        allow = allowed.encode()

        async def handle(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["method"] not in methods:
                error = {"error": f"method {scope['method']} is not allowed here; use {allowed}"}
                await send_json(send, scope["method"], 405, error, [(b"allow", allow)])
                return
            if admin:
                refusal = await self._auth.refusal(scope, session=session)
                if refusal is not None:
                    await send_json(send, scope["method"], *refusal)
                    return
            elif (local := self._local_tokens()) is not None and not local.tokens:
                # A probe may come before the server's socket was seen: look again, in the
                # background, as a probe must not wait for it.
                local.refresh_soon()
            try:
                status, body = await fn(scope)
            except _BadRequest as exc:
                status, body = 400, {"error": str(exc)}
            if isinstance(body, HtmlPage):  # /tasks for a browser
                method = scope["method"]
                await send_body(send, method, status, body.content_type, body.body, body.headers)
                return
            await send_json(send, scope["method"], status, body)

        return handle

    # -- health -----------------------------------------------------------------------------

    async def _live(self, scope: Scope) -> tuple[int, dict[str, Any]]:
        # Answering at all proves the loop runs; liveness never follows draining, except once
        # the shutdown ended and nothing will end the process: then it must be restarted.
        if self._sup.is_lingering:
            return 503, {"status": "stopped", "state": self._sup.state.value}
        return 200, {"status": "live", "state": self._sup.state.value}

    async def _ready(self, scope: Scope) -> tuple[int, dict[str, Any]]:
        reasons = await self._not_ready_reasons()
        state = self._sup.state.value
        if reasons:
            return 503, {"status": "not ready", "state": state, "reasons": reasons}
        return 200, {"status": "ready", "state": state}

    async def _startup(self, scope: Scope) -> tuple[int, dict[str, Any]]:
        started = self._sup.has_started
        state = self._sup.state.value
        if started:
            return 200, {"status": "started", "state": state}
        return 503, {"status": "starting", "state": state}

    async def _health(self, scope: Scope) -> tuple[int, dict[str, Any]]:
        sup = self._sup
        reasons = await self._not_ready_reasons()
        checks = {r.name: {"ok": r.ok, "critical": r.critical} for r in await sup.check_results()}
        workers = {w.name: {"state": w.state.value, "restarts": w.restarts} for w in sup.workers()}
        remaining = sup.deadline_remaining()
        body = {
            "state": sup.state.value,
            "live": not sup.is_lingering,
            "ready": not reasons,
            "started": sup.has_started,
            "reasons": reasons,
            "checks": checks,
            "workers": workers,
            "counts": sup.counts(),
            "deadline_remaining": None if remaining is None else round(remaining, 3),
            "process_group": group_state(sup),
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
        payload = tasks_payload(self._sup, query, self._request_ages())
        if prefers_html(scope.get("headers", ())):
            return 200, tasks_page(self._sup, payload)
        return 200, payload

    async def _drain(self, scope: Scope) -> tuple[int, dict[str, Any]]:
        sup = self._sup
        refusal = await drain_refusal(sup)
        if refusal is not None:
            # One worker of several draining alone would look drained to whoever asked,
            # while the others stay ready: refuse, and say what to do instead.
            return 409, {"error": refusal, "drained": False}
        try:
            sup.begin_drain("drain endpoint")
        except NotRunningError:
            return 503, {"error": "the lifespan is not running: nothing to drain"}
        # This request is not counted, so the drain never waits for itself.
        await sup.wait_drained()
        body: dict[str, Any] = {
            "state": sup.state.value,
            "drained": is_drained(sup.is_draining, sup.counts()),
            "report": sup.drain_progress(),
        }
        body["processes"] = await process_outcomes(sup)  # process group: every worker process
        return 200, body


class _BadRequest(Exception):
    pass
