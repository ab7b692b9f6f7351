"""`Supervisor.stopping`: one object for the supervisor's life, following each lifespan's event."""

from __future__ import annotations

import asyncio

import pytest

from asgi_supervisor import NotRunningError
from asgi_supervisor._core.stopping import Closing, Stopping


class Lifespans:
    """Plays the supervisor: the event of the lifespan running now, None before the first."""

    def __init__(self) -> None:
        self.event: asyncio.Event | None = None

    def current(self) -> asyncio.Event | None:
        return self.event


async def test_before_any_lifespan_it_is_unset_and_waiting_is_an_error() -> None:
    """Held from import time, before any lifespan: unset, and wait() says why it cannot."""
    stopping = Stopping(Lifespans().current)
    assert not stopping.is_set()
    assert repr(stopping) == "<Stopping unset>"
    with pytest.raises(NotRunningError, match="Cannot wait for stopping: no lifespan is running"):
        await stopping.wait()


async def test_it_follows_the_lifespan_running_now() -> None:
    """1. a waiter of the first lifespan wakes when it drains; 2. a second lifespan (a test
    client's next block) starts unset, whatever the first said; 3. and wakes its waiters."""
    lifespans = Lifespans()
    stopping = Stopping(lifespans.current)
    for _ in range(2):
        lifespans.event = asyncio.Event()
        assert not stopping.is_set()
        waiter = asyncio.create_task(stopping.wait())
        await asyncio.sleep(0)  # one step: the waiter waits on this lifespan's event
        assert not waiter.done()
        lifespans.event.set()
        await asyncio.wait_for(waiter, 1)
        assert stopping.is_set()
        assert repr(stopping) == "<Stopping set>"


async def test_closing_is_the_same_view_of_the_closing_event() -> None:
    """`Closing` reads the lifespan's closing event as `Stopping` reads its stopping one,
    and says which it is."""
    lifespans = Lifespans()
    closing = Closing(lifespans.current)
    assert repr(closing) == "<Closing unset>"
    with pytest.raises(NotRunningError, match="Cannot wait for closing: no lifespan is running"):
        await closing.wait()
    lifespans.event = asyncio.Event()
    lifespans.event.set()
    await asyncio.wait_for(closing.wait(), 1)
    assert repr(closing) == "<Closing set>"
