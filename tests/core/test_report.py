"""The shutdown report renders itself: its JSON, its one line, and the words of its counts."""

from __future__ import annotations

import pytest

from asgi_supervisor import AbandonedTask, Phase, ShutdownReport
from asgi_supervisor._core.report import ShutdownProgress, format_duration, tallies


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
        "requests drained 3, rejected 1, cancelled 0; websockets closed 1012x2, cancelled 0; "
        "tasks finished 2, cancelled 1, failed 1, cut short 0, abandoned 0"
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
        "rejected 1, cancelled 0; websockets closed 1001x1, 1012x2, cancelled 0; "
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
    assert [group.label for group in groups] == ["requests", "websockets", "tasks"]
    assert stuck.summary().split("; ")[1:] == [group.text() for group in groups]
    assert groups[2].items[-2:] == (("cut short 1", 1), ("abandoned 1", 1))
    assert groups[1].items[0] == ("closed 1012x2", 2)


def test_the_json_keeps_its_keys_and_carries_the_line() -> None:
    """`to_dict` keeps the keys `/drain`, the log and the metrics read, durations as numbers
    rounded to the microsecond, and adds the line as ``summary``."""
    as_dict = report().to_dict()
    assert list(as_dict) == [
        *("trigger", "forced", "started_at", "duration", "clean", "phases", "requests"),
        *("websockets_closed", "websockets_cancelled", "tasks", "cut_short", "abandoned"),
        "summary",
    ]
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
