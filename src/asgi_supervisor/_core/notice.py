"""The closing notice: when long-lived responses should end themselves, and a helper that does.

A server-sent event stream, a long-poll or a streamable-HTTP session (MCP) never ends by
itself. Ended at the deadline it is cut: its client sees a reset, and the report says so.
Ended when the closing phase begins (after ``shutdown_delay``, when load balancers have
stopped sending new requests here), its client sees the body end and reconnects elsewhere.
That moment is the *closing notice*; one lifespan gives it once (`ClosingNotice.give`).

Streaming code learns of it three ways: ``supervisor.closing`` (event-like, `Closing`),
``supervisor.until_closing(source)`` (`ClosingNotice.until`: an async iterator that ends
at the notice), and, for sse-starlette, with no code at all (`_asgi.sse`).

`until` ends the iteration even while the source is waiting for its next item (a queue, a
pub/sub message): at the notice, a consumer parked in the source is cancelled, and the
cancellation is withdrawn inside `until`, which ends the iteration as if the source had
ended. Only our own cancellation is withdrawn, by comparing ``cancelling()`` with the count
before ours, as asyncio's ``timeouts.py`` does:

    consumer task (a StreamingResponse)      shutdown task
    -----------------------------------      -------------
    until: awaits the source's next item
                                             give(): records the consumer's cancelling()
                                               count, cancels it
    ... CancelledError in the source; until:
    ours (the count is above the one we
    recorded): uncancel, close the source,
    end the iteration; the response sends
    its last chunk and the end of the body

A consumer between two items (sending one) is not interrupted: it sees the notice before
asking for the next.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable
from typing import Any, TypeVar

__all__ = ["ClosingNotice"]

logger = logging.getLogger("asgi_supervisor")

T = TypeVar("T")


class ClosingNotice:
    """One lifespan's closing notice: given once, when the closing phase begins.

    The shutdown gives it (`give`); streaming code waits for it (`event`) or iterates
    through `until`; `ended_count` counts the long-lived responses that ended at it, as
    `until` and the middleware (for sse-starlette's streams) report them with
    `stream_ended`.
    """

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.ended_count = 0
        # Consumers of `until` waiting for their source's next item, and those `give`
        # cancelled, each with its `cancelling()` count before ours.
        self._waiting: set[asyncio.Task[Any]] = set()
        self._interrupted: dict[asyncio.Task[Any], int] = {}
        self._subscribers: list[Callable[[], None]] = []

    def __repr__(self) -> str:
        state = "given" if self.given else "not given"
        return f"<ClosingNotice {state} ended={self.ended_count} waiting={len(self._waiting)}>"

    @property
    def given(self) -> bool:
        """True once the closing phase has begun."""
        return self.event.is_set()

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call *callback* (in the loop, once) when the notice is given; it must not raise."""
        self._subscribers.append(callback)

    def give(self) -> None:
        """Give the notice: set the event, end every `until` iteration, tell subscribers.

        Idempotent. Runs in the loop; nothing here awaits.
        """
        if self.event.is_set():
            return
        self.event.set()
        for task in self._waiting:
            if not task.done():
                self._interrupted[task] = task.cancelling()
                task.cancel()
        for callback in self._subscribers:
            try:
                callback()
            except Exception:  # one integration's bug must not keep streams from ending
                logger.exception("telling %r of the closing notice failed", callback)

    def stream_ended(self) -> None:
        """A long-lived response ended at the notice (counted in the shutdown report)."""
        self.ended_count += 1

    async def until(self, source: AsyncIterable[T]) -> AsyncIterator[T]:
        """Yield *source*'s items until the notice is given, then close it and end.

        See `Supervisor.until_closing`. Cancellation: a cancellation that the notice did not
        cause propagates, the source closed first.
        """
        iterator = aiter(source)
        try:
            while not self.event.is_set():
                task = asyncio.current_task()
                assert task is not None
                self._waiting.add(task)
                try:
                    item = await anext(iterator)
                except StopAsyncIteration:
                    return
                except asyncio.CancelledError:
                    before = self._interrupted.pop(task, None)
                    # Ours alone: a count still above the one before ours means someone
                    # else cancelled the task too, and theirs goes on.
                    if before is None or task.uncancel() > before:
                        raise
                    break
                finally:
                    self._waiting.discard(task)
                before = self._interrupted.pop(task, None)
                if before is not None and task.cancelling() > before:
                    # The source swallowed our cancellation and gave an item: withdraw
                    # ours, or the task stays marked as cancelling for good.
                    task.uncancel()
                yield item
            self.stream_ended()
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                await aclose()
