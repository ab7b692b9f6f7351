"""Compose the supervisor with the app's own lifespan, by wrapping the lifespan messages.

The order it guarantees::

    server            middleware                       app
    startup   ──────► begin a run ───────────────────► app's startup runs
              ◄────── start workers ◄── startup.complete
    shutdown  ──────► trigger + wait until stopped ──► app's shutdown runs (workers are gone)
              ◄────── end the run ◄──── shutdown.complete

Transparency: the server, Starlette's TestClient and asgi-lifespan see what they would see
without the middleware. An exception the app raises reaches the server unchanged; an app that
does not speak lifespan at all (it raises before asking for the first message) still gets the
supervisor's own lifespan. If a worker fails while starting, the app has already started: the
middleware sends the app a ``lifespan.shutdown`` of its own so it tears down, then reports
``lifespan.startup.failed`` and raises, as Starlette's router does on a failed startup.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from asgi_supervisor._core.errors import StartupError

if TYPE_CHECKING:
    from asgi_supervisor._supervisor.run import Run
    from asgi_supervisor._supervisor.supervisor import Supervisor

    from .types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["LifespanBridge"]

logger = logging.getLogger("asgi_supervisor")


class LifespanBridge:
    """One lifespan scope, run through the app with the supervisor's start and stop woven in.

    Cancellation: waiting for the shutdown to end is shielded; the shutdown itself is bounded
    by the grace period.

    Args:
        begin: makes the lifespan's `Run` when the server sends ``lifespan.startup``.
        end: awaited once the lifespan is over, before the server hears so (the run is
            detached from the middleware and its files removed): after the last message to
            the server nothing is awaited, for a server may cancel the lifespan task then.
    """

    def __init__(
        self,
        app: ASGIApp,
        supervisor: Supervisor,
        receive: Receive,
        send: Send,
        *,
        begin: Callable[[], Run],
        end: Callable[[], Awaitable[None]],
    ) -> None:
        self._app = app
        self._sup = supervisor
        self._receive = receive
        self._send = send
        self._begin = begin
        self._end = end
        self._run: Run | None = None
        self._injected: list[Message] = []
        self._app_received = False
        self._startup_received = False
        self._app_sent = False
        self._failure: StartupError | None = None

    async def __call__(self, scope: Scope) -> None:
        try:
            await self._app(scope, self.receive, self.send)
        except Exception:
            if self._app_received or self._app_sent:
                await self._over()
                raise
            # The app does not speak lifespan (it raised before asking for a message): the
            # supervisor still needs one, so it runs its own, as a server would without the
            # app's.
            logger.debug("the app does not support lifespan; running the supervisor's own")
            await self._run_alone()
            return
        except BaseException:
            await self._over()
            raise
        if not self._app_sent:
            await self._run_alone()  # it returned without a word: the same as not speaking it
            return
        await self._over()
        if self._failure is not None:
            raise self._failure

    async def receive(self) -> Message:
        """The app's receive: starts the run on startup, stops it before the app's shutdown."""
        self._app_received = True
        if self._injected:
            return self._injected.pop(0)
        message = await self._receive()
        kind = message["type"]
        if kind == "lifespan.startup":
            self._startup_received = True
            self._run = self._begin()
        elif kind == "lifespan.shutdown":
            await self._stop()
        return message

    async def send(self, message: Message) -> None:
        """The app's send: starts the workers once the app started, ends the run at the end."""
        self._app_sent = True
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            if not await self._start():
                # Let the app tear down what its startup built, then tell the server.
                self._injected.append({"type": "lifespan.shutdown"})
                return
        elif kind == "lifespan.startup.failed":
            if self._run is not None:
                self._run.fail()
        elif kind in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            await self._over()
            if self._failure is not None:
                await self._send({"type": "lifespan.startup.failed", "message": str(self._failure)})
                return
        await self._send(message)

    async def _start(self) -> bool:
        assert self._run is not None
        try:
            await self._sup._start(self._run)
        except StartupError as exc:
            self._failure = exc
            logger.error("startup failed: %s", exc, extra={"state": "failed"})
            return False
        return True

    async def _stop(self) -> None:
        run = self._run
        if run is None or self._failure is not None:
            return
        await run.stop()

    async def _over(self) -> None:
        # Idempotent: the lifespan is over, whichever way it ended.
        if self._run is not None:
            self._sup._end(self._run)
            self._run = None
            await self._end()

    async def _run_alone(self) -> None:
        if not self._startup_received:
            if (await self._receive())["type"] != "lifespan.startup":
                return
            self._startup_received = True
        if self._run is None:
            self._run = self._begin()
        if not await self._start():
            await self._over()
            await self._send({"type": "lifespan.startup.failed", "message": str(self._failure)})
            assert self._failure is not None
            raise self._failure
        await self._send({"type": "lifespan.startup.complete"})
        if (await self.receive())["type"] == "lifespan.shutdown":
            await self._over()
            await self._send({"type": "lifespan.shutdown.complete"})
