"""Zero-downtime proof, short form: rolling restarts behind HAProxy under wrk load.

The long form is ``make proof`` (``bench/rolling_restart.py``, 10 rounds).
"""

from __future__ import annotations

import signal

import pytest

from tests.servers.rig import PLAIN_APP, SUPERVISED_APP, SUPERVISED_ENV, Rig

pytestmark = [pytest.mark.server, pytest.mark.timeout(120)]


def test_supervised_rolling_restarts_lose_nothing() -> None:
    """1. two supervised replicas under steady load; 2. each is restarted in turn, twice;
    3. not one request fails; 4. HAProxy saw each one DOWN before it exited."""
    with Rig(SUPERVISED_APP, SUPERVISED_ENV) as rig:
        load, transitions = rig.rolling_restart(rounds=2)
    assert load.requests > 1000
    assert load.failures == 0, (load.statuses, load.socket_errors)
    assert len(transitions) == 4
    for transition in transitions:
        assert transition.exit_status == -signal.SIGTERM
        assert transition.to_down is not None
        assert transition.to_exit is not None
        assert transition.to_down < transition.to_exit
        assert transition.to_exit < 5 + 1


def test_plain_uvicorn_loses_requests_so_the_harness_can_fail() -> None:
    """The same harness against a plain uvicorn app (no supervisor) counts failures."""
    with Rig(PLAIN_APP) as rig:
        load, _ = rig.rolling_restart(rounds=1)
    assert load.requests > 1000
    assert load.failures > 0
