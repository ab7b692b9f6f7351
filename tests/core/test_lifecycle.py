"""The lifecycle only moves forwards, and precomputes the flags the middleware reads."""

from __future__ import annotations

from asgi_supervisor import State
from asgi_supervisor._core.lifecycle import Lifecycle


def test_forward_moves_and_flags() -> None:
    """Each state sets `draining` and `accepting` as the state table says."""
    lifecycle = Lifecycle()
    expected = {
        State.STARTING: (True, False),
        State.READY: (True, False),
        State.DRAINING: (True, True),
        State.CLOSING: (False, True),
        State.STOPPING: (False, True),
        State.STOPPED: (False, True),
    }
    assert (lifecycle.accepting, lifecycle.draining) == expected[State.STARTING]
    for state in (State.READY, State.DRAINING, State.CLOSING, State.STOPPING, State.STOPPED):
        assert lifecycle.advance(state)
        assert lifecycle.state is state
        assert (lifecycle.accepting, lifecycle.draining) == expected[state]
        assert lifecycle.entered(state) is not None


def test_never_moves_backwards_or_repeats() -> None:
    """A second trigger or an old state cannot restart the sequence."""
    lifecycle = Lifecycle()
    assert lifecycle.advance(State.DRAINING)
    assert not lifecycle.advance(State.DRAINING)
    assert not lifecycle.advance(State.READY)
    assert lifecycle.state is State.DRAINING
    assert lifecycle.entered(State.READY) is None


def test_failed_is_terminal() -> None:
    """After a failed startup nothing moves and nothing is accepted."""
    lifecycle = Lifecycle()
    lifecycle.fail()
    assert lifecycle.state is State.FAILED
    assert not lifecycle.accepting
    assert not lifecycle.advance(State.STOPPED)


def test_state_values_are_the_design_names() -> None:
    """The enum values are the lower-case names used in JSON, logs and errors."""
    assert [s.value for s in State] == [
        "starting",
        "ready",
        "draining",
        "closing",
        "stopping",
        "stopped",
        "failed",
    ]
    assert repr(State.READY) == "<State ready>"
