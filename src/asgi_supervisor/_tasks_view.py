"""What `/tasks` shows: tracked tasks, filtered and paged, with where each one waits.

Filtering uses only cheap fields; the costly part (walking each task's await chain) runs
for the page that is returned, so 10 000 tracked tasks answer in milliseconds.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._registry import Kind
from ._stacks import await_chain, format_stack, where

if TYPE_CHECKING:
    from ._supervisor import Supervisor

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


def tasks_payload(supervisor: Supervisor, query: TasksQuery) -> dict[str, Any]:
    """The JSON body of `/tasks` for *query*."""
    now = time.monotonic()
    registry = supervisor.registry
    rows: list[tuple[asyncio.Task[Any], dict[str, Any]]] = []
    for task, record in registry.records.items():
        state = record.state
        if record.kind is Kind.TASK and task.cancelling():
            state = "cancelling"
        rows.append(
            (
                task,
                {
                    "id": record.id,
                    "name": record.name,
                    "kind": record.kind.value,
                    "state": state,
                    "age": round(now - record.started, 3),
                    "restarts": record.restarts,
                    "last_error": record.last_error,
                },
            )
        )
    for task, connection in registry.websockets.items():
        rows.append((task, _untracked_row(task, "websocket", now - connection.started)))
    for task, started in registry.requests.items():
        rows.append((task, _untracked_row(task, "request", now - started)))
    if query.all:
        tracked = {task for task, _ in rows}
        for task in asyncio.all_tasks():
            if task not in tracked:
                rows.append((task, _untracked_row(task, "untracked", None)))
    selected = [
        (task, row)
        for task, row in rows
        if (query.kind is None or row["kind"] == query.kind)
        and (query.state is None or row["state"] == query.state)
        and (query.name is None or query.name in row["name"])
    ]
    page = selected[query.offset : query.offset + query.limit]
    tasks = []
    for task, row in page:
        row["where"] = where(task)
        row["awaiting"] = await_chain(task)
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


def _untracked_row(task: asyncio.Task[Any], kind: str, age: float | None) -> dict[str, Any]:
    return {
        # Requests and websockets have no record; the task's id is unique while it runs.
        "id": id(task),
        "name": task.get_name(),
        "kind": kind,
        "state": "cancelling" if task.cancelling() else "running",
        "age": None if age is None else round(age, 3),
        "restarts": 0,
        "last_error": None,
    }
