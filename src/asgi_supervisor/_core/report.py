"""The shutdown report: what each phase took and what became of every request and task."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .stacks import format_stack, where

__all__ = ["AbandonedTask", "Phase", "ShutdownReport", "describe_report", "log_report"]

logger = logging.getLogger("asgi_supervisor")


@dataclass(frozen=True, slots=True, kw_only=True)
class Phase:
    """One phase of the shutdown: its state name, start (seconds after the trigger), duration."""

    name: str
    start: float
    duration: float

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {
            "name": self.name,
            "start": round(self.start, 6),
            "duration": round(self.duration, 6),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AbandonedTask:
    """A task still running at the deadline, named with the place it is stuck."""

    id: int
    name: str
    kind: str
    where: str | None
    stack: tuple[str, ...]

    @classmethod
    def of(cls, task: asyncio.Task[Any], id: int, name: str, kind: str) -> AbandonedTask:
        """Describe *task*, still running, with where it is stuck and its await chain."""
        return cls(id=id, name=name, kind=kind, where=where(task), stack=tuple(format_stack(task)))

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "where": self.where,
            "stack": list(self.stack),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ShutdownReport:
    """What one shutdown did, produced when it ends and kept as ``Supervisor.last_report``.

    Example::

        report = await supervisor.drain()
        if report.abandoned:
            log.error("stuck: %s", [task.where for task in report.abandoned])
    """

    trigger: str
    forced: bool
    started_at: float
    duration: float
    phases: tuple[Phase, ...]
    requests_drained_count: int
    requests_rejected_count: int
    requests_cancelled_count: int
    websockets_closed: dict[int, int] = field(default_factory=dict)
    websockets_cancelled_count: int = 0
    tasks_finished_count: int = 0
    tasks_cancelled_count: int = 0
    tasks_failed_count: int = 0
    cut_short: tuple[str, ...] = ()
    abandoned: tuple[AbandonedTask, ...] = ()

    @property
    def clean(self) -> bool:
        """True when no task was abandoned, had its cleanup cut short, or failed."""
        return not self.abandoned and not self.cut_short and not self.tasks_failed_count

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict, as `/drain` returns and the log line carries."""
        return {
            "trigger": self.trigger,
            "forced": self.forced,
            "started_at": self.started_at,
            "duration": round(self.duration, 6),
            "clean": self.clean,
            "phases": [phase.to_dict() for phase in self.phases],
            "requests": {
                "drained": self.requests_drained_count,
                "rejected": self.requests_rejected_count,
                "cancelled": self.requests_cancelled_count,
            },
            "websockets_closed": {
                str(code): n for code, n in sorted(self.websockets_closed.items())
            },
            "websockets_cancelled": self.websockets_cancelled_count,
            "tasks": {
                "finished": self.tasks_finished_count,
                "cancelled": self.tasks_cancelled_count,
                "failed": self.tasks_failed_count,
                "cut_short": len(self.cut_short),
                "abandoned": len(self.abandoned),
            },
            "cut_short": list(self.cut_short),
            "abandoned": [task.to_dict() for task in self.abandoned],
        }


def log_report(report: ShutdownReport) -> None:
    """Log *report* once: each abandoned task, then the summary (full dict in ``extra``)."""
    for task in report.abandoned:
        logger.error(
            "abandoned %s %r at the deadline, stuck at %s",
            task.kind,
            task.name,
            task.where,
            extra={"task": task.name, "where": task.where},
        )
    if report.cut_short:
        logger.warning(
            "cleanup cut short by the second cancel: %s",
            ", ".join(report.cut_short),
            extra={"tasks": list(report.cut_short)},
        )
    if report.requests_cancelled_count:
        logger.warning(
            "%d request(s) cancelled at the deadline (answered 503 where no response had begun)",
            report.requests_cancelled_count,
        )
    level = logging.INFO if report.clean else logging.ERROR
    summary = report.to_dict()
    # One readable line; the whole dict stays in `report` for JSON logs.
    logger.log(level, "shutdown report: %s", describe_report(summary), extra={"report": summary})


def describe_report(summary: Mapping[str, Any]) -> str:
    """The shutdown report (`ShutdownReport.to_dict`) as one readable line.

    Example: ``signal SIGTERM, clean, 1.52 s: draining 0.00 s, closing 1.20 s, stopping 0.31 s;
    requests drained 3, rejected 1, cancelled 0; websockets closed 1012x2, cancelled 0; tasks
    finished 2, cancelled 1, failed 0, cut short 0, abandoned 0``.
    """
    phases = ", ".join(
        f"{phase.get('name')} {float(phase.get('duration', 0.0)):.2f} s"
        for phase in summary.get("phases", ())
    )
    requests = summary.get("requests", {})
    tasks = summary.get("tasks", {})
    closed = summary.get("websockets_closed", {})
    parts = [
        f"{summary.get('trigger')}{', forced' if summary.get('forced') else ''}, "
        f"{'clean' if summary.get('clean', True) else 'NOT clean'}, "
        f"{float(summary.get('duration', 0.0)):.2f} s: {phases or 'no phases'}",
        "requests " + _counts(requests, ("drained", "rejected", "cancelled")),
        "websockets closed "
        + (", ".join(f"{code}x{n}" for code, n in closed.items()) or "0")
        + f", cancelled {summary.get('websockets_cancelled', 0)}",
        "tasks "
        + _counts(tasks, ("finished", "cancelled", "failed"))
        + f", cut short {tasks.get('cut_short', 0)}, abandoned {tasks.get('abandoned', 0)}",
    ]
    return "; ".join(parts)


def _counts(counts: Mapping[str, Any], names: tuple[str, ...]) -> str:
    return ", ".join(f"{name} {counts.get(name, 0)}" for name in names)
