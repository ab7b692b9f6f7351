"""Cancel a set of tasks and await their cleanup, within a hard deadline.

The protocol, in the order the stopping phase runs it:

1. ``cancel()`` every task at once: a request, delivered at each task's next ``await``.
2. Wait for them with a counter and one future, never `wait_for` or `gather`: those wait for
   a cancelled task to *finish*, forever if it swallows the cancellation.
3. Late, when only a safety margin of the budget is left, cancel what is still running once
   more: it may have caught the first `CancelledError` and carried on. Not earlier and not
   repeatedly: cleanup that awaits (closing a connection, releasing a lease) would be cut
   short each time. A task that needed this second request is reported as *cut short*.
4. At the deadline, give up on the rest and report them with where they are stuck.

The policy for resisting cancellation, shared by every wait of the shutdown (`wait_resisting`):
the task running the shutdown absorbs a cancellation (``uncancel``) and keeps waiting until its
own deadline, because a shutdown stopped half-way is worse than one that ends on time.
``asyncio.run`` cancels every task left when a server returns early, the shutdown included.
The cleanup at the end of a lifespan (`finish_cleanup`) holds a cancellation instead, and
raises it once the cleanup is over.

Both compare with the caller's ``cancelling()`` count on entry, as asyncio's ``timeouts.py``
and ``taskgroups.py`` do, rather than counting the `CancelledError` they caught: two requests
can arrive as one error, and an error can come without a request (the awaited future was
itself cancelled). A request counted before the wait began is never withdrawn.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Container, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CANCEL_MESSAGE",
    "Outcome",
    "cancel_and_wait",
    "finish_cleanup",
    "recancel_margin",
    "wait_resisting",
]

CANCEL_MESSAGE = "cancelled by asgi-supervisor: shutdown deadline"


def recancel_margin(budget: float) -> float:
    """The part of a cancel *budget* kept after the second cancel: a fifth, at most 1 s.

    A task that swallowed the first cancel needs only a moment to unwind from the second, so
    cleanup that awaits gets the other four fifths (all but 1 s of a long budget).
    """
    return min(budget / 5, 1.0)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of the tasks given to `cancel_and_wait` that were still running.

    ``stopped`` ended within the deadline, ``abandoned`` did not. ``cut_short`` are the
    stopped ones that were still running at the second cancel: their cleanup (or whatever
    they did instead of stopping) was interrupted.
    """

    stopped: frozenset[asyncio.Task[Any]]
    abandoned: frozenset[asyncio.Task[Any]]
    cut_short: frozenset[asyncio.Task[Any]]


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[Any]],
    *,
    deadline: float,
    message: str = CANCEL_MESSAGE,
    notified: Callable[[Callable[[asyncio.Task[Any]], None] | None], None] | None = None,
    notified_tasks: Container[asyncio.Task[Any]] = (),
) -> Outcome:
    """Cancel *tasks*, await them until *deadline* (``time.monotonic()``), report the rest.

    The caller's own task is never cancelled even if it is in *tasks*: cancelling the task
    that runs the shutdown would abort the shutdown itself. Tasks already done are skipped.

    Cancellation: the wait resists it, up to *deadline* (see the module docstring).

    Args:
        tasks: the tasks to stop, in the order to cancel them.
        deadline: the ``time.monotonic()`` value after which nothing more is awaited.
        message: passed to the second ``Task.cancel``, so the traceback of a task that
            resisted the first one says who cancelled it.
        notified: registers a callback called when any of *notified_tasks* ends (the
            registry's own done callback), so those tasks need no second callback; called
            with None afterwards to unregister.
        notified_tasks: the tasks *notified* reports on.
    """
    current = asyncio.current_task()
    pending: set[asyncio.Task[Any]] = set()
    countdown = _Countdown(pending, asyncio.get_running_loop().create_future())
    second: list[asyncio.Task[Any]] = []
    if notified is not None:
        notified(countdown.one_done)
    try:
        # One pass, in the caller's order: tasks wake in that order, so workers registered
        # last begin their cleanup first. No task can end before the loop runs again, so
        # the count is complete before any callback reads it.
        for task in tasks:
            if task is current or task.done():
                continue
            pending.add(task)
            if notified is None or task not in notified_tasks:
                task.add_done_callback(countdown.one_done)
            # No message on the first request: a message makes every cancellation about a
            # third dearer, and the registry knows why its tasks ended without it.
            task.cancel()
        countdown.start()
        if countdown.remaining:
            budget = deadline - time.monotonic()
            await wait_resisting(countdown.waiter, deadline - recancel_margin(budget))
        if countdown.remaining:
            # Scenario: a task catches CancelledError, logs it, and loops back into `await
            # queue.get()`. The first request is spent; only a second one can stop it.
            second = [task for task in pending if not task.done()]
            for task in second:
                task.cancel(message)
            await wait_resisting(countdown.waiter, deadline)
    finally:
        if notified is not None:
            notified(None)
    cut_short = frozenset(task for task in second if task.done())
    if not countdown.remaining:
        return Outcome(stopped=frozenset(pending), abandoned=frozenset(), cut_short=cut_short)
    abandoned = frozenset(task for task in pending if not task.done())
    return Outcome(stopped=frozenset(pending - abandoned), abandoned=abandoned, cut_short=cut_short)


