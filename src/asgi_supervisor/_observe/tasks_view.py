"""What `/tasks` shows: tracked tasks, filtered and paged, with where each one waits and,
on Python 3.14 and later, which tasks wait for it (``awaited_by``; None before 3.14).

Filtering uses only cheap fields; the costly part (walking each task's await chain) runs
for the page that is returned, so 10 000 tracked tasks answer in milliseconds.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from asgi_supervisor._core.registry import Kind, Registry, TaskRecord
from asgi_supervisor._core.stacks import format_stack, waiting
from asgi_supervisor._core.worker_state import WorkerState

if TYPE_CHECKING:
    from asgi_supervisor._supervisor.supervisor import Supervisor

__all__ = ["TasksQuery", "tasks_payload"]

_KINDS = frozenset(kind.value for kind in Kind) | {"untracked"}
_FLAGS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False, "": False}
MAX_LIMIT = 10_000


@dataclass(frozen=True, slots=True, kw_only=True)
class TasksQuery:
    """The validated query of one `/tasks` request."""

    kind: str | None = None
    state: str | None = None
    name: str | None = None
    limit: int = 100
    offset: int = 0
    stack: bool = False
    all: bool = False

    @classmethod
    def parse(cls, query_string: bytes) -> TasksQuery:
        """Parse and validate a query string.

        Raises:
            ValueError: a parameter is unknown or has a bad value; the message says which.
        """
        try:
            pairs = urllib.parse.parse_qsl(
                query_string.decode("latin-1"), keep_blank_values=True, max_num_fields=20
            )
        except ValueError:
            raise ValueError("the query string has too many parameters") from None
        values: dict[str, Any] = {}
        for key, value in pairs:
            if key in ("kind", "state", "name"):
                values[key] = value
            elif key in ("limit", "offset"):
                values[key] = _integer(key, value)
            elif key in ("stack", "all"):
                if value.lower() not in _FLAGS:
                    raise ValueError(f"{key}={value!r} is not a flag; use {key}=1 or {key}=0")
                values[key] = _FLAGS[value.lower()]
            else:
                raise ValueError(
                    f"unknown parameter {key!r}; use kind, state, name, limit, offset, stack, all"
                )
        if "kind" in values and values["kind"] not in _KINDS:
            raise ValueError(f"kind={values['kind']!r} is not one of {', '.join(sorted(_KINDS))}")
        if not 1 <= values.get("limit", 100) <= MAX_LIMIT:
            raise ValueError(f"limit={values['limit']} must be between 1 and {MAX_LIMIT}")
        return cls(**values)


def _integer(key: str, value: str) -> int:
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise ValueError(f"{key}={value!r} must be a whole number of at most 9 digits")
    return int(value)


def tasks_payload(
    supervisor: Supervisor,
    query: TasksQuery,
    requests: Sequence[tuple[asyncio.Task[Any], float]] = (),
) -> dict[str, Any]:
    """The JSON body of `/tasks` for *query*; *requests* are in-flight requests and starts."""
    now = time.monotonic()
    registry = supervisor._registry
    # (task, kind, name, state, record or start time): cheap to build and to filter; the
    # JSON rows, and the frame walks behind `where`, are made for the page alone.
    rows: list[tuple[asyncio.Task[Any], str, str, str, Any]] = []
    for task, record in registry.records.items():
        shown = registry.shown_state(record)
        if shown is WorkerState.RUNNING and record.kind is Kind.TASK and task.cancelling():
            state = "cancelling"
        else:
            state = shown.value
        rows.append((task, record.kind.value, record.name, state, record))
    for task, connection in registry.websockets.items():
        rows.append((task, "websocket", task.get_name(), _state(task), connection.started))
    for task, started in requests:
        rows.append((task, "request", task.get_name(), _state(task), started))
    if query.all:
        tracked = {row[0] for row in rows}
        for task in asyncio.all_tasks():
            if task not in tracked:
                rows.append((task, "untracked", task.get_name(), _state(task), None))
    selected = [
        row
        for row in rows
        if (query.kind is None or row[1] == query.kind)
        and (query.state is None or row[3] == query.state)
        and (query.name is None or query.name in row[2])
    ]
    tasks = []
    for task, kind, name, state, origin in selected[query.offset : query.offset + query.limit]:
        if isinstance(origin, TaskRecord):
            row: dict[str, Any] = {
                "id": origin.id,
                "name": name,
                "kind": kind,
                "state": state,
                "age": round(now - origin.started, 3),
                "restarts": origin.restarts,
                "last_error": origin.last_error,
            }
        else:
            row = {
                # Requests and websockets have no record; the task's id is unique while it runs.
                "id": id(task),
                "name": name,
                "kind": kind,
                "state": state,
                "age": None if origin is None else round(now - origin, 3),
                "restarts": 0,
                "last_error": None,
            }
        found = waiting(task)
        row["where"], row["awaiting"] = found.where, found.awaiting
        row["awaited_by"] = (
            None
            if found.awaited_by is None
            else [_reference(registry, awaiter) for awaiter in found.awaited_by]
        )
        if query.stack:
            row["stack"] = format_stack(task)
        tasks.append(row)
    history = [finished.to_dict() for finished in reversed(registry.history)]
    return {
        "state": supervisor.state.value,
        "total": len(selected),
        "count": len(tasks),
        "offset": query.offset,
        "tasks": tasks,
        "history": history,
    }


def _reference(registry: Registry, task: asyncio.Task[Any]) -> dict[str, Any]:
    """The id and name /tasks gives *task*'s row: its record's, if the supervisor tracks it."""
    record = registry.records.get(task)
    if record is None:
        return {"id": id(task), "name": task.get_name()}
    return {"id": record.id, "name": record.name}


def _state(task: asyncio.Task[Any]) -> str:
    return "cancelling" if task.cancelling() else WorkerState.RUNNING.value
