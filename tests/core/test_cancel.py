"""Cancelling tasks within a deadline: cleanup honoured, stragglers reported, never a hang."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from asgi_supervisor._core.cancel import (
    CANCEL_MESSAGE,
    cancel_and_wait,
    finish_cleanup,
    recancel_margin,
    wait_resisting,
)


async def slow_cleanup(cleaned: asyncio.Event, cleaning: asyncio.Event | None = None) -> None:
    """Parks; when cancelled, sets *cleaning*, needs 0.2 s (an await) to clean up, then sets
    *cleaned*."""
    try:
        await asyncio.sleep(3600)
    finally:
        if cleaning is not None:
            cleaning.set()
        await asyncio.sleep(0.2)
        cleaned.set()


async def test_cleanup_that_awaits_finishes_within_the_deadline() -> None:
    """A task whose `finally` awaits is given the time to finish it, and is not re-cancelled."""
    cleaned = asyncio.Event()
    task = asyncio.create_task(slow_cleanup(cleaned))
    await asyncio.sleep(0)
    outcome = await cancel_and_wait([task], deadline=time.monotonic() + 2.0)
    assert cleaned.is_set()
    assert task in outcome.stopped
    assert not outcome.abandoned
    assert not outcome.cut_short


async def test_cleanup_needing_most_of_the_budget_is_not_cut_short() -> None:
    """A `finally` that needs 60 % of the budget finishes: the second cancel comes later."""
    budget = 1.0
    cleaned = asyncio.Event()

    async def long_cleanup() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(0.6 * budget)
            cleaned.set()

    task = asyncio.create_task(long_cleanup())
    await asyncio.sleep(0)
    outcome = await cancel_and_wait([task], deadline=time.monotonic() + budget)
    assert cleaned.is_set()
    assert (outcome.cut_short, outcome.abandoned) == (frozenset(), frozenset())
    assert budget - recancel_margin(budget) >= 0.75 * budget


async def test_cleanup_longer_than_the_safe_share_is_reported_cut_short() -> None:
    """A cleanup still running at the second cancel is interrupted, and reported as cut."""
    budget = 0.5
    cleaned = asyncio.Event()

    async def endless_cleanup() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            await asyncio.sleep(3600)
            cleaned.set()

    task = asyncio.create_task(endless_cleanup())
    await asyncio.sleep(0)
    outcome = await cancel_and_wait([task], deadline=time.monotonic() + budget)
    assert not cleaned.is_set()
    assert outcome.cut_short == frozenset({task})
    assert not outcome.abandoned


async def test_task_that_swallows_cancel_is_recancelled_then_abandoned_on_time() -> None:
    """A task swallowing every cancellation is cancelled twice, then abandoned on time."""
    swallowed = 0
    release = asyncio.Event()

    async def stubborn() -> None:
        nonlocal swallowed
        while not release.is_set():
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                swallowed += 1

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    started = time.monotonic()
    outcome = await cancel_and_wait([task], deadline=started + 0.4)
    elapsed = time.monotonic() - started
    try:
        assert outcome.abandoned == frozenset({task})
        assert not outcome.cut_short  # it never ended: abandoned, not cut
        assert swallowed == 2
        assert 0.35 <= elapsed < 1.0
    finally:
        release.set()
        task.cancel()
        await asyncio.wait({task})


async def test_one_swallow_is_caught_by_the_second_cancel() -> None:
    """A task that swallows the first cancellation only is stopped by the late second one."""

    async def swallows_once() -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)
        await asyncio.sleep(3600)

    task = asyncio.create_task(swallows_once())
    await asyncio.sleep(0)
    outcome = await cancel_and_wait([task], deadline=time.monotonic() + 0.4)
    assert task.cancelled()
    assert outcome.cut_short == frozenset({task})
    assert not outcome.abandoned


async def test_cleanup_that_raises_does_not_stop_the_others() -> None:
    """One task failing in its cleanup leaves the others stopped normally."""

    async def raises_in_cleanup() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            raise RuntimeError("cleanup failed")

    bad = asyncio.create_task(raises_in_cleanup())
    good = [asyncio.create_task(asyncio.sleep(3600)) for _ in range(3)]
    await asyncio.sleep(0)
    outcome = await cancel_and_wait([bad, *good], deadline=time.monotonic() + 1)
    assert outcome.stopped == frozenset({bad, *good})
    assert isinstance(bad.exception(), RuntimeError)
    assert all(task.cancelled() for task in good)


async def test_never_cancels_the_calling_task() -> None:
    """The task running the shutdown is skipped even when it is in the list."""
    me = asyncio.current_task()
    assert me is not None
    other = asyncio.create_task(asyncio.sleep(3600))
    outcome = await cancel_and_wait([me, other], deadline=time.monotonic() + 1)
    assert me.cancelling() == 0
    assert other.cancelled()
    assert me not in outcome.stopped


async def test_the_second_cancel_names_the_supervisor() -> None:
    """A task that resisted the first cancellation learns from the second who cancels it."""
    seen: list[str] = []

    async def resists_once() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError as exc:
            seen.append(str(exc))  # swallowed: the classic stuck task, once
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError as exc:
            seen.append(str(exc))
            raise

    task = asyncio.create_task(resists_once())
    await asyncio.sleep(0)
    await cancel_and_wait([task], deadline=time.monotonic() + 0.5)
    assert seen == ["", CANCEL_MESSAGE]


async def test_ten_thousand_tasks_are_all_stopped() -> None:
    """10 000 parked tasks are all cancelled and awaited, none left pending."""
    tasks = [asyncio.create_task(asyncio.sleep(3600)) for _ in range(10_000)]
    await asyncio.sleep(0)
    outcome = await cancel_and_wait(tasks, deadline=time.monotonic() + 30)
    assert len(outcome.stopped) == 10_000
    assert all(task.cancelled() for task in tasks)


async def test_deadline_already_past_abandons_without_waiting() -> None:
    """With no time left, tasks are cancelled once and reported at once."""
    task = asyncio.create_task(asyncio.sleep(3600))
    await asyncio.sleep(0)
    outcome = await cancel_and_wait([task], deadline=time.monotonic() - 1)
    assert outcome.abandoned == frozenset({task})
    await asyncio.wait({task})  # the cancellation requested still lands
    assert task.cancelled()


async def test_the_shutdown_resists_being_cancelled_until_its_deadline() -> None:
    """asyncio.run cancels every task after a forced exit: the wait goes on, bounded."""
    cleaned, cleaning = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(slow_cleanup(cleaned, cleaning))
    await asyncio.sleep(0)
    stopper = asyncio.create_task(cancel_and_wait([task], deadline=time.monotonic() + 2))
    await cleaning.wait()  # the stopper has cancelled the task and waits for its cleanup
    stopper.cancel()
    outcome = await stopper
    assert cleaned.is_set()
    assert outcome.stopped == frozenset({task})
    assert stopper.cancelling() == 0


async def test_waiting_withdraws_every_cancellation_made_meanwhile() -> None:
    """Two requests that reach the waiter as one CancelledError are both withdrawn: the
    count is back to zero, not left at one."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def waiter() -> tuple[int, int]:
        absorbed = await wait_resisting(future, time.monotonic() + 5)
        me = asyncio.current_task()
        assert me is not None
        return absorbed, me.cancelling()

    task = asyncio.create_task(waiter())
    await asyncio.sleep(0)
    task.cancel()
    task.cancel()
    await asyncio.sleep(0)
    future.set_result(None)
    assert await task == (2, 0)


