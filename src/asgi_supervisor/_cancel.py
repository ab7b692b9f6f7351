"""Cancel a set of tasks and await their cleanup, within a hard deadline.

The protocol, in the order the stopping phase runs it:

1. ``cancel()`` every task at once: a request, delivered at each task's next ``await``.
2. Wait for them with `asyncio.wait`, never `wait_for` or `gather`: those wait for a
   cancelled task to *finish*, forever if it swallows the cancellation.
3. After half the budget, cancel what is still running once more: it may have caught the
   first `CancelledError` and carried on. Not earlier and not repeatedly, because cleanup
   that awaits (closing a connection, releasing a lease) would be cut short each time.
4. At the deadline, give up on the rest and report them with where they are stuck.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

__all__ = ["CANCEL_MESSAGE", "Outcome", "cancel_and_wait"]

CANCEL_MESSAGE = "cancelled by asgi-supervisor: shutdown deadline"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of the tasks given to `cancel_and_wait`."""

    done: frozenset[asyncio.Task[Any]]
    abandoned: frozenset[asyncio.Task[Any]]
    recancelled_count: int


async def cancel_and_wait(
    tasks: Collection[asyncio.Task[Any]], *, deadline: float, message: str = CANCEL_MESSAGE
) -> Outcome:
    """Cancel *tasks*, await them until *deadline* (loop time), and report what is left.

    The caller's own task is never cancelled even if it is in *tasks*: cancelling the task
    that runs the shutdown would abort the shutdown itself.

    Cancellation: the wait resists it. This runs the shutdown, which must not stop half-way
    when ``asyncio.run`` cancels every task after a forced server exit; it is bounded by
    *deadline* anyway.

    Args:
        tasks: the tasks to stop; tasks already done are fine.
        deadline: the loop time (``loop.time()``) after which nothing more is awaited.
        message: passed to ``Task.cancel`` so that a stuck task's traceback says who cancelled.
    """
    loop = asyncio.get_running_loop()
    current = asyncio.current_task()
    ordered = [t for t in tasks if t is not current and not t.done()]
    done = {t for t in tasks if t.done()}
    # Cancel in the caller's order: tasks wake in that order, so workers registered last
    # begin their cleanup first.
    for task in ordered:
        task.cancel(message)
    pending = set(ordered)
    recancelled = 0
    if pending:
        budget = deadline - loop.time()
        if budget > 0:
            finished, pending = await _wait(pending, loop.time() + budget / 2)
            done |= finished
        # Scenario: a task catches CancelledError, logs it, and loops back into `await
        # queue.get()`. The first request is spent; only a second one can stop it.
        for task in pending:
            task.cancel(message)
        recancelled = len(pending)
        budget = deadline - loop.time()
        if pending and budget > 0:
            finished, pending = await _wait(pending, deadline)
            done |= finished
    return Outcome(
        done=frozenset(done), abandoned=frozenset(pending), recancelled_count=recancelled
    )


async def _wait(
    pending: set[asyncio.Task[Any]], until: float
) -> tuple[set[asyncio.Task[Any]], set[asyncio.Task[Any]]]:
    """Wait until every task in *pending* is done or the loop time is *until*.

    Like `asyncio.wait`, without its per-task bookkeeping: one counter, one future, and no
    pass to remove the callbacks afterwards (a late callback only decrements a counter
    nobody reads). With 10 000 tasks this is a third of the cost of stopping them.
    """
    loop = asyncio.get_running_loop()
    if not pending:
        return set(), pending
    waiter = loop.create_future()
    remaining = len(pending)

    def one_done(task: asyncio.Task[Any]) -> None:
        nonlocal remaining
        remaining -= 1
        if remaining == 0 and not waiter.done():
            waiter.set_result(None)

    def timed_out() -> None:
        if not waiter.done():
            waiter.set_result(None)

    for task in pending:
        task.add_done_callback(one_done)
    timer = loop.call_at(until, timed_out)
    try:
        while not waiter.done():
            try:
                await waiter
            except asyncio.CancelledError:
                # Resist: see `cancel_and_wait`. The waiter itself may have been cancelled.
                current = asyncio.current_task()
                if current is not None:
                    current.uncancel()
                if waiter.cancelled():
                    waiter = loop.create_future()
                    if remaining == 0:
                        waiter.set_result(None)
                    elif loop.time() >= until:
                        break
                    else:
                        timer.cancel()
                        timer = loop.call_at(until, timed_out)
    finally:
        timer.cancel()
    done = {task for task in pending if task.done()}
    return done, pending - done
