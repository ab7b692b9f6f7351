"""Faults on a real uvicorn: each one still ends the process in time, and says what it left.

In every case the process must exit within grace_period + 1 s of the first signal, the
report or the log must name what was abandoned, and nothing else may be lost: the
cooperative worker still records "worker stopped", and the app's own shutdown still runs.
"""

from __future__ import annotations

import contextlib
import re
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.servers._process import ServerProcess, events_named

pytestmark = [pytest.mark.server, pytest.mark.timeout(60)]

GRACE = 3.0
ENV = {"ASGI_SUPERVISOR_GRACE_PERIOD": str(GRACE), "ASGI_SUPERVISOR_CANCEL_TIMEOUT": "1.5"}


def faulty(tmp_path: Path, faults: str) -> ServerProcess:
    """The test app under uvicorn with *faults* switched on."""
    return ServerProcess(
        "tests.servers.served:app", tmp_path=tmp_path, env={**ENV, "TEST_FAULTS": faults}
    )


def stop(server: ServerProcess, *signals: int) -> tuple[int, float]:
    """Send *signals* (0.2 s apart); return the exit status and the time from the first."""
    sent = server.signal(signals[0])
    for sig in signals[1:]:
        time.sleep(0.2)
        server.signal(sig)
    status = server.wait_exit(timeout=GRACE + 5)
    return status, time.monotonic() - sent


def run_fault(
    tmp_path: Path, faults: str, *signals: int, slow_request: bool = False
) -> tuple[int, float, str, list[str]]:
    """Start the app with *faults*, optionally leave a 30 s request in flight, send
    *signals*; return the exit status, the time it took, the output and the events."""
    with faulty(tmp_path, faults) as server:
        if slow_request:
            with contextlib.suppress(httpx.ReadTimeout):
                httpx.get(f"{server.base_url}/slow", params={"seconds": 30}, timeout=0.3)
        status, took = stop(server, *signals)
        return status, took, server.output(), [event for _, event in server.events()]


def test_worker_swallowing_cancel_is_abandoned_and_named(tmp_path: Path) -> None:
    """1. a worker swallows every CancelledError; 2. SIGTERM; 3. it is cancelled twice,
    abandoned and named with its file:line; 4. the rest stops normally, in time."""
    status, took, output, events = run_fault(tmp_path, "swallow", signal.SIGTERM)
    assert status == -signal.SIGTERM
    assert took < GRACE + 1
    assert events.count("swallowed cancel") == 2
    assert "abandoned worker 'swallows-cancel' at the deadline, stuck at" in output
    assert "tests/apps.py:" in output.split("abandoned worker 'swallows-cancel'")[1].splitlines()[0]
    assert events.index("worker stopped") < events.index("app shutdown")


def test_handler_blocking_the_loop_is_ended_by_the_watchdog(tmp_path: Path) -> None:
    """1. a handler blocks the event loop in time.sleep; 2. SIGTERM (the loop cannot hear
    it); 3. the watchdog logs the stacks and exits 70 within grace + 1 s."""
    with faulty(tmp_path, "") as server:
        with contextlib.suppress(httpx.ReadTimeout):
            httpx.get(f"{server.base_url}/block", params={"seconds": 30}, timeout=0.5)
        assert events_named(server, "blocking the loop")
        status, took = stop(server, signal.SIGTERM)
        output = server.output()
    assert status == 70
    assert took < GRACE + 1
    assert "asgi-supervisor watchdog: the shutdown deadline has passed" in output
    # Loop-lag detection names block_loop too: look in the watchdog's own dump only.
    dump = output.split("asgi-supervisor watchdog: the shutdown deadline has passed")[1]
    assert "in block_loop" in dump
    assert "Thread MainThread:" in dump


def test_cleanup_that_raises_is_logged_and_the_rest_stops(tmp_path: Path) -> None:
    """1. a worker's cleanup raises; 2. SIGTERM; 3. the failure is counted in the report;
    4. the other worker and the app's shutdown still run."""
    status, took, output, events = run_fault(tmp_path, "cleanup_raises", signal.SIGTERM)
    assert status == -signal.SIGTERM
    assert took < GRACE + 1
    assert "cleanup raising" in events
    assert re.search(r"shutdown report: .* tasks finished \d+, cancelled \d+, failed 1", output)
    assert "worker stopped" in events
    assert "app shutdown" in events


def test_crash_looping_worker_gives_up_and_shutdown_is_clean(tmp_path: Path) -> None:
    """1. a worker crashes at once every time; 2. it is restarted with backoff, then given
    up after 3 restarts; 3. SIGTERM still stops everything in time."""
    with faulty(tmp_path, "crash_loop") as server:
        deadline = time.monotonic() + 10
        while "worker 'crash-loop' gave up" not in server.output():
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.05)
        status, took = stop(server, signal.SIGTERM)
        output = server.output()
        events = [event for _, event in server.events()]
    assert output.count("worker 'crash-loop' restarts in") == 3
    assert "more than 3 restarts in 60 s" in output
    assert status == -signal.SIGTERM
    assert took < GRACE + 1
    assert events.index("worker stopped") < events.index("app shutdown")


def test_sigint_twice_forces_but_still_stops_everything(tmp_path: Path) -> None:
    """1. a slow request and a stubborn worker; 2. SIGINT twice; 3. forced: exit within
    cancel_timeout + 1 s of the second; 4. the worker's cleanup and the app's own shutdown
    still ran (uvicorn alone skips lifespan shutdown on a second SIGINT)."""
    status, took, output, events = run_fault(
        tmp_path, "swallow", signal.SIGINT, signal.SIGINT, slow_request=True
    )
    assert took < 0.2 + 1.5 + 1
    # asyncio.run waits forever for the abandoned task after uvicorn returns: the watchdog
    # ends the process, at the forced deadline.
    assert status == 70
    assert "asgi-supervisor watchdog" in output
    assert "forced: skipping the remaining waits" in output
    assert "abandoned worker 'swallows-cancel'" in output
    assert events.index("worker stopped") < events.index("app shutdown")


def test_sigint_twice_without_stragglers_exits_cleanly(tmp_path: Path) -> None:
    """1. a slow request is in flight; 2. SIGINT twice; 3. the request is cancelled, the
    app's own shutdown runs, and the process exits by itself well before the grace period."""
    status, took, output, events = run_fault(
        tmp_path, "", signal.SIGINT, signal.SIGINT, slow_request=True
    )
    assert took < 0.2 + 1.5 + 1
    assert status != 70
    assert "asgi-supervisor watchdog" not in output
    assert re.search(r"shutdown report: .* requests drained \d+, rejected \d+, cancelled 1", output)
    assert events.index("worker stopped") < events.index("app shutdown")
