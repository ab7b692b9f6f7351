"""Compose the supervisor with the app's own lifespan, by wrapping the lifespan messages.

The order it guarantees::

    server            middleware                       app
    startup   ──────► begin_startup ─────────────────► app's startup runs
              ◄────── start workers ◄── startup.complete
    shutdown  ──────► trigger + wait until stopped ──► app's shutdown runs (workers are gone)
              ◄────── restore signals ◄─ shutdown.complete

If a worker fails while starting, the app has already started: the middleware sends the app
a ``lifespan.shutdown`` of its own so it tears down, then reports ``lifespan.startup.failed``
to the server. Apps that do not speak lifespan at all get the supervisor's lifespan alone.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .exceptions import StartupError

if TYPE_CHECKING:
    from ._supervisor import Supervisor
    from ._types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["run_lifespan"]

logger = logging.getLogger("asgi_supervisor")


async def run_lifespan(
    app: ASGIApp, supervisor: Supervisor, scope: Scope, receive: Receive, send: Send
) -> None:
    """Run the app's lifespan with the supervisor's start and stop woven in.

    Cancellation: waiting for the supervisor to stop is shielded; the stop itself is bounded
    by the grace period.
    """
    await _Lifespan(app, supervisor, receive, send).run(scope)


class _Lifespan:
    def __init__(self, app: ASGIApp, supervisor: Supervisor, receive: Receive, send: Send) -> None:
        self._app = app
        self._sup = supervisor
        self._receive = receive
        self._send = send
        self._injected: list[Message] = []
        self._startup_received = False
        self._app_sent = False
        self._failure: str | None = None

    async def run(self, scope: Scope) -> None:
        try:
            await self._app(scope, self.receive, self.send)
        except Exception:
            if self._app_sent:
                raise
            # The app does not speak lifespan (it raised before answering): the supervisor
            # still needs one, so it runs its own, as a server would without the app.
            logger.debug("the app does not support lifespan; running the supervisor's own")
            await self._run_alone()
            return
        if not self._app_sent:
            await self._run_alone()

    async def receive(self) -> Message:
        if self._injected:
            return self._injected.pop(0)
        message = await self._receive()
        kind = message["type"]
        if kind == "lifespan.startup":
            self._startup_received = True
            self._sup.begin_startup()
        elif kind == "lifespan.shutdown":
            await self._stop()
            # issue 13: the app's own shutdown may block in sync cleanup; nobody is served
            # any more, so that is no stall to report.
            self._sup.loop_lag.stop()
        return message

    async def send(self, message: Message) -> None:
        self._app_sent = True
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            try:
                await self._sup.start()
            except StartupError as exc:
                self._failure = str(exc)
                logger.error("startup failed: %s", exc, extra={"state": "failed"})
                # Let the app tear down what its startup built, then tell the server.
                self._injected.append({"type": "lifespan.shutdown"})
                return
        elif kind == "lifespan.startup.failed":
            self._sup.fail_startup()
        elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            self._finish()
            if self._failure is not None:
                await self._send({"type": "lifespan.startup.failed", "message": self._failure})
                return
        await self._send(message)

    async def _stop(self) -> None:
        shutdown = self._sup.shutdown
        if shutdown is None or self._failure is not None:
            return
        # The late fallback: the server has already cut every connection, so only the
        # tasks are left to stop. A drain begun earlier is simply joined.
        shutdown.trigger("lifespan shutdown", exiting=True)
        await shutdown.wait_stopped()

    def _finish(self) -> None:
        if self._sup.shutdown is not None:
            self._sup.shutdown.restore_signals()

    async def _run_alone(self) -> None:
        if not self._startup_received:
            message = await self.receive()
            if message["type"] != "lifespan.startup":
                return
        try:
            await self._sup.start()
        except StartupError as exc:
            await self._send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        await self._send({"type": "lifespan.startup.complete"})
        if (await self.receive())["type"] == "lifespan.shutdown":
            self._finish()
            await self._send({"type": "lifespan.shutdown.complete"})
