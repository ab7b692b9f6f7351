"""Helpers for testing apps that use asgi-supervisor, in-process and without a server.

Example::

    async with LifespanManager(app) as manager:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app)) as client:
            assert (await client.get("/_supervisor/health/ready")).status_code == 200
    assert manager.shutdown_messages[-1]["type"] == "lifespan.shutdown.complete"

`LifespanManager` drives the ASGI lifespan as a server would. Remember that httpx's
ASGITransport buffers whole bodies and runs no lifespan: draining and websockets need a real
server to be shown end to end.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from ._asgi.types import ASGIApp, Message

__all__ = ["LifespanManager", "LifespanStartupFailed"]


class LifespanStartupFailed(Exception):
    """The app answered ``lifespan.startup.failed``; the message is the app's."""


class LifespanManager:
    """Run an ASGI app's lifespan around a block, as a server would.

    Args:
        app: the ASGI app (usually wrapped in `SupervisorMiddleware`).
        startup_timeout: seconds to wait for startup to complete.
        shutdown_timeout: seconds to wait for shutdown to complete; give it more than the
            supervisor's grace period.

    Raises:
        LifespanStartupFailed: on entry, when startup fails.
        TimeoutError: when startup or shutdown does not answer in time.
    """

    def __init__(
        self, app: ASGIApp, *, startup_timeout: float = 10.0, shutdown_timeout: float = 30.0
    ) -> None:
        self.app = app
        self.startup_timeout = startup_timeout
        self.shutdown_timeout = shutdown_timeout
        self.state: dict[str, Any] = {}
        self.shutdown_messages: list[Message] = []
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def _receive(self) -> Message:
        return await self._to_app.get()

    async def _send(self, message: Message) -> None:
        await self._from_app.put(message)

    async def _next(self, seconds: float) -> Message:
        assert self._task is not None
        getter = asyncio.ensure_future(self._from_app.get())
        done, _ = await asyncio.wait(
            {getter, self._task}, timeout=seconds, return_when="FIRST_COMPLETED"
        )
        if getter in done:
            return getter.result()
        getter.cancel()
        if self._task in done:
            self._task.result()  # raises what the app raised
            raise RuntimeError("The app's lifespan returned without answering.")
        raise TimeoutError(f"The app's lifespan did not answer within {seconds:g} s.")

    async def _run(self, scope: dict[str, Any]) -> None:
        await self.app(scope, self._receive, self._send)

    async def __aenter__(self) -> LifespanManager:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self.state}
        self._task = asyncio.create_task(self._run(scope))
        await self._to_app.put({"type": "lifespan.startup"})
        message = await self._next(self.startup_timeout)
        if message["type"] == "lifespan.startup.failed":
            # The app reports, then raises (as Starlette's router does): chain its error.
            await asyncio.wait({self._task}, timeout=self.shutdown_timeout)
            cause = None
            if self._task.done() and not self._task.cancelled():
                cause = self._task.exception()
            raise LifespanStartupFailed(message.get("message", "")) from cause
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown()

    async def shutdown(self) -> Message:
        """Send ``lifespan.shutdown`` and return the app's answer (once; later calls repeat it).

        Raises:
            TimeoutError: the app did not answer within ``shutdown_timeout``.
        """
        if self.shutdown_messages:
            return self.shutdown_messages[-1]
        await self._to_app.put({"type": "lifespan.shutdown"})
        message = await self._next(self.shutdown_timeout)
        self.shutdown_messages.append(message)
        assert self._task is not None
        await asyncio.wait({self._task}, timeout=1.0)
        return message