async def test_waiting_keeps_a_cancellation_counted_before_it_began() -> None:
    """A request the caller caught without withdrawing it is still counted after the wait,
    even when the awaited future is itself cancelled (a CancelledError that is nobody's
    request to the caller)."""
    loop = asyncio.get_running_loop()

    async def waiter() -> int:
        me = asyncio.current_task()
        assert me is not None
        me.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(3600)  # caught, not uncancel()ed: the count stays at 1
        future: asyncio.Future[None] = loop.create_future()
        loop.call_soon(future.cancel)
        await wait_resisting(future, time.monotonic() + 5)
        return me.cancelling()

    assert await asyncio.create_task(waiter()) == 1


async def test_a_held_cancellation_outlives_a_cleanup_that_raises() -> None:
    """The caller cancelled while a cleanup fails still ends cancelled, its request still
    counted, with the cleanup's error as the cause: delayed, never lost."""
    cleaning = asyncio.Event()
    proceed = asyncio.Event()

    async def failing_cleanup() -> None:
        cleaning.set()
        await proceed.wait()
        raise RuntimeError("cleanup failed")

    async def caller() -> tuple[int, BaseException | None]:
        try:
            await finish_cleanup([failing_cleanup()], deadline=time.monotonic() + 5)
        except asyncio.CancelledError as exc:
            me = asyncio.current_task()
            assert me is not None
            return me.cancelling(), exc.__cause__
        raise AssertionError("finish_cleanup returned although its caller was cancelled")

    task = asyncio.create_task(caller())
    await cleaning.wait()
    task.cancel()
    await asyncio.sleep(0)
    proceed.set()
    count, cause = await task
    assert count == 1
    assert isinstance(cause, RuntimeError)


async def test_a_cleanup_cancelled_by_itself_does_not_cancel_the_caller() -> None:
    """A cleanup that ends cancelled (its own doing) is no cancellation of the caller."""

    async def cancels_itself() -> None:
        raise asyncio.CancelledError

    async def caller() -> int:
        await finish_cleanup([cancels_itself()], deadline=time.monotonic() + 5)
        me = asyncio.current_task()
        assert me is not None
        return me.cancelling()

    assert await asyncio.create_task(caller()) == 0


async def test_every_cleanup_runs_to_its_end_when_one_fails() -> None:
    """A cleanup that fails does not cut the wait for the others short: they all finish,
    then the first error is raised."""
    finished: list[str] = []
    failed = asyncio.Event()

    async def fails() -> None:
        await asyncio.sleep(0)
        failed.set()
        raise RuntimeError("first cleanup failed")

    async def finishes_after_it() -> None:
        await failed.wait()
        for _ in range(10):  # some turns of the loop after the first one failed
            await asyncio.sleep(0)
        finished.append("second")

    with pytest.raises(RuntimeError, match="first cleanup failed"):
        await finish_cleanup([fails(), finishes_after_it()], deadline=time.monotonic() + 5)
    assert finished == ["second"]
