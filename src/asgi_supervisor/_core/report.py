"""The shutdown report: what each phase took and what became of every request and task.

The report renders itself, and only here: `to_dict` for machines (`/drain`, the log record's
``report`` field, `/metrics`) and `summary` for people (the log line, and the ``summary``
that `/drain` carries for the command line to print). The `/tasks` page shows the same
words: the counts as `tallies` give them, every duration through `format_duration`, the
one way the package writes a duration as text. JSON keeps durations as numbers, rounded to
the microsecond. A drain still under way is a `ShutdownProgress`, rendered the same way.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .stacks import format_stack, where

__all__ = [
    "AbandonedTask",
    "Phase",
    "ShutdownProgress",
    "ShutdownReport",
    "Tally",
    "format_duration",
    "log_report",
    "tallies",
]

logger = logging.getLogger("asgi_supervisor")


def format_duration(seconds: float) -> str:
    """*seconds* as people read them: ``0.42 s``, ``12.3 s``, ``4 min 05 s``, ``2 h 07 min``."""
    if seconds < 9.995 or not math.isfinite(seconds):
        return f"{seconds:.2f} s"
    if seconds < 59.95:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


def _json_seconds(seconds: float) -> float:
    return round(seconds, 6)


@dataclass(frozen=True, slots=True)
class Tally:
    """One group of a report's counts in its own words, as the log line and the page show it.

    ``Tally("requests", (("drained 3", 3), ("rejected 0", 0)))`` reads ``requests drained 3,
    rejected 0``; each item keeps its count so the page can mute the zeros.
    """

    label: str
    items: tuple[tuple[str, int], ...]

    def text(self) -> str:
        """The tally as the log line writes it."""
        return f"{self.label} {', '.join(words for words, _ in self.items)}"


def _counted(*pairs: tuple[str, int]) -> tuple[tuple[str, int], ...]:
    return tuple((f"{name} {count}", count) for name, count in pairs)


def _closed(websockets_closed: Mapping[int, int]) -> tuple[str, int]:
    codes = sorted(websockets_closed.items())
    total = sum(count for _, count in codes)
    return f"closed {', '.join(f'{code}x{n}' for code, n in codes) or 0}", total


def _line(head: str, duration: float, phases: Sequence[Phase], groups: Sequence[Tally]) -> str:
    took = ", ".join(f"{p.name} {format_duration(p.duration)}" for p in phases) or "no phases"
    return "; ".join((f"{head}, {format_duration(duration)}: {took}", *(t.text() for t in groups)))


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
            "start": _json_seconds(self.start),
            "duration": _json_seconds(self.duration),
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

    def summary(self) -> str:
        """The report as one line, as the log shows it.

        Example: ``signal SIGTERM, clean, 1.52 s: draining 0.00 s, closing 1.20 s, stopping
        0.31 s; requests drained 3, rejected 1, cancelled 0; websockets closed 1012x2,
        cancelled 0; tasks finished 2, cancelled 1, failed 0, cut short 0, abandoned 0``.
        """
        verdict = "clean" if self.clean else "NOT clean"
        head = f"{self.trigger}{', forced' if self.forced else ''}, {verdict}"
        return _line(head, self.duration, self.phases, tallies(self))

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict, as `/drain` returns and the log line carries; ``summary`` is
        `summary()`."""
        return {
            "trigger": self.trigger,
            "forced": self.forced,
            "started_at": self.started_at,
            "duration": _json_seconds(self.duration),
            "clean": self.clean,
            "phases": [phase.to_dict() for phase in self.phases],
            "requests": {
                "drained": self.requests_drained_count,
                "rejected": self.requests_rejected_count,
                "cancelled": self.requests_cancelled_count,
            },
            "websockets_closed": _codes(self.websockets_closed),
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
            "summary": self.summary(),
        }


def tallies(report: ShutdownReport) -> tuple[Tally, ...]:
    """What became of *report*'s requests, websockets and tasks, in the report's words."""
    return (
        Tally(
            "requests",
            _counted(
                ("drained", report.requests_drained_count),
                ("rejected", report.requests_rejected_count),
                ("cancelled", report.requests_cancelled_count),
            ),
        ),
        Tally(
            "websockets",
            (
                _closed(report.websockets_closed),
                *_counted(("cancelled", report.websockets_cancelled_count)),
            ),
        ),
        Tally(
            "tasks",
            _counted(
                ("finished", report.tasks_finished_count),
                ("cancelled", report.tasks_cancelled_count),
                ("failed", report.tasks_failed_count),
                ("cut short", len(report.cut_short)),
                ("abandoned", len(report.abandoned)),
            ),
        ),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ShutdownProgress:
    """A shutdown still under way, as `/drain` answers before the report exists.

    Its tasks are not counted yet (the stopping phase decides their fate), nor the requests
    the deadline will cancel: it says what is known, and how many requests are in flight.
    """

    trigger: str
    forced: bool
    started_at: float
    elapsed: float
    phases: tuple[Phase, ...]
    requests_drained_count: int
    requests_rejected_count: int
    requests_in_flight_count: int
    websockets_closed: dict[int, int] = field(default_factory=dict)

    def summary(self) -> str:
        """The shutdown so far as one line, written as `ShutdownReport.summary` is.

        Example: ``drain endpoint, under way, 0.52 s: draining 0.00 s, closing 0.52 s;
        requests drained 1, rejected 0, in flight 0; websockets closed 0``.
        """
        head = f"{self.trigger}{', forced' if self.forced else ''}, under way"
        requests = _counted(
            ("drained", self.requests_drained_count),
            ("rejected", self.requests_rejected_count),
            ("in flight", self.requests_in_flight_count),
        )
        groups = (
            Tally("requests", requests),
            Tally("websockets", (_closed(self.websockets_closed),)),
        )
        return _line(head, self.elapsed, self.phases, groups)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict, as `/drain` answers while the shutdown runs."""
        return {
            "trigger": self.trigger,
            "forced": self.forced,
            "started_at": self.started_at,
            "elapsed": _json_seconds(self.elapsed),
            "phases": [phase.to_dict() for phase in self.phases],
            "requests": {
                "drained": self.requests_drained_count,
                "rejected": self.requests_rejected_count,
                "in_flight": self.requests_in_flight_count,
            },
            "websockets_closed": _codes(self.websockets_closed),
            "summary": self.summary(),
        }


def _codes(websockets_closed: Mapping[int, int]) -> dict[str, int]:
    return {str(code): n for code, n in sorted(websockets_closed.items())}


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
    # One readable line; the whole dict stays in `report` for JSON logs.
    logger.log(level, "shutdown report: %s", report.summary(), extra={"report": report.to_dict()})
