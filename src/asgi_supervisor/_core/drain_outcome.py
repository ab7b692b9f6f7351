"""Whether a process has drained, and its drain outcome as `/drain` and its siblings tell it.

The rule is stated once, here: a process has drained when draining has begun and no HTTP
request and no websocket is left. Tasks and workers do not count: they are stopped after
the drain, in the stopping phase. `/drain`'s ``drained``, this process's line in its
``processes``, and the answer a sibling gives to a process group's query all use it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

__all__ = ["drain_outcome", "is_drained"]


def is_drained(draining: bool, counts: Mapping[str, int]) -> bool:
    """True once draining has begun and no request or websocket is left.

    Args:
        draining: whether the first trigger has come (``Lifecycle.draining``).
        counts: the live ``requests`` and ``websockets`` (``Registry.counts``).
    """
    return draining and not counts["requests"] and not counts["websockets"]


def drain_outcome(
    state: str, draining: bool, counts: Mapping[str, int], remaining: float | None
) -> dict[str, Any]:
    """This process's drain outcome: its pid, state, whether it drained, and the seconds left
    before the deadline (None before any trigger), JSON-ready."""
    return {
        "pid": os.getpid(),
        "state": state,
        "drained": is_drained(draining, counts),
        "deadline_remaining": None if remaining is None else round(remaining, 3),
    }
