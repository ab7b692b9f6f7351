"""The demo's image, built with podman and run as PID 1: ready, non-root, healthy, and
drained by ``podman stop`` within the grace period."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.servers._demo import read_queue, stored_job
from tests.servers._podman import (
    PODMAN,
    Container,
    PodmanUnavailable,
    build_demo_image,
    ensure_base_image,
)
from tests.servers._process import free_port

# Cold (first debootstrap, then pip in the build) this takes a few minutes; warm, seconds.
pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.timeout(900)]

GRACE_PERIOD = 25.0  # the image's ASGI_SUPERVISOR_GRACE_PERIOD, left as shipped


@pytest.fixture(scope="module")
def demo_image() -> str:
    """The demo image built on a locally debootstrapped Debian base."""
    try:
        base = ensure_base_image()
    except PodmanUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    return build_demo_image(base)


def wait_ready(url: str, within: float) -> None:
    """Poll *url* until it answers 200, for at most *within* seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, f"{url} not ready within {within} s"
        time.sleep(0.1)


def healthcheck(container: Container) -> int:
    """Run the image's own HEALTHCHECK command once; its exit status (0 healthy)."""
    result = subprocess.run(
        [*PODMAN, "healthcheck", "run", container.name],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return result.returncode


def test_image_runs_non_root_is_healthy_and_drains_on_podman_stop(
    demo_image: str, postgres_url: str
) -> None:
    """1. the container (its queue on the tests' PostgreSQL) answers /health/ready on
    loopback; 2. PID 1 is uvicorn, running as uid 10001; 3. the image's HEALTHCHECK passes;
    4. a 30 s job is claimed; 5. `podman stop` sends SIGTERM: readiness and the HEALTHCHECK
    fail while it drains; 6. it exits within the grace period, not killed, the job released
    and the worker's cleanup and a clean report logged."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {"UVICORN_HOST": "127.0.0.1", "UVICORN_PORT": str(port), "APP_DATABASE_URL": postgres_url}
    with Container(demo_image, env) as container:
        wait_ready(f"{base_url}/_supervisor/health/ready", within=60)
        assert container.exec("cat", "/proc/1/cmdline").split("\0")[1:3] == [
            "/venv/bin/uvicorn",
            "app.main:app",
        ]
        assert container.exec("id", "-u").strip() == "10001"
        pid = container.inspect("{{.State.Pid}}")
        uid_line = next(
            line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
            if line.startswith("Uid:")
        )  # fmt: skip
        assert uid_line.split()[1:] == ["10001"] * 4  # real, effective, saved, fs
        assert healthcheck(container) == 0

        job_id = httpx.post(f"{base_url}/jobs", json={"seconds": 30}, timeout=5).json()["id"]
        deadline = time.monotonic() + 15
        while stored_job(postgres_url, job_id).status != "claimed":
            assert time.monotonic() < deadline, "the container never claimed the job"
            time.sleep(0.1)

        started = time.monotonic()
        stop = subprocess.Popen(
            [*PODMAN, "stop", "--time", str(int(GRACE_PERIOD + 10)), container.name],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 10
            while httpx.get(f"{base_url}/_supervisor/health/ready", timeout=2).status_code != 503:
                assert time.monotonic() < deadline, "readiness never failed after SIGTERM"
                time.sleep(0.05)
            assert healthcheck(container) != 0  # the HEALTHCHECK sees the drain too
            assert stop.wait(timeout=GRACE_PERIOD + 20) == 0
        finally:
            if stop.poll() is None:
                stop.kill()
                stop.wait(timeout=10)
        elapsed = time.monotonic() - started
        exit_code = container.inspect("{{.State.ExitCode}}")
        logs = container.logs()
    assert elapsed < GRACE_PERIOD, elapsed
    assert exit_code == "0", logs  # 137 would mean podman had to SIGKILL it
    assert f"job {job_id} released by" in logs
    assert re.search(r"shutdown report: signal SIGTERM, clean, ", logs), logs
    job = stored_job(postgres_url, job_id)
    assert (job.status, job.claimed_by) == ("queued", None)
    assert read_queue(postgres_url, lambda queue: queue.completions()) == {}


def test_the_prestop_cli_drains_the_image_with_no_configuration(
    demo_image: str, postgres_url: str
) -> None:
    """The Kubernetes preStop flow inside the image: 1. `podman exec` runs `asgi-supervisor
    drain` against 127.0.0.1 with no token and no flag (it finds the local token file the
    server wrote); 2. it reports drained; 3. no signal follows, yet the container does not
    linger: PID 1 asks uvicorn to exit and the container ends by itself, status 0, within
    the grace period."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {"UVICORN_HOST": "127.0.0.1", "UVICORN_PORT": str(port), "APP_DATABASE_URL": postgres_url}
    with Container(demo_image, env) as container:
        wait_ready(f"{base_url}/_supervisor/health/ready", within=60)
        assert httpx.post(f"{base_url}/_supervisor/drain", timeout=5).status_code == 401  # no token
        started = time.monotonic()
        drain = container.exec("asgi-supervisor", "drain", f"http://127.0.0.1:{port}")
        assert "drained=True" in drain, drain
        deadline = started + GRACE_PERIOD
        while container.inspect("{{.State.Running}}") == "true":
            assert time.monotonic() < deadline, "the drained container lingered"
            time.sleep(0.2)
        exit_code = container.inspect("{{.State.ExitCode}}")
        logs = container.logs()
    assert exit_code == "0", logs
    assert "stopped without a signal: asking the server to exit" in logs
    assert re.search(r"shutdown report: drain endpoint, clean, ", logs), logs
