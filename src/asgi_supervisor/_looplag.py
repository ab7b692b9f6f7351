"""Loop-lag detection that names the culprit: which code holds the event loop, and for how long.

Tools like aiomonitor measure loop lag: how late the loop runs a callback that was due. When
it is late by half a second, every request waits that long, and the operator's question is
"what was it doing?". Only another thread can answer while the loop is stuck, so:

* the loop runs a heartbeat, `_beat`, every ``threshold / 2`` seconds. It stores when the next
  beat is due and, when a beat runs more than ``threshold`` late, appends the stall's start and
  end to a deque. It takes no lock (``deque.append`` and attribute stores are atomic), and
  costs one timer callback per interval;
* a daemon thread wakes every ``threshold / 4`` seconds. When the next beat is overdue by more
  than ``threshold``, the loop is stuck right now: it samples the loop thread's stack with
  ``sys._current_frames()``, walks out to the innermost frame of user code, reads the task the
  loop is running, and logs one WARNING. When the beat's deque shows the stall ended, it logs
  one more with the stall's length and counts it in `LoopLagStats`.

Reading ``asyncio.current_task(loop)`` from another thread is racy: the loop could switch tasks
between our two reads of its state. A stalled loop switches nothing, and the sample is
discarded unless the beat is still overdue after it was taken.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import math
import sys
import threading
import time
import traceback
import types
from collections.abc import Callable
from typing import Any

from ._stacks import describe_frame, is_user_code

__all__ = ["LoopLagMonitor", "LoopLagStats"]

logger = logging.getLogger("asgi_supervisor")

_STACK_LIMIT = 40  # innermost frames kept in the log record's `stack` field
_JOIN_TIMEOUT = 1.0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LoopLagStats:
    """What loop-lag detection has seen since the supervisor was created.

    A stall is a heartbeat that ran more than ``threshold`` seconds after it was due; its
    duration is how late it ran.

    Example::

        stats = supervisor.loop_lag.stats()
        print(stats.stall_count, stats.stalled_duration, stats.longest_stall_duration)
    """

    threshold: float | None
    """Seconds of lag that make a stall; None when detection is off."""
    stall_count: int = 0
    """Stalls that have ended."""
    stalled_duration: float = 0.0
    """Total seconds the loop was stalled, over all stalls."""
    longest_stall_duration: float = 0.0
    """Seconds of the longest stall."""
    last_where: str | None = None
    """``file:line in function`` holding the loop in the last stall, if it was caught."""


@dataclasses.dataclass(slots=True)
class _Sample:
    """The loop caught while stuck: where, in which task, and the stack that got there."""

    due: float
    where: str
    function: str
    task: str | None
    stack: list[str]


class LoopLagMonitor:
    """Logs the code that holds the event loop for longer than *threshold* seconds.

    Example::

        monitor = LoopLagMonitor(0.5)
        monitor.start(asyncio.get_running_loop())   # from the loop's thread
        ...
        monitor.stop()

    The supervisor starts it when its lifespan startup is done and stops it when the lifespan
    shutdown arrives, before the app's own shutdown (whose sync cleanup is no stall anyone
    serves through). ``threshold=None`` makes every method a no-op.

    Args:
        threshold: seconds of lag that make a stall, or None for off.
    """

    def __init__(self, threshold: float | None) -> None:
        self.threshold = threshold
        self._stats = LoopLagStats(threshold=threshold)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._handle: asyncio.TimerHandle | None = None
        self._stopped = threading.Event()
        self._stopped_at = 0.0
        self._loop_thread_id = 0
        self._limit = math.inf if threshold is None else threshold
        self._interval = self._limit / 2
        self._call_later: Callable[..., asyncio.TimerHandle] | None = None
        # Written by the loop thread, read by the watcher: plain stores, no lock.
        self._due = 0.0
        self._ended: collections.deque[tuple[float, float]] = collections.deque()

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
        self._loop = loop
        self._loop_thread_id = threading.get_ident()
        self._call_later = loop.call_later
        self._ended.clear()
        self._stopped.clear()
        self._due = time.monotonic() + self._interval
        self._handle = self._call_later(self._interval, self._beat)
        self._thread = threading.Thread(
            target=self._watch, name="asgi-supervisor-loop-lag", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the heartbeat and the thread; call it from the loop's thread.

        Waits at most a second for the thread to end: a thread still busy writing a log line
        is a daemon and cannot keep the process alive.
        """
        thread = self._thread
        if thread is None:
            return
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        # The loop is running this very call: any stall the thread caught is over by now.
        self._stopped_at = time.monotonic()
        self._stopped.set()
        thread.join(_JOIN_TIMEOUT)
        self._thread = None

    # -- the loop's side --------------------------------------------------------------------

    def _beat(self) -> None:
        now = time.monotonic()
        if now - self._due > self._limit:
            self._ended.append((self._due, now))
        self._due = now + self._interval
        assert self._call_later is not None  # set by start() before the first beat
        self._handle = self._call_later(self._interval, self._beat)

    # -- the watcher thread's side ----------------------------------------------------------

    def _watch(self) -> None:
        assert self._loop is not None  # set by start() before the thread
        threshold, loop = self._limit, self._loop
        caught: _Sample | None = None
        while not self._stopped.wait(threshold / 4):
            if loop.is_closed():
                return
            caught = self._report_ended(caught)
            due = self._due
            # A loop that is not running is stopped, not stuck (asyncio.run tearing down).
            if caught is None and time.monotonic() - due > threshold and loop.is_running():
                sample = self._sample(due)
                # Scenario: the loop got going again between our check and the sample; then
                # the stack shows whatever runs now, which is not the culprit.
                if sample is not None and self._due == due:
                    caught = sample
                    self._log_caught(sample, time.monotonic() - due)
        caught = self._report_ended(caught)
        if caught is not None:
            self._end_stall(caught.due, self._stopped_at, caught)

    def _report_ended(self, caught: _Sample | None) -> _Sample | None:
        """Log and count the stalls the beat saw end; return *caught* unless it ended."""
        while self._ended:
            due, ended_at = self._ended.popleft()
            match = caught if caught is not None and caught.due == due else None
            self._end_stall(due, ended_at, match)
            if match is not None:
                caught = None
        return caught

    def _sample(self, due: float) -> _Sample | None:
        frame = sys._current_frames().get(self._loop_thread_id)
        if frame is None:
            return None
        try:
            culprit = _innermost_user_frame(frame)
            task = asyncio.current_task(self._loop)
            return _Sample(
                due=due,
                where=describe_frame(culprit),
                function=culprit.f_code.co_qualname,
                task=_describe_task(task),
                stack=[line.rstrip("\n") for line in traceback.format_stack(frame, _STACK_LIMIT)],
            )
        finally:
            del frame  # a frame keeps its locals alive: do not hold it past the sample

    def _log_caught(self, sample: _Sample, lag: float) -> None:
        logger.warning(
            "event loop blocked for %.2f s so far (threshold %.2f s) by %s, task %s",
            lag,
            self.threshold,
            sample.where,
            sample.task or "none (a plain callback)",
            extra={
                "loop_lag": round(lag, 6),
                "threshold": self.threshold,
                "where": sample.where,
                "function": sample.function,
                "task": sample.task,
                "stack": sample.stack,
            },
        )

    def _end_stall(self, due: float, ended_at: float, sample: _Sample | None) -> None:
        duration = max(0.0, ended_at - due)
        where = sample.where if sample is not None else None
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
                "loop_stall_duration": round(duration, 6),
                "threshold": self.threshold,
                "where": where,
                "function": sample.function if sample is not None else None,
                "task": sample.task if sample is not None else None,
            },
        )


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
