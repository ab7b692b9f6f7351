"""Loop-lag detection that names the culprit: which code holds the event loop, and for how long.

Tools like aiomonitor measure loop lag: how late the loop runs a callback that was due. When
it is late by half a second, every request waits that long, and the operator's question is
"what was it doing?". Only another thread can answer while the loop is stuck, so:

* the loop runs a heartbeat, `_Heartbeat.beat`, every ``threshold / 2`` seconds. It stores
  when the next beat is due and, when a beat runs more than ``threshold`` late, appends the
  stall's start and end to a deque. It takes no lock (``deque.append`` and attribute stores
  are atomic), and costs one timer callback per interval;
* a daemon thread wakes every ``threshold / 4`` seconds. When the next beat is overdue by more
  than ``threshold``, the loop is stuck right now: it samples the loop thread's stack with
  ``sys._current_frames()``, walks out to the innermost frame of user code, reads the task the
  loop is running and, on Python 3.14 and later, the tasks awaiting it (from asyncio's call
  graph: the request that awaits the task stuck in sync code), and logs one WARNING.
  When the beat's deque shows the stall ended, it logs one more with the stall's length and
  counts it in `LoopLagStats`.

Nothing here blocks the loop, stopping included: `LoopLagMonitor.stop` sets the thread's event
and returns, and the thread, woken at once, tells the loop when it has ended (`wait_finished`
awaits that, bounded). A join would hold the loop for as long as the thread takes to finish
a log line, at every lifespan shutdown.

Reading ``asyncio.current_task(loop)`` from another thread is racy: the loop could switch tasks
between our two reads of its state. A stalled loop switches nothing, and the sample is
discarded unless the beat is still overdue after it was taken.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import logging
import sys
import threading
import time
import traceback
import types
from typing import Any

from asgi_supervisor._core.stacks import awaited_by, describe_frame, is_user_code

__all__ = ["LoopLagMonitor", "LoopLagStats"]

logger = logging.getLogger("asgi_supervisor")

_STACK_LIMIT = 40  # innermost frames kept in the log record's `stack` field
_FINISH_TIMEOUT = 1.0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LoopLagStats:
    """What loop-lag detection has seen since the supervisor was created.

    A stall is a heartbeat that ran more than ``threshold`` seconds after it was due; its
    duration is how late it ran.

    Example::

        stats = supervisor.loop_lag
        print(stats.stall_count, stats.stalled_duration, stats.longest_stall_duration)

    Attributes:
        threshold: seconds of lag that make a stall; None when detection is off.
        stall_count: stalls that have ended.
        stalled_duration: total seconds the loop was stalled, over all stalls.
        longest_stall_duration: seconds of the longest stall.
        last_where: ``file:line in function`` holding the loop in the last stall, if it was
            caught.
    """

    threshold: float | None
    stall_count: int = 0
    stalled_duration: float = 0.0
    longest_stall_duration: float = 0.0
    last_where: str | None = None


@dataclasses.dataclass(slots=True)
class _Sample:
    """The loop caught while stuck: where, in which task, and the stack that got there."""

    due: float
    where: str
    function: str
    task: str | None
    # The tasks awaiting that task (3.14 and later; None before, or for a plain callback).
    awaited_by: list[str] | None
    stack: list[str]


class _Heartbeat:
    """The loop's side of one run: a callback every *interval* seconds noting when the next
    is due, and each beat that came more than *limit* seconds late.

    The watcher thread reads `due` and pops `ended`; the loop never waits for it (a float
    store and ``deque.append`` are atomic). A run's heartbeat, event and thread are its own,
    so a thread that outlives `LoopLagMonitor.stop` can never read a later run's beats; it
    resolves `finished` (on the loop, if the loop is still open) as it ends.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float, limit: float) -> None:
        self.loop = loop
        self.loop_thread_id = threading.get_ident()
        self.stopped = threading.Event()
        self.stopped_at = 0.0
        self.ended: collections.deque[tuple[float, float]] = collections.deque()
        self.finished: asyncio.Future[None] = loop.create_future()
        self._interval = interval
        self._limit = limit
        self._call_later = loop.call_later
        self.due = time.monotonic() + interval
        self._handle = self._call_later(interval, self.beat)

    def beat(self) -> None:
        now = time.monotonic()
        if now - self.due > self._limit:
            self.ended.append((self.due, now))
        self.due = now + self._interval
        self._handle = self._call_later(self._interval, self.beat)

    def stop(self) -> None:
        """Called from the loop: no beat after this, and the thread may end."""
        self._handle.cancel()
        # The loop is running this very call: any stall the thread caught is over by now.
        self.stopped_at = time.monotonic()
        self.stopped.set()

    def thread_ended(self) -> None:
        """Called from the watcher thread as it ends: resolve `finished` on the loop."""
        # Scenario: asyncio.run closes the loop between our check and the call; then nobody
        # awaits `finished` any more, and the RuntimeError says only that.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(_resolve, self.finished)


