"""The shutdown report: what each phase took and what became of every request and task.

The report renders itself, and only here: `to_dict` for machines (`/drain`, the log record's
``report`` field, `/metrics`) and `summary` for people (the log line, and the ``summary``
that `/drain` carries for the command line to print). The `/tasks` page shows the same
words: the counts as `tallies` give them, every duration through `format_duration`, the
one way the package writes a duration as text. JSON keeps durations as numbers, rounded to
the microsecond. A drain still under way is a `ShutdownProgress`, rendered the same way.
Whether a report is clean, and every reason it is not, is `verdict`'s to say.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .stacks import format_stack, where
from .verdict import REASONS, flaws

__all__ = [
    "AbandonedTask",
    "Phase",
    "ShutdownProgress",
    "ShutdownReport",
    "Tally",
    "format_duration",
    "log_report",
    "log_summary",
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
        if not report.clean:
            log.error("shutdown not clean: %s", "; ".join(report.reasons))

    Attributes:
        trigger: what began the shutdown (``signal SIGTERM``, ``drain endpoint``, ...).
        forced: a second signal skipped the remaining waits.
        started_at: Unix time of the trigger.
        duration: seconds from the trigger to the end of the stopping phase.
        phases: each `Phase` the shutdown went through.
        requests_drained_count: requests in flight while draining that ended by themselves
            (long-lived responses that ended at the closing notice included).
        requests_rejected_count: requests answered 503 with ``Retry-After`` while closing.
        requests_cancelled_count: requests cancelled at the deadline whose client got no
            part of a response: answered 503 instead, or whose response was complete (its
            work after the response was cut).
        requests_cut_count: requests cancelled at the deadline in the middle of their
            response body; `requests_cut` names the first of them (``GET /export from
            10.0.0.7:51234``).
        streams_ended_count: long-lived responses that ended themselves at the closing
            notice (`Supervisor.until_closing`, sse-starlette), their clients seeing the body
            end.
        websockets_closed: close frames sent by the supervisor, by close code.
        websockets_cancelled_count: websocket handlers cancelled in the stopping phase.
        websockets_unclosed_count: websockets whose close frame had not gone out when the
            stopping phase cancelled its sending.
        tasks_finished_count, tasks_cancelled_count, tasks_failed_count: how the workers and
            spawned tasks ended.
        cut_short: names of tasks whose cleanup the second cancel cut short.
        abandoned: each `AbandonedTask` still running at the deadline.
        connections_ended: client addresses of connections ended after the stopping phase
            with data their client had not read.
        ended_by_watchdog: the watchdog ended the process (the report it logs says so).
        clean: see `clean`; `reasons` says why not.
    """

    trigger: str
    forced: bool
    started_at: float
    duration: float
    phases: tuple[Phase, ...]
    requests_drained_count: int
    requests_rejected_count: int
    requests_cancelled_count: int
    requests_cut_count: int = 0
    requests_cut: tuple[str, ...] = ()
    streams_ended_count: int = 0
    websockets_closed: dict[int, int] = field(default_factory=dict)
    websockets_cancelled_count: int = 0
    websockets_unclosed_count: int = 0
    tasks_finished_count: int = 0
    tasks_cancelled_count: int = 0
    tasks_failed_count: int = 0
    cut_short: tuple[str, ...] = ()
    abandoned: tuple[AbandonedTask, ...] = ()
    connections_ended: tuple[str, ...] = ()
    ended_by_watchdog: bool = False

    @property
    def clean(self) -> bool:
        """True when every client got a whole answer or its close code, no task was
        abandoned, failed or had its cleanup cut short, and the watchdog did not end the
        process: when `reasons` is empty."""
        return not flaws(self)

    @property
    def reasons(self) -> tuple[str, ...]:
        """Every way the shutdown was not clean, in words (empty when it was clean), like
        ``1 response cut mid-body at the deadline (GET /export from 10.0.0.7:51234)``."""
        return tuple(flaw.text for flaw in flaws(self))

    def summary(self) -> str:
        """The report as one line, as the log shows it.

        Example: ``signal SIGTERM, clean, 1.52 s: draining 0.00 s, closing 1.20 s, stopping
        0.31 s; requests drained 3, rejected 1, cancelled 0, cut mid-body 0; streams ended
        at the notice 1; websockets closed 1012x2, cancelled 0; tasks finished 2, cancelled
        1, failed 0, cut short 0, abandoned 0``. A shutdown that was not clean says why at
        the end: ``...; not clean: 1 request cancelled at the deadline (answered 503 where
        no response had begun), 1 task failed``.
        """
        found = flaws(self)
        verdict = "NOT clean" if found else "clean"
        head = f"{self.trigger}{', forced' if self.forced else ''}, {verdict}"
        line = _line(head, self.duration, self.phases, tallies(self))
        if found:
            line += "; not clean: " + ", ".join(flaw.text for flaw in found)
        return line

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict, as `/drain` returns and the log line carries; ``summary`` is
        `summary()`, ``reasons`` is `reasons`, and ``not_clean`` counts each of them by
        its name in `REASONS` (what the metrics label them with)."""
        found = flaws(self)
        counts = {flaw.reason: flaw.count for flaw in found}
        return {
            "trigger": self.trigger,
            "forced": self.forced,
            "started_at": self.started_at,
            "duration": _json_seconds(self.duration),
            "clean": not found,
            "not_clean": {reason: counts.get(reason, 0) for reason in REASONS},
            "reasons": [flaw.text for flaw in found],
            "phases": [phase.to_dict() for phase in self.phases],
            "requests": {
                "drained": self.requests_drained_count,
                "rejected": self.requests_rejected_count,
                "cancelled": self.requests_cancelled_count,
                "cut": self.requests_cut_count,
            },
            "requests_cut": list(self.requests_cut),
            "streams_ended": self.streams_ended_count,
            "websockets_closed": _codes(self.websockets_closed),
            "websockets_cancelled": self.websockets_cancelled_count,
            "websockets_unclosed": self.websockets_unclosed_count,
            "tasks": {
                "finished": self.tasks_finished_count,
                "cancelled": self.tasks_cancelled_count,
                "failed": self.tasks_failed_count,
                "cut_short": len(self.cut_short),
                "abandoned": len(self.abandoned),
            },
            "cut_short": list(self.cut_short),
            "abandoned": [task.to_dict() for task in self.abandoned],
            "connections_ended": list(self.connections_ended),
            "ended_by_watchdog": self.ended_by_watchdog,
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
                ("cut mid-body", report.requests_cut_count),
            ),
        ),
        Tally("streams", _counted(("ended at the notice", report.streams_ended_count))),
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
    """Log *report* once: each abandoned task with where it is stuck, then the summary."""
    for task in report.abandoned:
        logger.error(
            "abandoned %s %r at the deadline, stuck at %s",
            task.kind,
            task.name,
            task.where,
            extra={"task": task.name, "where": task.where},
        )
    log_summary(report)


def log_summary(report: ShutdownReport) -> None:
    """Log *report*'s one line: INFO when clean, else ERROR (the line says why), with the
    whole report as the record's ``report`` field, for JSON logs."""
    level = logging.INFO if report.clean else logging.ERROR
    logger.log(level, "shutdown report: %s", report.summary(), extra={"report": report.to_dict()})
