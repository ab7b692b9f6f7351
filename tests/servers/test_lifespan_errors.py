"""Lifespan errors reach uvicorn as they would without the middleware, in every order.

Each app of `tests.apps.LIFESPAN_FAULTS` goes wrong at one point of its lifespan (before its
first ``receive()``, after it, at shutdown); uvicorn serves it alone and in the middleware,
with ``--lifespan on`` and ``--lifespan auto``. What uvicorn does (starts or exits, its
exit status, its lifespan lines, what ``GET /`` answers) is the same both times.
"""

from __future__ import annotations

import dataclasses
import signal
import time
from pathlib import Path

import httpx
import pytest

from tests.apps import LIFESPAN_FAULTS
from tests.servers._process import ServerProcess

pytestmark = [pytest.mark.server, pytest.mark.timeout(60)]

APP = "tests.servers.lifespan_served:app"
# uvicorn's own lines about the lifespan, from uvicorn/lifespan/on.py.
LINES = (
    "Application startup failed. Exiting.",
    "Application startup complete.",
    "ASGI 'lifespan' protocol appears unsupported.",
    "Exception in 'lifespan' protocol",
    "Application shutdown failed. Exiting.",
    "Application shutdown complete.",
)
OURS = "pass app_lifespan=False to SupervisorMiddleware"
# The faults whose app answered its startup (complete or failed): no WARNING of ours.
ANSWERED = {"startup_raises", "shutdown_raises"}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Outcome:
    """What uvicorn did with one app."""

    answer: int | None  # what GET / answered; None: it never served
    exit_status: int
    lines: tuple[str, ...]  # which of uvicorn's LINES it printed, in LINES' order
    warnings: int  # how many times our WARNING about an unsupervised app was printed


def served(fault: str, mode: str, *, wrapped: bool, tmp_path: Path) -> Outcome:
    """1. uvicorn serves the app; 2. it exits by itself, or answers GET / and is sent
    SIGTERM; 3. what it printed and its exit status."""
    env = {"TEST_LIFESPAN_FAULT": fault, "TEST_WRAPPED": "1" if wrapped else "0"}
    server = ServerProcess(
        APP, tmp_path=tmp_path, env=env, args=("--lifespan", mode), name=f"{fault}-{wrapped}"
    )
    try:
        server.start(wait_live=False)
        answer = first_answer(server, within=20.0)
        if answer is not None:
            server.signal(signal.SIGTERM)
        status = server.wait_exit(timeout=20)
        output = server.output()
    finally:
        server.stop()
    return Outcome(
        answer=answer,
        exit_status=status,
        lines=tuple(line for line in LINES if line in output),
        warnings=output.count(OURS),
    )


def first_answer(server: ServerProcess, within: float) -> int | None:
    """The status of the first GET / the server answers, or None if it exits first."""
    deadline = time.monotonic() + within
    assert server.process is not None
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return None
        try:
            return httpx.get(f"{server.base_url}/", timeout=1.0).status_code
        except httpx.TransportError:
            time.sleep(0.05)
    raise TimeoutError(f"uvicorn neither served nor exited within {within} s:\n{server.output()}")


@pytest.mark.parametrize("mode", ["on", "auto"])
@pytest.mark.parametrize("fault", sorted(LIFESPAN_FAULTS))
def test_uvicorn_does_with_the_middleware_what_it_does_without(
    fault: str, mode: str, tmp_path: Path
) -> None:
    """The same start or exit, exit status, lifespan lines and answer to GET /; and our one
    WARNING when the lifespan ended before the app answered its startup."""
    without = served(fault, mode, wrapped=False, tmp_path=tmp_path)
    with_it = served(fault, mode, wrapped=True, tmp_path=tmp_path)
    assert dataclasses.replace(with_it, warnings=0) == without
    assert with_it.warnings == (0 if fault in ANSWERED else 1)


def test_a_middleware_constructor_error_fails_lifespan_on_with_status_3(tmp_path: Path) -> None:
    """The issue's case: a Starlette middleware whose constructor raises, in the middleware,
    under ``uvicorn --lifespan on``: "Application startup failed", exit status 3."""
    outcome = served("middleware_raises", "on", wrapped=True, tmp_path=tmp_path)
    assert outcome.answer is None
    assert outcome.exit_status == 3
    assert "Application startup failed. Exiting." in outcome.lines