class _Countdown:
    """Resolves its waiter when every watched task has ended: one counter, one future.

    Like `asyncio.wait` without its per-task bookkeeping and its pass to remove callbacks
    afterwards (a late callback only decrements a counter nobody reads any more).
    """

    __slots__ = ("_watched", "remaining", "waiter")

    def __init__(self, watched: set[asyncio.Task[Any]], waiter: asyncio.Future[None]) -> None:
        self._watched = watched
        self.remaining = 0
        self.waiter = waiter

    def start(self) -> None:
        """Every watched task is known: count them, resolving at once if there are none."""
        self.remaining = len(self._watched)
        if not self.remaining:
            self.waiter.set_result(None)

    def one_done(self, task: asyncio.Task[Any]) -> None:
        if task not in self._watched:
            return
        self.remaining -= 1
        if self.remaining == 0 and not self.waiter.done():
            self.waiter.set_result(None)


async def wait_resisting(future: asyncio.Future[Any], until: float) -> int:
    """Wait for *future* until the ``time.monotonic()`` value *until*, resisting cancellation.

    Returns when the future is done or the time has come, whichever is first; never raises
    `CancelledError` for a cancellation of the caller (see the module docstring), and never
    cancels *future*. Returns how many cancellations of the caller it absorbed.

    Cancellation: every request that arrived during the wait is withdrawn (``uncancel``), and
    only those: the caller's ``cancelling()`` count is back to what it was on entry, as
    asyncio's `timeouts` compares with the count it saw on entry.
    """
    task = asyncio.current_task()
    entry = 0 if task is None else task.cancelling()
    await _wait_holding(future, until)
    absorbed = 0
    # Scenario: a cancelled task caught the CancelledError, carried on without uncancel()
    # and began a shutdown: its count is 1 on entry, and that request is not ours to drop.
    while task is not None and task.cancelling() > entry:
        task.uncancel()
        absorbed += 1
    return absorbed


async def _wait_holding(future: asyncio.Future[Any], until: float) -> None:
    """Wait for *future* until *until*, catching each cancellation of the caller and leaving
    its request counted (``cancelling()``): the caller decides what becomes of it.

    Never raises what *future* raised, and never cancels it: `asyncio.wait` waits for it to
    be done without taking its result, where ``wait_for(shield(...))`` would raise a failed
    cleanup's error mid-wait and leave the cleanups after it unawaited.
    """
    while not future.done():
        remaining = until - time.monotonic()
        if remaining <= 0:
            return
        with contextlib.suppress(asyncio.CancelledError):  # the caller's: left counted
            await asyncio.wait((future,), timeout=remaining)


_unfinished: set[asyncio.Task[Any]] = set()


async def finish_cleanup(cleanups: Iterable[Coroutine[Any, Any, None]], *, deadline: float) -> None:
    """Run *cleanups* to their end, until *deadline* (``time.monotonic()``) at most, even if
    the caller is cancelled meanwhile.

    For the end of a lifespan: hypercorn cancels the lifespan task there, and cleanup cut at
    its first ``await`` leaves files behind. A cancellation of the caller is held until the
    cleanups have finished (or their time is up), then raised: it is delayed, never lost,
    and the caller's ``cancelling()`` count still holds every request made meanwhile. A
    cleanup still running at the deadline is cancelled and left to end on its own.

    Raises:
        asyncio.CancelledError: the caller was cancelled meanwhile; the first cleanup's
            error, if one raised, is its ``__cause__``. Cancellation wins over an error
            because whoever cancelled the caller waits for it to end cancelled.
        Exception: the first error a cleanup raised, when the caller was not cancelled.
    """
    task = asyncio.current_task()
    entry = 0 if task is None else task.cancelling()
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(cleanup) for cleanup in cleanups]
    for cleanup_task in tasks:
        await _wait_holding(cleanup_task, deadline)
    error: BaseException | None = None
    for cleanup_task in tasks:
        if not cleanup_task.done():
            cleanup_task.cancel()
            _unfinished.add(cleanup_task)  # a reference until it ends, as for every task we made
            cleanup_task.add_done_callback(_unfinished.discard)
        elif error is None and not cleanup_task.cancelled():
            error = cleanup_task.exception()
    if task is not None and task.cancelling() > entry:
        raise asyncio.CancelledError from error
    if error is not None:
        raise error
