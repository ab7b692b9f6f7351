"""Loop-lag detection on a real uvicorn: the log names the handler that blocks the loop."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.apps import block_loop, line_of
from tests.servers._process import ServerProcess

pytestmark = [pytest.mark.server, pytest.mark.timeout(60)]


def test_the_log_names_the_function_blocking_the_loop(tmp_path: Path) -> None:
    """1. uvicorn with a 0.2 s loop-lag threshold; 2. a request whose handler blocks the loop
    in `time.sleep` for 1 s; 3. the server log names `block_loop` and its file:line while
    the loop is stuck, and again with the duration when it is free."""
    env = {"ASGI_SUPERVISOR_LOOP_LAG_THRESHOLD": "0.2"}
    with ServerProcess("tests.servers.served:app", tmp_path=tmp_path, env=env) as server:
        response = httpx.get(f"{server.base_url}/block", params={"seconds": 1}, timeout=15)
        assert response.text == "unblocked"
        deadline = time.monotonic() + 10
        while "event loop was blocked for" not in server.output():
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.05)
        output = server.output()
    where = f"tests/apps.py:{line_of(block_loop, 'time.sleep(')} in block_loop"
    # Only lines about block_loop: a stall of this shared machine's own names something else.
    lines = [line for line in output.splitlines() if "in block_loop" in line]
    started = [line for line in lines if "event loop blocked for" in line]
    ended = [line for line in lines if "event loop was blocked for" in line]
    assert len(started) == len(ended) == 1, output
    assert where in started[0]
    assert "task 'Task-" in started[0]
    assert where in ended[0]
