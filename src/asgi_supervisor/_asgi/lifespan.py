"""Compose the supervisor with the app's own lifespan, by wrapping the lifespan messages.

The order it guarantees::

    server            middleware                       app
    startup   ──────► begin a run ───────────────────► app's startup runs
              ◄────── start workers ◄── startup.complete
    shutdown  ──────► trigger + wait until stopped ──► app's shutdown runs (workers are gone)
              ◄────── end the run ◄──── shutdown.complete

Transparency: the server, Starlette's TestClient and asgi-lifespan see what they would see
without the middleware. The app's lifespan is the app's: the middleware adds the
supervisor's start and stop to the lifespan the app runs, and never runs one the app did
not. Whatever the app does on the lifespan scope, the server sees: an exception, raised
before or after the app's first ``receive()``, reaches it unchanged, and so does a return
without a word. So a Starlette app whose middleware constructor raises (Starlette builds
its middleware stack on its first call, the lifespan scope) fails ``uvicorn --lifespan on``
as it would alone, instead of starting and answering 500.

The cost of that rule: an app that does not speak lifespan (Django's ASGIHandler raises on
the scope) looks, at that point, exactly like an app whose startup is broken. A server that
then goes on without lifespan (uvicorn with ``--lifespan auto``, hypercorn) serves it
unsupervised: the middleware passes requests through as outside any lifespan. The
middleware says so once, in a WARNING that names what the app did and the way out:
``SupervisorMiddleware(app, app_lifespan=False)`` tells it the app does not speak lifespan,
and then the supervisor answers the server's lifespan messages itself (`run_alone`) and the
app never sees a lifespan scope.

If a worker fails while starting, the app has already started: the middleware sends the
app a ``lifespan.shutdown`` of its own so it tears down, then reports
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
    """One lifespan scope, run through the app with the supervisor's start and stop woven in
    (call it), or without the app (`run_alone`).

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
        self._startup_answered = False
        self._failure: StartupError | None = None

    async def __call__(self, scope: Scope) -> None:
        try:
            await self._app(scope, self.receive, self.send)
        except Exception as exc:
            if not self._startup_answered:
                self._warn_unsupervised(f"raised {_named(exc)}")
            await self._over()
            raise
        except BaseException:
            await self._over()
            raise
        if not self._startup_answered:
            self._warn_unsupervised("returned without a word")
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
            self._run = self._begin()
        elif kind == "lifespan.shutdown":
            await self._stop()
        return message

    async def send(self, message: Message) -> None:
        """The app's send: starts the workers once the app started, ends the run at the end."""
        kind = message["type"]
        if kind.startswith("lifespan.startup."):
            self._startup_answered = True
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

    def _warn_unsupervised(self, what: str) -> None:
        when = "after" if self._app_received else "before"
        logger.warning(
            "The app's lifespan %s, %s its first receive() and before it answered the "
            "startup; the server gets this as it would without asgi-supervisor. A server "
            "that then goes on without lifespan (uvicorn --lifespan auto, hypercorn) serves "
            "the app unsupervised: no workers, no drain. Fix the app's startup or, if the "
            "app does not speak the ASGI lifespan protocol (Django's ASGIHandler), pass "
            "app_lifespan=False to SupervisorMiddleware to have the supervisor answer the "
            "lifespan itself.",
            what,
            when,
        )

    async def run_alone(self) -> None:
        """Answer the server's lifespan with the supervisor's own, never calling the app.

        For an app that does not speak lifespan (``app_lifespan=False``). Cancellation and
        timeouts are as in `__call__`.

        Raises:
            StartupError: a worker failed while starting (``startup.failed`` was sent).
        """
        if (await self._receive())["type"] != "lifespan.startup":
            return
        self._run = self._begin()
        try:
            if not await self._start():
                await self._over()
                await self._send({"type": "lifespan.startup.failed", "message": str(self._failure)})
                assert self._failure is not None
                raise self._failure
            await self._send({"type": "lifespan.startup.complete"})
            if (await self.receive())["type"] == "lifespan.shutdown":
                await self._over()
                await self._send({"type": "lifespan.shutdown.complete"})
        finally:
            await self._over()  # done already, unless cancelled: the server gave up on us


def _named(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
