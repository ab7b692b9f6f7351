"""The lifecycle state machine: one per supervisor, with the time each phase began."""

from __future__ import annotations

import enum
import itertools
import time

from .report import Phase

__all__ = ["Lifecycle", "State"]


class State(enum.Enum):
    """Where the supervisor is in its life.

    Allowed transitions::

        starting -> ready -> draining -> closing -> stopping -> stopped
        starting -> failed                     (the app's startup or a worker failed)
        starting -> draining                   (a trigger arrived before startup finished)
        any state before stopped -> stopped    (never happens out of order; see `Lifecycle`)
    """

    STARTING = "starting"
    READY = "ready"
    DRAINING = "draining"
    CLOSING = "closing"
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"

    def __repr__(self) -> str:
        return f"<State {self.value}>"


_ORDER = {
    State.STARTING: 0,
    State.READY: 1,
    State.DRAINING: 2,
    State.CLOSING: 3,
    State.STOPPING: 4,
    State.STOPPED: 5,
    State.FAILED: 5,
}


class Lifecycle:
    """The current `State` and when each phase began, moving only forwards.

    Only the shutdown sequence and the supervisor's startup move it; the middleware reads
    the flags it precomputes, so the per-request path is an attribute load, not an enum
    comparison chain. One per lifespan.
    """

    __slots__ = ("accepting", "draining", "phases", "state")

    def __init__(self) -> None:
        self.state = State.STARTING
        # True while new requests are served (starting, ready, draining).
        self.accepting = True
        # True from the first trigger on: responses carry `Connection: close`.
        self.draining = False
        self.phases: list[tuple[State, float]] = [(State.STARTING, time.monotonic())]

    def advance(self, state: State) -> bool:
        """Move to *state* if it lies ahead of the current one; return whether it moved."""
        if _ORDER[state] <= _ORDER[self.state] or self.state is State.FAILED:
            return False
        self.state = state
        self.phases.append((state, time.monotonic()))
        self.draining = _ORDER[state] >= _ORDER[State.DRAINING]
        self.accepting = _ORDER[state] < _ORDER[State.CLOSING]
        return True

    def fail(self) -> None:
        """Enter ``failed``: startup did not complete, so nothing is served as ready."""
        self.state = State.FAILED
        self.phases.append((State.FAILED, time.monotonic()))
        self.accepting = False
        self.draining = True

    def shutdown_phases(self) -> tuple[Phase, ...]:
        """The phases from draining on, timed from the trigger (monotonic), up to now."""
        seen = [(s, at) for s, at in self.phases if s not in (State.STARTING, State.READY)]
        if not seen:
            return ()
        since = seen[0][1]
        seen.append((State.STOPPED, time.monotonic()))
        return tuple(
            Phase(name=state.value, start=max(0.0, at - since), duration=max(0.0, end - at))
            for (state, at), (_, end) in itertools.pairwise(seen)
        )

    def entered(self, state: State) -> float | None:
        """The monotonic time *state* was entered, or None if it never was."""
        for seen, at in self.phases:
            if seen is state:
                return at
        return None