class LoopLagMonitor:
    """Logs the code that holds the event loop for longer than *threshold* seconds.

    Example::

        monitor = LoopLagMonitor(0.5)
        monitor.start(asyncio.get_running_loop())   # from the loop's thread
        ...
        monitor.stop()                  # never blocks
        await monitor.wait_finished()   # the thread has ended (at most a second)

    One lifespan's run starts it when its startup is done and stops it when its shutdown
    sequence has stopped, before the app's own shutdown (whose sync cleanup is no stall
    anyone serves through), or when the lifespan ends otherwise. Its counts span every run.
    ``threshold=None`` makes every method a no-op.

    Args:
        threshold: seconds of lag that make a stall, or None for off.
    """

    def __init__(self, threshold: float | None) -> None:
        self.threshold = threshold
        self._stats = LoopLagStats(threshold=threshold)
        # Only watcher threads take it, to count a stall: the loop's side takes no lock.
        self._stats_lock = threading.Lock()
        self._heartbeat: _Heartbeat | None = None
        self._thread: threading.Thread | None = None
        # The last run's heartbeat, until the next start: `wait_finished` awaits its thread.
        self._last: _Heartbeat | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        stalls = self._stats.stall_count
        return f"<LoopLagMonitor {state} threshold={self.threshold} stalls={stalls}>"

    @property
    def running(self) -> bool:
        """True between `start` and `stop`."""
        return self._thread is not None

    def stats(self) -> LoopLagStats:
        """The counts so far: a frozen snapshot, safe to read from any thread."""
        return self._stats

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the heartbeat on *loop* and the watcher thread; call it from the loop's thread.

        Starting a running monitor does nothing.
        """
        if self.threshold is None or self._thread is not None:
            return
        heartbeat = _Heartbeat(loop, self.threshold / 2, self.threshold)
        self._heartbeat = self._last = heartbeat
        self._thread = threading.Thread(
            target=self._watch, args=(heartbeat,), name="asgi-supervisor-loop-lag", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the heartbeat and tell the thread to end; call it from the loop's thread.

        Never blocks: the thread, woken at once, logs a stall it caught and ends by itself
        (`wait_finished`). A daemon, it cannot keep the process alive meanwhile. Stopping a
        stopped monitor does nothing.
        """
        heartbeat = self._heartbeat
        if heartbeat is None:
            return
        heartbeat.stop()
        self._thread = self._heartbeat = None

    async def wait_finished(self) -> None:
        """Wait until the thread of the last run has ended, a second at most, after `stop`.

        Cancellation and timeout: the wait ends, the thread still ends by itself.
        """
        heartbeat = self._last
        if heartbeat is None or self._heartbeat is heartbeat:
            return  # never started, or not stopped: there is no end to wait for
        await asyncio.wait([heartbeat.finished], timeout=_FINISH_TIMEOUT)

    # -- the watcher thread -----------------------------------------------------------------

    def _watch(self, heartbeat: _Heartbeat) -> None:
        try:
            self._watch_until_stopped(heartbeat)
        finally:
            heartbeat.thread_ended()

    def _watch_until_stopped(self, heartbeat: _Heartbeat) -> None:
        assert self.threshold is not None  # start() runs no thread otherwise
        threshold, loop = self.threshold, heartbeat.loop
        caught: _Sample | None = None
        while not heartbeat.stopped.wait(threshold / 4):
            if loop.is_closed():
                return
            caught = self._report_ended(heartbeat, caught)
            due = heartbeat.due
            # A loop that is not running is stopped, not stuck (asyncio.run tearing down).
            if caught is None and time.monotonic() - due > threshold and loop.is_running():
                sample = _sample(heartbeat, due)
                # Scenario: the loop got going again between our check and the sample; then
                # the stack shows whatever runs now, which is not the culprit.
                if sample is not None and heartbeat.due == due:
                    caught = sample
                    self._log_caught(sample, time.monotonic() - due)
        caught = self._report_ended(heartbeat, caught)
        if caught is not None:
            self._end_stall(caught.due, heartbeat.stopped_at, caught)

    def _report_ended(self, heartbeat: _Heartbeat, caught: _Sample | None) -> _Sample | None:
        """Log and count the stalls the beat saw end; return *caught* unless it ended."""
        while heartbeat.ended:
            due, ended_at = heartbeat.ended.popleft()
            match = caught if caught is not None and caught.due == due else None
            self._end_stall(due, ended_at, match)
            if match is not None:
                caught = None
        return caught

    def _log_caught(self, sample: _Sample, lag: float) -> None:
        logger.warning(
            "event loop blocked for %.2f s so far (threshold %.2f s) by %s, task %s%s",
            lag,
            self.threshold,
            sample.where,
            sample.task or "none (a plain callback)",
            f", awaited by {', '.join(sample.awaited_by)}" if sample.awaited_by else "",
            extra={
                "loop_lag": round(lag, 6),
                "threshold": self.threshold,
                "where": sample.where,
                "function": sample.function,
                "task": sample.task,
                "awaited_by": sample.awaited_by,
                "stack": sample.stack,
            },
        )

    def _end_stall(self, due: float, ended_at: float, sample: _Sample | None) -> None:
        duration = max(0.0, ended_at - due)
        where = sample.where if sample is not None else None
        with self._stats_lock:
            stats = self._stats
            self._stats = dataclasses.replace(
                stats,
                stall_count=stats.stall_count + 1,
                stalled_duration=stats.stalled_duration + duration,
                longest_stall_duration=max(stats.longest_stall_duration, duration),
                last_where=where,
            )
        culprit = where or "code that ran and returned before it could be sampled"
        logger.warning(
            "event loop was blocked for %.2f s by %s",
            duration,
            culprit,
            extra={
                "loop_stall_duration": duration,
                "threshold": self.threshold,
                "where": where,
                "function": sample.function if sample is not None else None,
                "task": sample.task if sample is not None else None,
            },
        )


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _sample(heartbeat: _Heartbeat, due: float) -> _Sample | None:
    """Where the loop's thread is now, and the task its loop runs."""
    frame = sys._current_frames().get(heartbeat.loop_thread_id)
    if frame is None:
        return None
    try:
        culprit = _innermost_user_frame(frame)
        task = asyncio.current_task(heartbeat.loop)
        awaiters = None if task is None else awaited_by(task)
        return _Sample(
            due=due,
            where=describe_frame(culprit),
            function=culprit.f_code.co_qualname,
            task=_describe_task(task),
            awaited_by=None if awaiters is None else [_describe_task(a) or "" for a in awaiters],
            stack=[line.rstrip("\n") for line in traceback.format_stack(frame, _STACK_LIMIT)],
        )
    finally:
        del frame  # a frame keeps its locals alive: do not hold it past the sample


def _innermost_user_frame(frame: types.FrameType) -> types.FrameType:
    """The innermost frame of user code on the stack, else *frame* itself."""
    current: types.FrameType | None = frame
    while current is not None:
        if is_user_code(current.f_code.co_filename):
            return current
        current = current.f_back
    return frame


def _describe_task(task: asyncio.Task[Any] | None) -> str | None:
    if task is None:
        return None
    coro = task.get_coro()
    qualname = getattr(coro, "__qualname__", None)
    return f"{task.get_name()!r} ({qualname})" if qualname else repr(task.get_name())
