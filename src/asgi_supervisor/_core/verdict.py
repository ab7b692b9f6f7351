"""Whether a shutdown was clean, and if not, every way it was not.

A shutdown is *clean* only when every client got a whole answer or its close code, no task
was abandoned, failed or had its cleanup cut short, and the process did not end by the
watchdog. Each way it was not is a `Flaw`, named by one of `REASONS` (the label of the
``asgi_supervisor_last_shutdown_not_clean`` metric) and told in words (the log line):

=====================  ===================================================================
reason                 what happened
=====================  ===================================================================
requests_cancelled     a request still running at the deadline was cancelled: its work
                       was cut. Before its response began its client got 503 with
                       ``Retry-After`` (a whole answer, but not to what it asked); after its
                       response was complete, what it did next (a background task) was cut.
responses_cut          a response cut mid-body at the deadline: its client got part of it.
connections_ended      a connection still holding data its client did not read, ended after
                       the stopping phase so that the server's own shutdown could run.
websockets_unclosed    a websocket whose close frame had not gone out when the stopping
                       phase cancelled its close.
tasks_failed           a worker or spawned task ended with an error while shutting down.
tasks_cut_short        a task still running at the second cancel: its cleanup was cut.
tasks_abandoned        a task still running at the deadline, left behind.
watchdog               the process was ended by the watchdog, not by itself.
=====================  ===================================================================

Clean all the same: requests answered 503 while closing (refused before any work began, told
when to come back), websocket handshakes refused while closing, long-lived responses that
ended themselves at the closing notice (the client saw the body end), and workers, tasks and
websocket handlers cancelled in the stopping phase that finished their cleanup (a websocket's
client had its close code first). A forced shutdown is judged the same way: by what it cut.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .report import ShutdownReport

__all__ = ["REASONS", "Flaw", "flaws"]

REASONS: tuple[str, ...] = (
    "requests_cancelled",
    "responses_cut",
    "connections_ended",
    "websockets_unclosed",
    "tasks_failed",
    "tasks_cut_short",
    "tasks_abandoned",
    "watchdog",
)


# A line names at most this many requests, connections or tasks per reason; the report's
# fields keep them all (the requests up to what the request count keeps).
_NAMES_SHOWN = 5


@dataclass(frozen=True, slots=True)
class Flaw:
    """One way a shutdown was not clean: its `REASONS` name, how many, and the words."""

    reason: str
    count: int
    text: str


def flaws(report: ShutdownReport) -> tuple[Flaw, ...]:
    """Every way *report*'s shutdown was not clean, in the order of `REASONS`; empty when
    it was clean."""
    found = [
        _flaw(
            "requests_cancelled",
            report.requests_cancelled_count,
            "{} cancelled at the deadline (answered 503 where no response had begun)",
            "request",
        ),
        _flaw(
            "responses_cut",
            report.requests_cut_count,
            "{} cut mid-body at the deadline",
            "response",
            report.requests_cut,
        ),
        _flaw(
            "connections_ended",
            len(report.connections_ended),
            "{} ended with data {} client did not read",
            "connection",
            report.connections_ended,
        ),
        _flaw(
            "websockets_unclosed",
            report.websockets_unclosed_count,
            "{} cancelled before {} close frame went out",
            "websocket",
        ),
        _flaw("tasks_failed", report.tasks_failed_count, "{} failed", "task"),
        _flaw(
            "tasks_cut_short",
            len(report.cut_short),
            "{} had {} cleanup cut short by the second cancel",
            "task",
            report.cut_short,
        ),
        _flaw(
            "tasks_abandoned",
            len(report.abandoned),
            "{} abandoned at the deadline",
            "task",
            tuple(task.name for task in report.abandoned),
        ),
    ]
    if report.ended_by_watchdog:
        found.append(Flaw("watchdog", 1, "ended by the watchdog"))
    return tuple(flaw for flaw in found if flaw is not None)


def _flaw(reason: str, count: int, words: str, noun: str, names: Sequence[str] = ()) -> Flaw | None:
    # The first "{}" is the counted noun, a second "its" or "their": "2 tasks had their".
    if not count:
        return None
    counted = f"{count} {noun}" if count == 1 else f"{count} {noun}s"
    text = words.format(counted, "its" if count == 1 else "their")
    if names:
        shown = names[:_NAMES_SHOWN]
        more = count - len(shown)
        listed = ", ".join(shown) + (f" and {more} more" if more > 0 else "")
        text = f"{text} ({listed})"
    return Flaw(reason, count, text)
