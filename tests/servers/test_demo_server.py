"""The demo on a real uvicorn: jobs survive SIGTERM and SIGKILL mid-job, on both backends,
and the server refuses an oversized body before reading it."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers._demo import stored_job
from tests.servers._process import ServerProcess

pytestmark = [pytest.mark.server, pytest.mark.timeout(90)]


def demo(tmp_path: Path, queue_url: str, **env: str) -> ServerProcess:
    """The demo app under uvicorn with its queue at *queue_url*."""
    settings = {
        "APP_DATABASE_URL": queue_url,
        "APP_POLL_PERIOD": "0.1",
        "ASGI_SUPERVISOR_GRACE_PERIOD": "4",
        "ASGI_SUPERVISOR_CANCEL_TIMEOUT": "2",
        **env,
    }
    return ServerProcess("app.main:app", tmp_path=tmp_path, env=settings)


def wait_for_job(base_url: str, job_id: int, status: str, within: float) -> dict[str, Any]:
    """Poll the job until it has *status*; return it."""
    deadline = time.monotonic() + within
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = httpx.get(f"{base_url}/jobs/{job_id}", timeout=2).json()
        if job["status"] == status:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not {status} within {within} s: {job}")


def test_job_survives_sigterm_mid_job(tmp_path: Path, queue_url: str) -> None:
    """1. a 6 s job is claimed; 2. SIGTERM; 3. the process exits in time with the job
    released (not stuck claimed); 4. after a restart the job is done."""
    with demo(tmp_path, queue_url) as first:
        job_id = httpx.post(f"{first.base_url}/jobs", json={"seconds": 6}).json()["id"]
        wait_for_job(first.base_url, job_id, "claimed", within=5)
        sent = first.signal(signal.SIGTERM)
        assert first.wait_exit(timeout=8) == -signal.SIGTERM
        assert time.monotonic() - sent < 4 + 1
    job = stored_job(queue_url, job_id)
    assert (job.status, job.claimed_by) == ("queued", None)
    with demo(tmp_path, queue_url) as second:
        done = wait_for_job(second.base_url, job_id, "done", within=15)
        assert done["attempts"] == 2


def test_sigkill_mid_job_loses_nothing_once_the_lease_expires(
    tmp_path: Path, queue_url: str
) -> None:
    """1. a job is claimed with a 1.5 s lease; 2. SIGKILL (no cleanup at all); 3. after a
    restart the expired lease makes it claimable and it is done."""
    env = {"APP_LEASE_PERIOD": "1.5"}
    with demo(tmp_path, queue_url, **env) as first:
        job_id = httpx.post(f"{first.base_url}/jobs", json={"seconds": 5}).json()["id"]
        wait_for_job(first.base_url, job_id, "claimed", within=5)
        first.signal(signal.SIGKILL)
        assert first.wait_exit(timeout=5) == -signal.SIGKILL
    stuck = stored_job(queue_url, job_id)
    assert stuck.status == "claimed"  # nobody released it: only the lease can
    with demo(tmp_path, queue_url, **env) as second:
        done = wait_for_job(second.base_url, job_id, "done", within=20)
        assert done["attempts"] == 2


def test_declared_100_megabyte_body_is_refused_before_it_is_sent(tmp_path: Path) -> None:
    """A request declaring a 100 MB body gets 413 after its headers alone: the server never
    waits for (or buffers) the body."""
    with demo(tmp_path, f"sqlite:///{tmp_path / 'q.sqlite3'}") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(
                b"POST /jobs HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100000000\r\n\r\n{"
            )
            answer = b""
            while b"\r\n\r\n" not in answer and (chunk := sock.recv(4096)):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 413 "), answer
