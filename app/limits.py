"""A request body limit, enforced while the body streams in (a pure ASGI middleware).

Without it a client can make the app buffer any amount: FastAPI reads a whole JSON body
into memory before validating it (a 100 MB body took 558 MB). A declared ``Content-Length``
above the limit is refused before a byte of the body is read; a body without one (chunked)
is counted as it arrives, and refused as soon as it passes the limit.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimitMiddleware", "BodyTooLarge"]


class BodyTooLarge(Exception):
    """Raised from ``receive()`` once the body passes the limit; answered with 413."""


class BodyLimitMiddleware:
    """Answer 413 to any HTTP request whose body exceeds *max_body_bytes*.

    Example::

        app = FastAPI(middleware=[Middleware(BodyLimitMiddleware, max_body_bytes=1 << 20)])

    If the app has already started its response when the body passes the limit (it streams
    while reading), that response is cut off instead: a status cannot change once sent.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        detail = f"The request body exceeds the limit of {max_body_bytes} bytes."
        self._body = json.dumps({"detail": detail}).encode()
        self._start: Message = {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(self._body)).encode()),
                (b"connection", b"close"),
            ],
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._declared_length(scope) > self.max_body_bytes:
            await self._refuse(send)
            return
        received = 0
        exceeded = started = refused = False

        async def counting_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    exceeded = True
                    raise BodyTooLarge(f"more than {self.max_body_bytes} bytes")
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started, refused
            if refused:
                return
            if exceeded and not started:
                # Scenario: the app caught BodyTooLarge and answers with its own error
                # (FastAPI turns a failed body read into a 400): the client is told why
                # instead, and the app's response is dropped.
                started = refused = True
                await self._refuse(send)
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        await send(self._start)
        await send({"type": "http.response.body", "body": self._body})

    @staticmethod
    def _declared_length(scope: Scope) -> int:
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return 0  # the server rejects a malformed length itself
        return 0
