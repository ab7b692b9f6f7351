"""What `/metrics` reports, as plain data: the metric families and one process's snapshot.

Everything is read from the supervisor when a scrape (or, in a process group, a sibling's
scrape) asks for it, never on the per-request path. Nothing here imports
``prometheus_client``: it is an optional extra, and a snapshot is also what the workers of a
process group send each other over their listener folder's channel (see `metrics_group`).
"""

from __future__ import annotations

import enum
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from asgi_supervisor._core.lifecycle import State
from asgi_supervisor._core.registry import Kind
from asgi_supervisor._core.worker_state import WorkerState

if TYPE_CHECKING:
    from asgi_supervisor._supervisor.supervisor import Supervisor

__all__ = ["FAMILIES", "Family", "Sample", "Snapshot", "take_snapshot"]

PREFIX = "asgi_supervisor_"


class Type(enum.Enum):
    """The Prometheus metric types this exporter uses."""

    GAUGE = "gauge"
    COUNTER = "counter"


@dataclass(frozen=True, slots=True)
class Family:
    """One metric family: its full name, type, help text and label names."""

    name: str
    type: Type
    help: str
    labels: tuple[str, ...] = ()


def _family(name: str, type: Type, help: str, *labels: str) -> Family:
    return Family(PREFIX + name, type, help, labels)


_G, _C = Type.GAUGE, Type.COUNTER
FAMILIES: tuple[Family, ...] = (
    _family("state", _G, "1 for the supervisor's current state, 0 for the others.", "state"),
    _family("tasks", _G, "Tracked tasks alive now, by kind.", "kind"),
    _family(
        "deadline_remaining_seconds",
        _G,
        "Seconds left before the shutdown deadline, once a shutdown began.",
    ),
    _family("worker_restarts_total", _C, "Restarts of each worker since startup.", "worker"),
    _family("worker_give_ups_total", _C, "1 once a worker has given up restarting.", "worker"),
    _family(
        "worker_state",
        _G,
        "1 for each worker's current state, 0 for the others.",
        "worker",
        "state",
    ),
    _family("check_success", _G, "1 when the readiness check passed, else 0.", "check", "critical"),
    _family("check_duration_seconds", _G, "How long the readiness check's last run took.", "check"),
    _family(
        "last_shutdown_info", _G, "1, labelled with what triggered the last shutdown.", "trigger"
    ),
    _family("last_shutdown_timestamp_seconds", _G, "Unix time the last shutdown was triggered."),
    _family("last_shutdown_duration_seconds", _G, "How long the last shutdown took in all."),
    _family("last_shutdown_forced", _G, "1 when a second signal forced the last shutdown."),
    _family(
        "last_shutdown_clean",
        _G,
        "1 when every client of the last shutdown got a whole answer or its close code, no "
        "task was abandoned, failed or cut short, and the watchdog did not end it.",
    ),
    _family(
        "last_shutdown_not_clean",
        _G,
        "How many times each reason made the last shutdown not clean (0 for the others).",
        "reason",
    ),
    _family(
        "last_shutdown_phase_start_seconds",
        _G,
        "When each phase of the last shutdown began, in seconds after its trigger.",
        "phase",
    ),
    _family(
        "last_shutdown_phase_duration_seconds",
        _G,
        "How long each phase of the last shutdown took.",
        "phase",
    ),
    _family(
        "last_shutdown_requests", _G, "HTTP requests of the last shutdown, by outcome.", "outcome"
    ),
    _family(
        "last_shutdown_websockets_closed",
        _G,
        "Websockets the last shutdown closed, by close code.",
        "code",
    ),
    _family(
        "last_shutdown_streams_ended",
        _G,
        "Long-lived responses that ended themselves at the last shutdown's closing notice.",
    ),
    _family("last_shutdown_tasks", _G, "Tasks the last shutdown stopped, by outcome.", "outcome"),
    _family(
        "group_answered",
        _G,
        "1 when the worker process answered this scrape in time, 0 when it did not "
        "(process groups only).",
    ),
)

# `Supervisor.counts()` keys, by the kind they count.
_COUNT_KEYS = {
    Kind.WORKER: "workers",
    Kind.TASK: "tasks",
    Kind.WEBSOCKET: "websockets",
    Kind.REQUEST: "requests",
}

