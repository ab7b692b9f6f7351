"""`WebSocketConnection`: one live websocket, which the supervisor can close from another task."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._types import Message, Receive, Send

__all__ = ["WebSocketConnection"]


class WebSocketConnection:
    """One live websocket, which the supervisor can close from another task."""

    __slots__ = ("_receive", "_send", "accepted", "close_code", "closed", "started")

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self.accepted = False
        self.closed = False
        self.close_code: int | None = None
        self.started = time.monotonic()

    async def receive(self) -> Message:
        """The app's receive: after our close, a disconnect with our code, never a hang."""
        if self.close_code is not None:
            return {"type": "websocket.disconnect", "code": self.close_code}
        message = await self._receive()
        if self.close_code is not None and message["type"] == "websocket.disconnect":
            # Our close raced the server's answer (hypercorn reports the client's echo, 1000):
            # the app should learn why the socket closed, which is our code.
            return {**message, "code": self.close_code}
        return message

    async def send(self, message: Message) -> None:
        """The app's send: a close after ours is dropped, as the socket is already closing."""
        kind = message["type"]
        if kind == "websocket.accept":
            self.accepted = True
        elif kind == "websocket.close":
            if self.closed:
                return
            self.closed = True
        await self._send(message)

    async def close(self, code: int, reason: str) -> None:
        """Send the client a close frame with *code* and *reason*, once."""
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        await self._send({"type": "websocket.close", "code": code, "reason": reason})
