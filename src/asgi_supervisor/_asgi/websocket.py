"""`WebSocketConnection`: one live websocket, which the supervisor can close from another task.

Closing from another task must not wait for the app. A handler usually sits in ``receive()``
for most of a websocket's life, and some servers cannot send a close frame while a receive is
pending on the same connection (granian's ``send`` blocks until that receive returns, which is
when the client next speaks, or never). So `close` first takes the handler out of the server's
receive, by cancelling the task that awaits it, and that task sends the close frame before
its ``receive()`` returns the disconnect:

    handler task                           shutdown task
    ------------                           -------------
    receive(): awaits the server's ...
                                           close(1012): records the frame, cancels the
                                             handler task, waits for `_sent`
    ... CancelledError (ours): uncancel,
    send the close frame, set `_sent`,
    return websocket.disconnect 1012
                                           close() returns (or raises what the send raised)

Nothing is added to a message's path while no close is under way but two attribute stores
and a look-up of the current task.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .types import Message, Receive, Send

__all__ = ["WebSocketConnection"]


class WebSocketConnection:
    """One live websocket, which the supervisor can close from another task.

    The middleware hands the app `receive` and `send` in place of the server's; the
    supervisor calls `close` when the closing phase begins.
    """

    __slots__ = (
        "_interrupt",
        "_receive",
        "_receiver",
        "_send",
        "close_code",
        "closed",
        "started",
    )

    def __init__(self, receive: Receive, send: Send) -> None:
        self._receive = receive
        self._send = send
        self.closed = False
        self.close_code: int | None = None
        self.started = time.monotonic()
        # The task awaiting the server's receive right now, if any.
        self._receiver: asyncio.Task[object] | None = None
        # While a close interrupts that task: its `cancelling()` count before ours, the
        # frame it must send, and where it reports that send's outcome.
        self._interrupt: tuple[int, Message, asyncio.Future[None]] | None = None

    async def receive(self) -> Message:
        """The app's receive: after our close, a disconnect with our code, never a hang.

        Cancellation: a cancellation that `close` did not cause propagates as usual.
        """
        if self.close_code is not None:
            return self._disconnect()
        task = asyncio.current_task()
        self._receiver = task
        try:
            message = await self._receive()
        except asyncio.CancelledError:
            if task is None or self._interrupt is None:
                raise
            return await self._send_close_for(task)
        finally:
            self._receiver = None
        if self.close_code is not None and message["type"] == "websocket.disconnect":
            # Our close raced the server's answer (hypercorn reports the client's echo, 1000):
            # the app should learn why the socket closed, which is our code.
            return {**message, "code": self.close_code}
        return message

    async def send(self, message: Message) -> None:
        """The app's send: a close after ours is dropped, as the socket is already closing."""
        if message["type"] == "websocket.close":
            if self.closed:
                return
            self.closed = True
        await self._send(message)

    async def close(self, code: int, reason: str) -> None:
        """Send the client a close frame with *code* and *reason*, once.

        If a task is waiting in `receive`, it is taken out of the server's receive and sends
        the frame itself (see the module docstring); its ``receive()`` then returns
        ``websocket.disconnect`` with *code*.

        Cancellation: cancelling this call abandons the wait, not the close under way.

        Raises:
            Exception: whatever the server's ``send`` raised (the client is already gone).
        """
        if self.closed:
            return
        self.closed = True
        self.close_code = code
        message: Message = {"type": "websocket.close", "code": code, "reason": reason}
        receiver = self._receiver
        if receiver is None or receiver is asyncio.current_task() or receiver.done():
            await self._send(message)
            return
        sent = asyncio.get_running_loop().create_future()
        self._interrupt = (receiver.cancelling(), message, sent)
        receiver.cancel()
        await sent

    async def _send_close_for(self, task: asyncio.Task[object]) -> Message:
        # In the receiving task, just cancelled by `close`: undo our cancellation, and only
        # ours (the task may have been cancelled by someone else meanwhile, who must win).
        assert self._interrupt is not None
        (interrupted_at, message, sent), self._interrupt = self._interrupt, None
        task.uncancel()
        try:
            await self._send(message)
        except asyncio.CancelledError:
            if not sent.done():
                sent.cancel()
            raise
        except Exception as exc:  # the client left: its receive is a disconnect all the same
            if not sent.done():
                sent.set_exception(exc)
        else:
            if not sent.done():
                sent.set_result(None)
        if task.cancelling() > interrupted_at:
            raise asyncio.CancelledError
        return self._disconnect()

    def _disconnect(self) -> Message:
        return {"type": "websocket.disconnect", "code": self.close_code}