Sample = tuple[str, tuple[str, ...], float]
"""A family's full name, its label values in the family's order, and the value."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    """Every sample of one process at one moment (``taken_at`` is Unix time)."""

    pid: int
    taken_at: float
    samples: tuple[Sample, ...]

    def to_dict(self) -> dict[str, Any]:
        """What a process group's workers send each other, compact (one datagram holds a
        large app's): samples grouped by family, names without `PREFIX`, whole numbers as
        integers."""
        families: dict[str, list[list[str | float]]] = {}
        cut = len(PREFIX)
        for name, labels, value in self.samples:
            number = int(value) if value.is_integer() else value
            families.setdefault(name[cut:], []).append([*labels, number])
        return {"pid": self.pid, "taken_at": self.taken_at, "families": families}

    @classmethod
    def from_dict(cls, data: Any) -> Snapshot:
        """Parse `to_dict`'s output.

        Raises:
            ValueError: *data* is not such a snapshot.
        """
        try:
            samples = tuple(
                (PREFIX + str(name), tuple(str(label) for label in labels), float(value))
                for name, rows in data["families"].items()
                for *labels, value in rows
            )
            return cls(pid=int(data["pid"]), taken_at=float(data["taken_at"]), samples=samples)
        except (AttributeError, TypeError, KeyError, ValueError) as exc:
            raise ValueError(f"Not a metrics snapshot: {exc!r}") from None


async def take_snapshot(supervisor: Supervisor) -> Snapshot:
    """Read every metric from *supervisor* now.

    Runs the readiness checks, or reuses their cached results, as ``/health`` does: bounded
    by each check's timeout. Cancelling it does not cancel a check run other callers share.
    """
    checks = await supervisor.check_results()
    samples: list[Sample] = []
    add = samples.append
    current = supervisor.state
    for state in State:
        add((PREFIX + "state", (state.value,), float(state is current)))
    counts = supervisor.counts()
    for kind, key in _COUNT_KEYS.items():
        add((PREFIX + "tasks", (kind.value,), float(counts[key])))
    remaining = supervisor.deadline_remaining()
    if remaining is not None:
        add((PREFIX + "deadline_remaining_seconds", (), remaining))
    for worker in supervisor.workers():
        name = worker.name
        add((PREFIX + "worker_restarts_total", (name,), float(worker.restarts)))
        add((PREFIX + "worker_give_ups_total", (name,), float(worker.state is WorkerState.FAILED)))
        for worker_state in WorkerState:
            shown = float(worker.state is worker_state)
            add((PREFIX + "worker_state", (name, worker_state.value), shown))
    for check in checks:
        add((PREFIX + "check_success", (check.name, _bool(check.critical)), float(check.ok)))
        add((PREFIX + "check_duration_seconds", (check.name,), check.duration))
    if supervisor.last_report is not None:
        samples.extend(_report_samples(supervisor.last_report.to_dict()))
    return Snapshot(pid=os.getpid(), taken_at=time.time(), samples=tuple(samples))


def _report_samples(report: dict[str, Any]) -> list[Sample]:
    # From `to_dict()`, not the report's attributes: keys the report gains later (such as
    # the tasks' "cut_short") show up here without a change, and missing ones are skipped.
    samples: list[Sample] = [
        (PREFIX + "last_shutdown_info", (str(report["trigger"]),), 1.0),
        (PREFIX + "last_shutdown_timestamp_seconds", (), float(report["started_at"])),
        (PREFIX + "last_shutdown_duration_seconds", (), float(report["duration"])),
        (PREFIX + "last_shutdown_forced", (), float(bool(report["forced"]))),
        (PREFIX + "last_shutdown_clean", (), float(bool(report["clean"]))),
        (PREFIX + "last_shutdown_streams_ended", (), float(report.get("streams_ended", 0))),
    ]
    for phase in report["phases"]:
        name = str(phase["name"])
        samples.append((PREFIX + "last_shutdown_phase_start_seconds", (name,), phase["start"]))
        samples.append(
            (PREFIX + "last_shutdown_phase_duration_seconds", (name,), phase["duration"])
        )
    for family, key in (
        ("last_shutdown_requests", "requests"),
        ("last_shutdown_websockets_closed", "websockets_closed"),
        ("last_shutdown_tasks", "tasks"),
        ("last_shutdown_not_clean", "not_clean"),
    ):
        for label, count in report.get(key, {}).items():
            samples.append((PREFIX + family, (str(label),), float(count)))
    return samples


def _bool(value: bool) -> str:
    return "true" if value else "false"
