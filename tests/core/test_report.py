"""The shutdown report renders itself: its JSON, its one line, and the words of its counts."""

from __future__ import annotations

import asyncio
import logging

import pytest

from asgi_supervisor import AbandonedTask, Phase, ShutdownReport
from asgi_supervisor._core.report import ShutdownProgress, format_duration, log_report, tallies
from asgi_supervisor._core.verdict import REASONS


async def stuck() -> None:
    await asyncio.sleep(3600)  # where the abandoned task is stuck


STUCK_LINE = stuck.__code__.co_firstlineno + 1


def report(**changes: object) -> ShutdownReport:
    """A shutdown that drained three requests and closed two websockets, one task failing."""
    fields: dict[str, object] = {
        "trigger": "signal SIGTERM",
        "forced": False,
        "started_at": 1_700_000_000.0,
        "duration": 1.5234,
        "phases": (
            Phase(name="draining", start=0.0, duration=1.0),
            Phase(name="closing", start=1.0, duration=0.2),
            Phase(name="stopping", start=1.2, duration=0.3234),
        ),
        "requests_drained_count": 3,
        "requests_rejected_count": 1,
        "requests_cancelled_count": 0,
        "websockets_closed": {1012: 2},
        "tasks_finished_count": 2,
        "tasks_cancelled_count": 1,
        "tasks_failed_count": 1,
        **changes,
    }
    return ShutdownReport(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0, "0.00 s"),
        (0.4249, "0.42 s"),
        (9.994, "9.99 s"),
        (9.996, "10.0 s"),
        (12.34, "12.3 s"),
        (59.94, "59.9 s"),
        (59.96, "1 min 00 s"),
        (75.0, "1 min 15 s"),
        (245.4, "4 min 05 s"),
        (3599.6, "1 h 00 min"),
        (7620.0, "2 h 07 min"),
    ],
)
def test_a_duration_reads_as_people_read_one(seconds: float, text: str) -> None:
    """Two decimals under 10 s, one under a minute, then minutes and seconds, then hours
    and minutes; a value on a boundary rounds into the next form, never to "60"."""
    assert format_duration(seconds) == text


def test_the_report_line_names_the_trigger_verdict_phases_and_every_count() -> None:
    """One line: trigger, verdict and duration, each phase, then the counts in words."""
    assert report().summary() == (
        "signal SIGTERM, NOT clean, 1.52 s: draining 1.00 s, closing 0.20 s, stopping 0.32 s; "
        "requests drained 3, rejected 1, cancelled 0, cut mid-body 0; streams ended at the "
        "notice 0; websockets closed 1012x2, cancelled 0; tasks finished 2, cancelled 1, "
        "failed 1, cut short 0, abandoned 0; not clean: 1 task failed"
    )


def test_the_line_writes_long_durations_as_the_page_does() -> None:
    """A phase of 75 s is "1 min 15 s" in the line, as on the page (the line said
    "75.00 s" and the page's legend "75.0 s" before there was one way)."""
    long = report(
        duration=80.0,
        phases=(Phase(name="draining", start=0.0, duration=75.0),),
        forced=True,
        websockets_closed={1001: 1, 1012: 2},
        tasks_failed_count=0,
    )
    assert long.summary().startswith(
        "signal SIGTERM, forced, clean, 1 min 20 s: draining 1 min 15 s; requests drained 3, "
        "rejected 1, cancelled 0, cut mid-body 0; streams ended at the notice 0; websockets "
        "closed 1001x1, 1012x2, cancelled 0; "
    )


def test_a_report_without_phases_or_closes_says_so() -> None:
    """No phase and no websocket: the line says "no phases" and "closed 0"."""
    line = report(phases=(), websockets_closed={}).summary()
    assert ": no phases; " in line
    assert "websockets closed 0, cancelled 0" in line


def test_the_tallies_are_the_words_of_the_line() -> None:
    """Each tally is one part of the line, and keeps its counts for the page."""
    abandoned = AbandonedTask(id=1, name="stuck", kind="task", where=None, stack=())
    stuck = report(abandoned=(abandoned,), cut_short=("slow-cleanup",))
    groups = tallies(stuck)
    assert [group.label for group in groups] == ["requests", "streams", "websockets", "tasks"]
    line = stuck.summary().partition("; not clean: ")[0]
    assert line.split("; ")[1:] == [group.text() for group in groups]
    assert groups[3].items[-2:] == (("cut short 1", 1), ("abandoned 1", 1))
    assert groups[2].items[0] == ("closed 1012x2", 2)


def test_the_json_keeps_its_keys_and_carries_the_line() -> None:
    """`to_dict` keeps the keys `/drain`, the log and the metrics read, durations as numbers
    rounded to the microsecond, and adds the line as ``summary``."""
    as_dict = report().to_dict()
    assert list(as_dict) == [
        *("trigger", "forced", "started_at", "duration", "clean", "not_clean", "reasons"),
        *("phases", "requests", "requests_cut", "streams_ended", "websockets_closed"),
        *("websockets_cancelled", "websockets_unclosed", "tasks", "cut_short", "abandoned"),
        *("connections_ended", "ended_by_watchdog", "summary"),
    ]
    assert as_dict["clean"] is False
    assert as_dict["not_clean"] == {reason: reason == "tasks_failed" for reason in REASONS}
    assert as_dict["reasons"] == ["1 task failed"]
    assert as_dict["requests"] == {"drained": 3, "rejected": 1, "cancelled": 0, "cut": 0}
    assert as_dict["duration"] == 1.5234
    assert as_dict["phases"] == [
        {"name": "draining", "start": 0.0, "duration": 1.0},
        {"name": "closing", "start": 1.0, "duration": 0.2},
        {"name": "stopping", "start": 1.2, "duration": 0.3234},
    ]
    assert as_dict["websockets_closed"] == {"1012": 2}
    assert as_dict["summary"] == report().summary()


