"""The shutdown report: what it says is clean, and how it is logged, once."""

from __future__ import annotations

import asyncio
import logging

import pytest

from asgi_supervisor import AbandonedTask, Phase, ShutdownReport
from asgi_supervisor._core.report import describe_report, log_report


async def stuck() -> None:
    await asyncio.sleep(3600)  # where the abandoned task is stuck


STUCK_LINE = stuck.__code__.co_firstlineno + 1


def report(**overrides: object) -> ShutdownReport:
    """A report of a shutdown by SIGTERM that drained one request; *overrides* change it."""
    values: dict[str, object] = {
        "trigger": "signal SIGTERM",
        "forced": False,
        "started_at": 1_700_000_000.0,
        "duration": 1.5,
        "phases": (Phase(name="draining", start=0.0, duration=1.5),),
        "requests_drained_count": 1,
        "requests_rejected_count": 0,
        "requests_cancelled_count": 0,
    }
    return ShutdownReport(**{**values, **overrides})  # type: ignore[arg-type]


def test_report_line_is_readable() -> None:
    """Phases with durations, then the counts, in one line."""
    summary = {
        "trigger": "signal SIGTERM",
        "forced": False,
        "duration": 1.5234,
        "clean": False,
        "phases": [
            {"name": "draining", "start": 0.0, "duration": 1.0},
            {"name": "closing", "start": 1.0, "duration": 0.2},
            {"name": "stopping", "start": 1.2, "duration": 0.3234},
        ],
        "requests": {"drained": 3, "rejected": 1, "cancelled": 0},
        "websockets_closed": {"1012": 2},
        "tasks": {"finished": 2, "cancelled": 1, "failed": 1, "cut_short": 0, "abandoned": 0},
    }
    assert describe_report(summary) == (
        "signal SIGTERM, NOT clean, 1.52 s: draining 1.00 s, closing 0.20 s, stopping 0.32 s; "
        "requests drained 3, rejected 1, cancelled 0; websockets closed 1012x2, cancelled 0; "
        "tasks finished 2, cancelled 1, failed 1, cut short 0, abandoned 0"
    )


async def test_an_abandoned_task_is_named_with_where_it_is_stuck() -> None:
    """`AbandonedTask.of` a parked task keeps its identity, the user line it waits at and
    its await chain, and `to_dict` gives them as JSON."""
    task = asyncio.create_task(stuck())
    await asyncio.sleep(0)  # one step: the task parks in `stuck`
    try:
        abandoned = AbandonedTask.of(task, 7, "sync-job", "task")
    finally:
        task.cancel()
        await asyncio.wait({task})
    assert abandoned.where == f"{__file__}:{STUCK_LINE} in stuck"
    assert any("in stuck" in line for line in abandoned.stack)
    assert abandoned.to_dict() == {
        "id": 7,
        "name": "sync-job",
        "kind": "task",
        "where": abandoned.where,
        "stack": list(abandoned.stack),
    }


def test_a_clean_report_is_one_info_line_carrying_the_dict(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Clean: one INFO record, the readable line, with the whole report in ``extra``."""
    caplog.set_level(logging.INFO, logger="asgi_supervisor")
    clean = report()
    log_report(clean)
    (record,) = caplog.records
    assert record.levelno == logging.INFO
    assert record.getMessage() == f"shutdown report: {describe_report(clean.to_dict())}"
    assert record.report == clean.to_dict()  # type: ignore[attr-defined]


def test_what_went_wrong_is_logged_each_on_its_own_then_the_summary_as_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An abandoned task is an ERROR naming it and where it is stuck, a cut cleanup and
    cancelled requests are WARNINGs, and the summary of a report that is not clean is an
    ERROR."""
    caplog.set_level(logging.INFO, logger="asgi_supervisor")
    stuck_task = AbandonedTask(id=3, name="sync-job", kind="task", where="jobs.py:9 in f", stack=())
    log_report(
        report(abandoned=(stuck_task,), cut_short=("worker flush",), requests_cancelled_count=2)
    )
    assert [(r.levelno, r.getMessage()) for r in caplog.records[:3]] == [
        (logging.ERROR, "abandoned task 'sync-job' at the deadline, stuck at jobs.py:9 in f"),
        (logging.WARNING, "cleanup cut short by the second cancel: worker flush"),
        (
            logging.WARNING,
            "2 request(s) cancelled at the deadline (answered 503 where no response had begun)",
        ),
    ]
    summary = caplog.records[3]
    assert summary.levelno == logging.ERROR
    assert summary.getMessage().startswith("shutdown report: signal SIGTERM, NOT clean, ")
    assert len(caplog.records) == 4
