"""The closing notice: given once, it ends every `until` iteration, even one parked in its
source, withdrawing only its own cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from asgi_supervisor._core.notice import ClosingNotice

pytestmark = pytest.mark.timeout(10)


class Source:
    """An endless source: yields its items, then parks for the next one until released."""

    def __init__(self, *items: int) -> None:
        self.items = list(items)
        self.parked = asyncio.Event()
        self.closed = False

    async def __call__(self) -> AsyncIterator[int]:
        try:
            for item in self.items:
                yield item
            self.parked.set()
            await asyncio.Event().wait()  # a queue that never gets another message
            yield -1
        finally:
            self.closed = True


async def consume(notice: ClosingNotice, source: Source) -> list[int]:
    return [item async for item in notice.until(source())]


async def test_a_consumer_parked_in_its_source_ends_at_the_notice() -> None:
    """1. two items pass; 2. the source parks; 3. the notice: the iteration ends as if the
    source had ended, the source is closed, the task is not left cancelling, and the stream
    is counted as ended at the notice."""
    notice, source = ClosingNotice(), Source(1, 2)
    consumer = asyncio.create_task(consume(notice, source))
    await source.parked.wait()
    notice.give()
    assert await consumer == [1, 2]
    assert source.closed
    assert consumer.cancelling() == 0
    assert notice.ended_count == 1


async def test_a_consumer_between_two_items_ends_before_asking_for_the_next() -> None:
    """The notice given while the consumer handles an item: it asks for no other."""
    notice, source = ClosingNotice(), Source(1, 2, 3)
    seen = []
    async for item in notice.until(source()):
        seen.append(item)
        if item == 1:
            notice.give()
    assert seen == [1]
    assert source.closed
    assert notice.ended_count == 1


async def test_a_source_that_ends_by_itself_is_not_counted() -> None:
    """Without a notice `until` yields everything and ends when the source does."""
    notice = ClosingNotice()

    async def three() -> AsyncIterator[int]:
        for item in range(3):
            yield item

    assert [item async for item in notice.until(three())] == [0, 1, 2]
    assert notice.ended_count == 0


async def test_a_cancellation_that_is_not_the_notices_propagates() -> None:
    """Someone else cancels the consumer: it ends cancelled, the source closed."""
    notice, source = ClosingNotice(), Source(1)
    consumer = asyncio.create_task(consume(notice, source))
    await source.parked.wait()
    consumer.cancel()
    await asyncio.wait({consumer})
    assert consumer.cancelled()
    assert source.closed
    assert notice.ended_count == 0


async def test_a_cancellation_as_well_as_the_notices_propagates() -> None:
    """The notice and someone else cancel the parked consumer at once: theirs wins."""
    notice, source = ClosingNotice(), Source(1)
    consumer = asyncio.create_task(consume(notice, source))
    await source.parked.wait()
    notice.give()
    consumer.cancel()
    await asyncio.wait({consumer})
    assert consumer.cancelled()
    assert source.closed


async def test_a_source_that_swallows_the_cancellation_leaves_no_request_behind() -> None:
    """A source catches our cancellation and yields one more item: our request is withdrawn
    all the same, and the iteration ends before the next."""
    notice = ClosingNotice()
    parked = asyncio.Event()
    seen: list[str] = []

    async def stubborn() -> AsyncIterator[str]:
        yield "first"
        try:
            parked.set()
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            yield "after the cancel"  # swallowed
        yield "never"

    async def run() -> int:
        async for item in notice.until(stubborn()):
            seen.append(item)
        task = asyncio.current_task()
        assert task is not None
        return task.cancelling()

    consumer = asyncio.create_task(run())
    await parked.wait()
    notice.give()
    assert await consumer == 0
    assert seen == ["first", "after the cancel"]


async def test_subscribers_are_told_once_and_one_failing_does_not_stop_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each subscriber is called once, the second `give` does nothing, and a subscriber
    that raises is logged while the next one is still told."""
    notice = ClosingNotice()
    told: list[str] = []

    def broken() -> None:
        raise RuntimeError("integration bug")

    notice.subscribe(broken)
    notice.subscribe(lambda: told.append("second"))
    notice.give()
    notice.give()
    assert told == ["second"]
    assert notice.given
    assert "telling" in caplog.text
    assert "integration bug" in caplog.text