def test_a_drain_under_way_renders_the_same_way() -> None:
    """The progress has the keys `/drain` answered before, and a line written like the
    report's, saying it is under way and how many requests are in flight."""
    progress = ShutdownProgress(
        trigger="drain endpoint",
        forced=False,
        started_at=1_700_000_000.0,
        elapsed=12.3456789,
        phases=(Phase(name="draining", start=0.0, duration=12.3456789),),
        requests_drained_count=1,
        requests_rejected_count=0,
        requests_in_flight_count=2,
        websockets_closed={1012: 1},
    )
    as_dict = progress.to_dict()
    assert as_dict == {
        "trigger": "drain endpoint",
        "forced": False,
        "started_at": 1_700_000_000.0,
        "elapsed": 12.345679,
        "phases": [{"name": "draining", "start": 0.0, "duration": 12.345679}],
        "requests": {"drained": 1, "rejected": 0, "in_flight": 2},
        "websockets_closed": {"1012": 1},
        "summary": "drain endpoint, under way, 12.3 s: draining 12.3 s; requests drained 1, "
        "rejected 0, in flight 2; websockets closed 1012x1",
    }


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
    clean = report(tasks_failed_count=0)
    log_report(clean)
    (record,) = caplog.records
    assert record.levelno == logging.INFO
    assert record.getMessage() == f"shutdown report: {clean.summary()}"
    assert record.report == clean.to_dict()  # type: ignore[attr-defined]


def test_an_abandoned_task_is_logged_where_it_is_stuck_then_the_summary_as_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An abandoned task is an ERROR naming it and where it is stuck; the rest of what went
    wrong is said once, in the summary of a report that is not clean, itself an ERROR."""
    caplog.set_level(logging.INFO, logger="asgi_supervisor")
    stuck_task = AbandonedTask(id=3, name="sync-job", kind="task", where="jobs.py:9 in f", stack=())
    log_report(
        report(abandoned=(stuck_task,), cut_short=("worker flush",), requests_cancelled_count=2)
    )
    first, summary = caplog.records
    assert (first.levelno, first.getMessage()) == (
        logging.ERROR,
        "abandoned task 'sync-job' at the deadline, stuck at jobs.py:9 in f",
    )
    assert summary.levelno == logging.ERROR
    message = summary.getMessage()
    assert message.startswith("shutdown report: signal SIGTERM, NOT clean, ")
    assert message.endswith(
        "; not clean: 2 requests cancelled at the deadline (answered 503 where no response "
        "had begun), 1 task failed, 1 task had its cleanup cut short by the second cancel "
        "(worker flush), 1 task abandoned at the deadline (sync-job)"
    )


CLEAN = {"tasks_failed_count": 0}


@pytest.mark.parametrize(
    ("changes", "reason", "words"),
    [
        (
            {"requests_cancelled_count": 1},
            "requests_cancelled",
            "1 request cancelled at the deadline (answered 503 where no response had begun)",
        ),
        (
            {"requests_cut_count": 3, "requests_cut": ("GET /a from 10.0.0.1:5", "GET /b")},
            "responses_cut",
            "3 responses cut mid-body at the deadline (GET /a from 10.0.0.1:5, GET /b and 1 more)",
        ),
        (
            {"connections_ended": ("127.0.0.1:5000",)},
            "connections_ended",
            "1 connection ended with data its client did not read (127.0.0.1:5000)",
        ),
        (
            {"websockets_unclosed_count": 2},
            "websockets_unclosed",
            "2 websockets cancelled before their close frame went out",
        ),
        ({"tasks_failed_count": 2}, "tasks_failed", "2 tasks failed"),
        (
            {"cut_short": ("flush",)},
            "tasks_cut_short",
            "1 task had its cleanup cut short by the second cancel (flush)",
        ),
        (
            {"abandoned": (AbandonedTask(id=1, name="job", kind="task", where=None, stack=()),)},
            "tasks_abandoned",
            "1 task abandoned at the deadline (job)",
        ),
        ({"ended_by_watchdog": True}, "watchdog", "ended by the watchdog"),
    ],
    ids=lambda value: value if isinstance(value, str) and value in REASONS else "",
)
def test_each_way_a_shutdown_is_not_clean_is_named(
    changes: dict[str, object], reason: str, words: str
) -> None:
    """Any one of these makes the report not clean, and it is named in words (the reasons,
    the end of the line) and by its reason, counted, in the JSON the metrics read."""
    flawed = report(**{**CLEAN, **changes})
    assert not flawed.clean
    assert flawed.reasons == (words,)
    assert flawed.summary().endswith(f"; not clean: {words}")
    counts = flawed.to_dict()["not_clean"]
    assert isinstance(counts, dict)
    assert [name for name, count in counts.items() if count] == [reason]


def test_what_every_client_got_whole_is_clean() -> None:
    """Rejections while closing, streams ended at the notice, websocket handlers cancelled
    after their close frame went out, tasks cancelled, and a forced shutdown are clean."""
    fine = report(
        **CLEAN,
        forced=True,
        requests_rejected_count=9,
        streams_ended_count=2,
        websockets_cancelled_count=1,
        tasks_cancelled_count=4,
    )
    assert fine.clean
    assert fine.reasons == ()
    assert "not clean" not in fine.summary()
    assert "streams ended at the notice 2" in fine.summary()
