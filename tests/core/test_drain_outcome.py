"""The one rule for "drained", and a process's drain outcome."""

from __future__ import annotations

import os

import pytest

from asgi_supervisor._core.drain_outcome import drain_outcome, is_drained

IDLE = {"requests": 0, "websockets": 0, "tasks": 3, "workers": 2}


@pytest.mark.parametrize(
    ("draining", "live", "drained"),
    [
        (False, {}, False),  # nothing in flight, but no drain has begun
        (True, {}, True),  # tasks and workers are left for the stopping phase
        (True, {"requests": 1}, False),
        (True, {"websockets": 1}, False),
    ],
)
def test_drained_means_draining_with_no_request_or_websocket_left(
    draining: bool, live: dict[str, int], drained: bool
) -> None:
    """Drained once draining has begun and no request or websocket is left."""
    assert is_drained(draining, {**IDLE, **live}) is drained


def test_the_outcome_names_the_process_and_rounds_the_time_left() -> None:
    """The outcome carries this pid, the state, the rule's answer and the time left."""
    assert drain_outcome("closing", True, IDLE, 1.23456) == {
        "pid": os.getpid(),
        "state": "closing",
        "drained": True,
        "deadline_remaining": 1.235,
    }
    assert drain_outcome("ready", False, IDLE, None)["deadline_remaining"] is None
