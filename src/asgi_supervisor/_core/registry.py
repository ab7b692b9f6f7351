"""The registry of tracked work of one lifespan: workers, spawned tasks and websockets.

It is the one owner of its tables: other modules add and remove entries through its methods
and only read the rest. Workers and spawned tasks get a `TaskRecord` each, and how each one
ended is recorded in a bounded history and, from the first shutdown trigger on, in the
`Endings` tally the report is built from. A worker's state is its own loop's to write (see
`workers`); the registry only reads it, and adds what the loop cannot know: that the shutdown
abandoned it (`shown_state`). In-flight HTTP requests are not here: they come and
go on the per-request path, where the middleware only counts them (see `requests`).
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from .worker_state import WorkerSnapshot, WorkerState

__all__ = ["Ending", "FinishedTask", "Kind", "Registry", "TaskRecord"]

logger = logging.getLogger("asgi_supervisor")


class Kind(enum.Enum):
    """What a tracked task is."""

    WORKER = "worker"
    TASK = "task"
    WEBSOCKET = "websocket"
    REQUEST = "request"


class Ending(enum.Enum):
    """How a tracked task ended."""

    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class TaskRecord:
    """The live record of one worker or spawned task (mutable; snapshot it to publish).

    A worker's `state` and `last_error` are written by its own loop in `workers`, the only
    code that knows them; a spawned task's `last_error` by the registry when it fails, and its
    `state` stays ``running`` (it is listed only while it runs).
    """

    __slots__ = ("id", "kind", "last_error", "name", "restarts", "started", "state", "task")

    def __init__(self, id: int, name: str, kind: Kind) -> None:
        self.id = id
        self.name = name
        self.kind = kind
        self.task: asyncio.Task[Any] | None = None
        self.started = time.monotonic()
        self.restarts = 0
        self.last_error: str | None = None
        self.state = WorkerState.RUNNING

    def __repr__(self) -> str:
        return f"<TaskRecord {self.id} {self.kind.value} {self.name!r} {self.state.value}>"


class FinishedTask(NamedTuple):
    """A task that ended recently, as the bounded history of `/tasks` shows it.

    A named tuple rather than a dataclass: one is made for every task that ends, ten
    thousand at a time when a shutdown stops them, and a tuple is several times cheaper.
    """

    id: int
    name: str
    kind: Kind
    ending: Ending
    detail: str | None
    duration: float
    finished_at: float

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind.value,
            "ending": self.ending.value,
            "detail": self.detail,
            "duration": round(self.duration, 6),
            "finished_at": self.finished_at,
        }


class Registry:
    """Every tracked task of one lifespan, plus the history of those that ended.

    Example::

        record = registry.track(task, "send-email", Kind.TASK)   # done callback included
        registry.counts()                                        # {"tasks": 1, ...}
    """

    __slots__ = (
        "_abandoned",
        "_cancel_message",
        "_ended_count",
        "_history_size",
        "_ids",
        "_records",
        "_ring",
        "_tally",
        "_wall_offset",
        "_watcher",
        "_websockets",
        "workers",
    )

    def __init__(self, history_size: int) -> None:
        self._ids = itertools.count(1)
        # Insertion-ordered, so shutdown can walk workers in reverse order of registration.
        self._records: dict[asyncio.Task[Any], TaskRecord] = {}
        self.workers: list[TaskRecord] = []
        self._websockets: dict[asyncio.Task[Any], Any] = {}
        # Tracked tasks the shutdown gave up on at its deadline.
        self._abandoned: set[asyncio.Task[Any]] = set()
        # The last `history_size` endings, in a ring of four preallocated columns (record,
        # ending, detail, monotonic end). Ten thousand tasks end at once in a shutdown:
        # storing into lists allocates nothing the garbage collector counts, where a tuple
        # per ending triggered collections that cost more than the bookkeeping itself.
        self._history_size = history_size
        self._ring: tuple[list[Any], list[Any], list[Any], list[Any]] = (
            [None] * history_size,
            [0] * history_size,
            [None] * history_size,
            [0.0] * history_size,
        )
        self._ended_count = 0
        self._wall_offset = time.time() - time.monotonic()
        # None until the first trigger: then how many workers and tasks ended, by ending. A
        # list indexed like `_ENDINGS` rather than a dict keyed by the enum: enum hashing is
        # slow, and this runs once per task in a shutdown.
        self._tally: list[int] | None = None
        # Set while the shutdown stops everything (see `stopping_all`).
        self._watcher: Callable[[asyncio.Task[Any]], None] | None = None
        self._cancel_message: str | None = None

    # -- adding and removing ------------------------------------------------------------------

    def new_record(self, name: str, kind: Kind) -> TaskRecord:
        """A record for a task about to be created; pass both to `track`.

        Created first because an eager task factory runs the task's first step inside
        ``create_task``, and a worker's loop needs its record from that first step on.
        """
        return TaskRecord(next(self._ids), name, kind)

    def track(self, task: asyncio.Task[Any], record: TaskRecord) -> TaskRecord:
        """Track *task* under *record*; how it ends is recorded when it is done."""
        record.task = task
        self._records[task] = record
        if record.kind is Kind.WORKER:
            self.workers.append(record)
        task.add_done_callback(self._task_done)
        return record

    def add_websocket(self, task: asyncio.Task[Any], connection: Any) -> None:
        """Track the handler task of a live websocket and its connection."""
        self._websockets[task] = connection

    def remove_websocket(self, task: asyncio.Task[Any]) -> None:
        """Stop tracking a websocket whose handler returned."""
        self._websockets.pop(task, None)

    def abandon(self, task: asyncio.Task[Any]) -> None:
        """The shutdown gave up on *task* at its deadline: it shows as abandoned while it runs."""
        if task in self._records:
            self._abandoned.add(task)

    def begin_tally(self) -> None:
        """From now on count how every tracked task ends, for the shutdown report."""
        if self._tally is None:
            self._tally = [0, 0, 0]

    def stopping_all(
        self, message: str, watcher: Callable[[asyncio.Task[Any]], None] | None
    ) -> None:
        """The shutdown is cancelling every task with *message*; tell *watcher* of each end.

        Both exist for speed when ten thousand tasks stop at once: the reason a task was
        cancelled is known without raising its exception, and the shutdown's wait needs no
        done callback of its own on the tasks tracked here.
        """
        self._cancel_message = message
        self._watcher = watcher

    # -- reading ----------------------------------------------------------------------------

    @property
    def endings(self) -> dict[Ending, int]:
        """How many workers and tasks ended each way since the first trigger (none before)."""
        if self._tally is None:
            return {}
        return dict(zip(_ENDINGS, self._tally, strict=True))

    @property
    def history(self) -> list[FinishedTask]:
        """The last ``history_size`` workers and tasks that ended, oldest first."""
        return [
            FinishedTask(
                r.id,
                r.name,
                r.kind,
                _ENDINGS[ending],
                detail,
                end - r.started,
                end + self._wall_offset,
            )
            for r, ending, detail, end in self._recent_endings()
        ]

    def _recent_endings(self) -> list[tuple[TaskRecord, int, str | None, float]]:
        size, count = self._history_size, self._ended_count
        if not size:
            return []
        first = max(0, count - size)
        records, endings, details, ends = self._ring
        return [
            (records[i % size], endings[i % size], details[i % size], ends[i % size])
            for i in range(first, count)
        ]

    @property
    def records(self) -> dict[asyncio.Task[Any], TaskRecord]:
        """Live workers and spawned tasks by task (a read-only view by convention)."""
        return self._records

    @property
    def websockets(self) -> dict[asyncio.Task[Any], Any]:
        """Live websocket handler tasks and their connections."""
        return self._websockets

    def shown_state(self, record: TaskRecord) -> WorkerState:
        """*record*'s state as `/health`, `/tasks` and the metrics show it.

        The state its loop wrote, except ``abandoned`` while the shutdown has given up on it
        and it still runs.
        """
        task = record.task
        if task is None or not task.done():
            return WorkerState.ABANDONED if task in self._abandoned else record.state
        if task.cancelled() and record.state is WorkerState.RUNNING:
            # Cancelled before its first step, its loop never ran to say it stopped.
            return WorkerState.STOPPED
        return record.state

    def worker_snapshots(self) -> tuple[WorkerSnapshot, ...]:
        """Every worker of this lifespan, live or ended, in order of registration."""
        return tuple(
            WorkerSnapshot(
                name=r.name, state=self.shown_state(r), restarts=r.restarts, last_error=r.last_error
            )
            for r in self.workers
        )

    def counts(self, requests: int = 0) -> dict[str, int]:
        """How many of each kind are live; *requests* comes from the request counter."""
        live_workers = sum(1 for r in self.workers if r.task in self._records)
        return {
            "requests": requests,
            "websockets": len(self._websockets),
            "tasks": len(self._records) - live_workers,
            "workers": live_workers,
        }

    # -- endings ----------------------------------------------------------------------------

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        record = self._records.pop(task, None)
        if record is None:
            return
        if task.cancelled():
            self._finish(record, _CANCELLED, self._cancel_message or _cancel_reason(task))
        else:
            self._returned_or_failed(task, record)
        if self._watcher is not None:
            self._watcher(task)

    def _returned_or_failed(self, task: asyncio.Task[Any], record: TaskRecord) -> None:
        exc = task.exception()
        is_worker = record.kind is Kind.WORKER
        if exc is None:
            if is_worker and record.state is WorkerState.FAILED:
                # A worker that gave up returned by itself: it failed, with its last error.
                self._finish(record, _FAILED, record.last_error)
                return
            self._finish(record, _COMPLETED, record.state.value if is_worker else None)
            return
        if is_worker:
            # Its loop logged the error and wrote its state: this is its final failure.
            self._finish(record, _FAILED, record.last_error)
            return
        record.last_error = f"{type(exc).__name__}: {exc}"
        logger.error(
            "task %r failed: %s",
            record.name,
            record.last_error,
            exc_info=exc,
            extra={"task": record.name, "task_id": record.id},
        )
        self._finish(record, _FAILED, record.last_error)

    def _finish(self, record: TaskRecord, ending: int, detail: str | None) -> None:
        if self._tally is not None:
            self._tally[ending] += 1
        size = self._history_size
        if size:
            slot = self._ended_count % size
            ring = self._ring
            ring[0][slot] = record
            ring[1][slot] = ending
            ring[2][slot] = detail
            ring[3][slot] = time.monotonic()
        self._ended_count += 1


# Endings as indexes into the tally and the raw history (see `Registry.__init__`).
_COMPLETED, _FAILED, _CANCELLED = 0, 1, 2
_ENDINGS = (Ending.COMPLETED, Ending.FAILED, Ending.CANCELLED)


def _cancel_reason(task: asyncio.Task[Any]) -> str | None:
    """The message a cancelled task was cancelled with, if any."""
    try:
        task.result()
    except asyncio.CancelledError as exc:
        return str(exc.args[0]) if exc.args else None
    except BaseException:  # only cancelled tasks come here; nothing else to say
        return None
    return None
