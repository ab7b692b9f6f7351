"""`WebSocketConnection.close` against a server that cannot send while a receive is pending."""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message

from asgi_supervisor._asgi.websocket import WebSocketConnection

CLOSE = {"type": "websocket.close", "code": 1012, "reason": "bye"}


class LockingServer:
    """A websocket server whose send waits for a pending receive to return, as granian's does."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[Message] = asyncio.Queue()
        self.sent: list[Message] = []
        self.lock = asyncio.Lock()

    async def receive(self) -> Message:
        async with self.lock:
            return await self.incoming.get()

    async def send(self, message: Message) -> None:
        async with self.lock:
            self.sent.append(message)


async def receiving(connection: WebSocketConnection) -> tuple[Message, int]:
    """What the app's receive returned, and the task's pending cancellations after it."""
    message = await connection.receive()
    task = asyncio.current_task()
    assert task is not None
    return message, task.cancelling()


async def wait_receiving(server: LockingServer) -> None:
    async with asyncio.timeout(1):
        while not server.lock.locked():
            await asyncio.sleep(0)


async def test_close_takes_the_handler_out_of_a_blocking_receive() -> None:
    """1. the handler waits in receive(); 2. close() sends the frame at once, not when the
    client next speaks; 3. the handler's receive returns our disconnect code, and the task
    carries no cancellation of ours."""
    server = LockingServer()
    connection = WebSocketConnection(server.receive, server.send)
    handler = asyncio.create_task(receiving(connection))
    await wait_receiving(server)
    await asyncio.wait_for(connection.close(1012, "bye"), 1)
    assert server.sent == [CLOSE]
    assert await handler == ({"type": "websocket.disconnect", "code": 1012}, 0)
    assert await connection.receive() == {"type": "websocket.disconnect", "code": 1012}
    assert server.incoming.empty()


async def failing_send(message: Message) -> None:
    raise OSError("the client went away")


@pytest.mark.parametrize("send_fails", [False, True])
async def test_a_cancellation_that_is_not_ours_still_ends_the_handler(send_fails: bool) -> None:
    """1. the handler waits in receive(); 2. close() interrupts it, and the handler's task
    is cancelled by someone else too; 3. the frame is sent (or fails to be), and the task
    ends cancelled all the same."""
    server = LockingServer()
    connection = WebSocketConnection(server.receive, failing_send if send_fails else server.send)
    handler = asyncio.create_task(receiving(connection))
    await wait_receiving(server)
    closing = asyncio.create_task(connection.close(1012, "bye"))
    await asyncio.sleep(0)  # close() has cancelled the handler, which has not run yet
    handler.cancel()
    await asyncio.wait({closing}, timeout=1)
    assert closing.done()
    assert server.sent == ([] if send_fails else [CLOSE])
    with pytest.raises(asyncio.CancelledError):
        await handler
    if send_fails:
        assert isinstance(closing.exception(), OSError)


async def test_a_cancelled_receive_without_a_close_propagates() -> None:
    """A cancellation while no close is under way reaches the app unchanged."""
    server = LockingServer()
    connection = WebSocketConnection(server.receive, server.send)
    handler = asyncio.create_task(receiving(connection))
    await wait_receiving(server)
    handler.cancel()
    with pytest.raises(asyncio.CancelledError):
        await handler
    assert server.sent == []
    assert not connection.closed


async def test_a_close_the_client_cannot_receive_still_ends_the_receive() -> None:
    """1. the handler waits in receive(); 2. the server's send fails (the client left);
    3. close() raises that error, and the handler's receive returns our disconnect."""
    server = LockingServer()
    connection = WebSocketConnection(server.receive, failing_send)
    handler = asyncio.create_task(receiving(connection))
    await wait_receiving(server)
    with pytest.raises(OSError, match="went away"):
        await asyncio.wait_for(connection.close(1012, "bye"), 1)
    assert await handler == ({"type": "websocket.disconnect", "code": 1012}, 0)
