"""Endless streams end themselves at the closing notice, on a real uvicorn, with real clients.

At the default grace period and cancel timeout, an endless sse-starlette
``EventSourceResponse`` (nothing in the app about shutting down) and a ``StreamingResponse``
wrapped in ``supervisor.until_closing`` end right after the shutdown delay (the default, 0,
or 1 s), not at the deadline: the client sees the chunked body end (curl exits 0, not 18
for a cut transfer), the server exits shortly after, and the report, clean, counts the
stream as ended at the notice.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.servers._process import ServerProcess, events_named, wait_for_event

pytestmark = [pytest.mark.server, pytest.mark.timeout(60)]

APP = "tests.servers.served:app"
DELAY = 1.0


def _env(delay: float) -> dict[str, str]:
    # The defaults for the grace period and the cancel timeout; the shutdown delay is 0 by
    # default outside Kubernetes, and 1 s tells "right after the delay" apart from "at once".
    return {
        "ASGI_SUPERVISOR_GRACE_PERIOD": "25",
        "ASGI_SUPERVISOR_CANCEL_TIMEOUT": "5",
        "ASGI_SUPERVISOR_SHUTDOWN_DELAY": str(delay),
    }


# How long after the delay the stream may take to end, and the server to exit: a tick of
# the stream, the server's own shutdown, on a loaded machine; far below the deadline (25 s).
SOON = 3.0


def _report_line(output: str) -> str:
    (line,) = [line for line in output.splitlines() if "shutdown report: " in line]
    return line


@pytest.mark.parametrize("delay", [0.0, DELAY])
async def test_an_endless_event_stream_ends_cleanly_right_after_the_delay(
    tmp_path: Path, delay: float
) -> None:
    """1. curl follows the endless /events stream; 2. SIGTERM; 3. right after the delay the
    stream ends, curl exiting 0 with the ticks it got; 4. the server exits soon after; 5. the
    report is clean and counts one stream ended at the notice."""
    with ServerProcess(APP, tmp_path=tmp_path, env=_env(delay)) as server:
        curl = await asyncio.create_subprocess_exec(
            *("curl", "-sS", "-N", "--max-time", "30", f"{server.base_url}/events"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await wait_for_event(server, "events started")
            sent = server.signal(signal.SIGTERM)
            async with asyncio.timeout(delay + SOON):
                out, err = await curl.communicate()
        finally:
            if curl.returncode is None:
                curl.kill()
                await curl.wait()
        server.wait_exit(timeout=delay + SOON)
        exited = time.monotonic() - sent
        output = server.output()
    assert curl.returncode == 0, err.decode()
    assert b"data: tick 0\r\n\r\n" in out
    (ended,) = events_named(server, "events ended")
    assert delay <= ended - sent < delay + SOON
    assert exited < delay + SOON, output
    line = _report_line(output)
    assert ", clean, " in line, line
    assert "cut mid-body 0; streams ended at the notice 1;" in line


async def test_a_stream_through_until_closing_ends_cleanly_right_after_the_delay(
    tmp_path: Path,
) -> None:
    """1. httpx streams the endless /until-closing response; 2. SIGTERM; 3. right after the
    delay the iteration ends with the body complete (no read error); 4. the server exits
    soon after; 5. the report is clean and counts one stream ended at the notice."""
    with ServerProcess(APP, tmp_path=tmp_path, env=_env(DELAY)) as server:
        lines: list[str] = []
        async with (
            httpx.AsyncClient(timeout=DELAY + SOON) as client,
            client.stream("GET", f"{server.base_url}/until-closing") as response,
        ):
            sent = 0.0
            async for text in response.aiter_lines():  # ends at the body's end; a cut raises
                lines.append(text)
                if len(lines) == 1:
                    sent = server.signal(signal.SIGTERM)
        server.wait_exit(timeout=DELAY + SOON)
        exited = time.monotonic() - sent
        output = server.output()
    assert lines[0] == "tick 0"
    assert lines[-1].startswith("tick "), lines
    (ended,) = events_named(server, "until-closing ended")
    assert DELAY <= ended - sent < DELAY + SOON
    assert exited < DELAY + SOON, output
    line = _report_line(output)
    assert ", clean, " in line, line
    assert "cut mid-body 0; streams ended at the notice 1;" in line
