"""The registry of tracked work: workers, spawned tasks, websockets and in-flight requests.

Workers and spawned tasks get a `TaskRecord` each. Requests and websockets are kept in plain
dicts keyed by their task, because they come and go on the per-request path where every
allocation counts; `/tasks` builds their entries only when asked.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import itertools
import logging
import time
from typing import Any, NamedTuple

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
    """The live record of one worker or spawned task (mutable; snapshot it to publish)."""

    __slots__ = ("id", "kind", "last_error", "name", "restarts", "started", "state", "task")

    def __init__(self, id: int, name: str, kind: Kind, task: asyncio.Task[Any] | None) -> None:
        self.id = id
        self.name = name
        self.kind = kind
        self.task = task
        self.started = time.monotonic()
        self.restarts = 0
        self.last_error: str | None = None
        # Workers say more than "running": restarting, given up.
        self.state = "running"

    def __repr__(self) -> str:
        return f"<TaskRecord {self.id} {self.kind.value} {self.name!r} {self.state}>"


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
    """Every tracked task of one supervisor, plus the history of those that ended."""

    __slots__ = ("_ids", "cancel_reason", "history", "records", "requests", "websockets", "workers")

    def __init__(self, history_size: int) -> None:
        self._ids = itertools.count(1)
        # Insertion-ordered, so shutdown can walk workers in reverse order of registration.
        self.records: dict[asyncio.Task[Any], TaskRecord] = {}
        self.workers: list[TaskRecord] = []
        # Request task -> monotonic start time.
        self.requests: dict[asyncio.Task[Any], float] = {}
        # Websocket task -> its connection (see `_websocket.WebSocketConnection`).
        self.websockets: dict[asyncio.Task[Any], Any] = {}
        self.history: collections.deque[FinishedTask] = collections.deque(maxlen=history_size)
        # Set by the shutdown before it cancels everything: the reason every task it
        # cancels ended, without asking each one (which raises an exception per task).
        self.cancel_reason: str | None = None

    def reset(self) -> None:
        """Forget everything of the last lifespan, in place: the middleware holds these dicts."""
        self.records.clear()
        self.workers.clear()
        self.requests.clear()
        self.websockets.clear()
        self.history.clear()
        self.cancel_reason = None

    def next_id(self) -> int:
        """A fresh id, unique within this registry."""
        return next(self._ids)

    def add(self, record: TaskRecord) -> None:
        """Track *record* (its task must be set)."""
        assert record.task is not None
        self.records[record.task] = record

    def finish(
        self, record: TaskRecord, ending: Ending, detail: str | None, remember: bool = True
    ) -> None:
        """Stop tracking *record* and, if *remember*, keep how it ended in the history."""
        if record.task is not None:
            self.records.pop(record.task, None)
        if remember and self.history.maxlen:
            self.history.append(
                FinishedTask(
                    record.id,
                    record.name,
                    record.kind,
                    ending,
                    detail,
                    time.monotonic() - record.started,
                    time.time(),
                )
            )

    def task_done(self, task: asyncio.Task[Any], remember: bool = True) -> None:
        """Done callback of every tracked task: record how it ended, log a spawned failure.

        *remember* False skips the history entry (a failure is still logged): the shutdown
        ends thousands of tasks at once, and the bounded history keeps only the last ones.
        """
        record = self.records.get(task)
        if record is None:
            return
        if task.cancelled():
            if record.kind is Kind.WORKER:
                record.state = "stopped"
            reason = self.cancel_reason or _cancel_reason(task)
            self.finish(record, Ending.CANCELLED, reason, remember)
            return
        exc = task.exception()
        if exc is None:
            detail = record.state if record.kind is Kind.WORKER else None
            self.finish(record, Ending.COMPLETED, detail, remember)
            return
        record.last_error = f"{type(exc).__name__}: {exc}"
        if record.kind is Kind.WORKER:
            # Crashes are logged by the worker's own loop; this is a failed start.
            record.state = "failed"
        else:
            logger.error(
                "task %r failed: %s",
                record.name,
                record.last_error,
                exc_info=exc,
                extra={"task": record.name, "task_id": record.id},
            )
        self.finish(record, Ending.FAILED, record.last_error, remember)

    def counts(self) -> dict[str, int]:
        """How many of each kind are live."""
        workers = sum(1 for r in self.workers if r.state != "stopped")
        return {
            "requests": len(self.requests),
            "websockets": len(self.websockets),
            "tasks": len(self.records) - sum(1 for r in self.workers if r.task in self.records),
            "workers": workers,
        }


def _cancel_reason(task: asyncio.Task[Any]) -> str | None:
    """The message a cancelled task was cancelled with, if any."""
    try:
        task.result()
    except asyncio.CancelledError as exc:
        return str(exc.args[0]) if exc.args else None
    except BaseException:  # only cancelled tasks come here; nothing else to say
        return None
    return None
