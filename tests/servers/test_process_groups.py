"""Multi-worker servers drain as one: the preStop path behind HAProxy, under load.

Each server runs ``tests.servers.served:app_with_pid`` with 2 worker processes (each with its
own supervisor, as every server runs them), which names the worker that answered in an
``x-pid`` header. HAProxy balances between it and a steady replica, checking readiness every
200 ms with retries off, while wrk counts every answer. The preStop drain reaches one worker;
every probe must then find every worker not ready, with one deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers._process import ServerProcess
from tests.servers.rig import COUNTER_LUA, PLAIN_APP, Balancer, LoadResult, replica

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.timeout(90)]

APP = "tests.servers.served:app_with_pid"
WORKERS = {
    "uvicorn": ("--workers", "2"),
    "gunicorn": ("-w", "2"),
    "granian": ("--workers", "2"),
}
# What each server's main process exits with after SIGTERM, measured here (the servers
# table of docs/servers.md states these).
EXIT_STATUS = {"uvicorn": 0, "gunicorn": 0, "granian": 0}
# The steps before SIGTERM take 7 to 9.5 s on two shared cores (fresh-connection probes).
LOAD_SECONDS = 15


@pytest.fixture
def runtime() -> Iterator[Path]:
    """A private runtime folder for the group's sockets, short enough for a socket path."""
    with tempfile.TemporaryDirectory(prefix="pg-") as name:
        yield Path(name)


def probe(url: str, *, workers: set[int], count: int = 30) -> list[tuple[int, int]]:
    """GET *url* on a fresh connection each time (so the kernel hands the connections to
    different workers): *count* times, and on until every worker in *workers* has answered
    (at most 4 x *count*). Returns (status, pid) pairs."""
    answers: list[tuple[int, int]] = []
    while len(answers) < 4 * count:
        response = httpx.get(url, timeout=5.0)
        answers.append((response.status_code, int(response.headers["x-pid"])))
        if len(answers) >= count and {pid for _, pid in answers} >= workers:
            break
    return answers


def probe_until(url: str, status: int, pid: int | None = None, within: float = 5.0) -> None:
    """Probe *url* on fresh connections until it answers *status* (from *pid*, if given)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        response = httpx.get(url, timeout=5.0)
        if response.status_code == status and pid in (None, int(response.headers["x-pid"])):
            return
        time.sleep(0.02)
    raise AssertionError(f"{url} did not answer {status} (pid {pid}) within {within} s")


def wait_for_workers(base_url: str, count: int, within: float = 30.0) -> set[int]:
    """The pids of *count* workers once each has answered readiness with 200."""
    deadline = time.monotonic() + within
    ready: set[int] = set()
    while time.monotonic() < deadline:
        response = httpx.get(f"{base_url}/_supervisor/health/ready", timeout=5.0)
        if response.status_code == 200:
            ready.add(int(response.headers["x-pid"]))
            if len(ready) == count:
                return ready
        time.sleep(0.02)
    raise AssertionError(f"only workers {ready} were ready within {within} s")


def deadlines(base_url: str, workers: set[int]) -> dict[int, float]:
    """Each worker's shutdown deadline as a monotonic time (this host's clock is theirs)."""
    found: dict[int, float] = {}
    for _ in range(120):
        response = httpx.get(f"{base_url}/_supervisor/health", timeout=5.0)
        remaining = response.json()["deadline_remaining"]
        assert remaining is not None, f"worker {response.headers['x-pid']} is not draining"
        found.setdefault(int(response.headers["x-pid"]), time.monotonic() + remaining)
        if found.keys() >= workers:
            break
    return found


@pytest.mark.parametrize("server", sorted(WORKERS))
def test_a_prestop_drain_reaches_every_worker(server: str, tmp_path: Path, runtime: Path) -> None:
    """1. a 2-worker server and a steady replica behind HAProxy, under wrk load;
    2. the preStop CLI drain reaches one worker and reports both, drained; 3. HAProxy takes
    the server out; 4. readiness is 503 from every worker on fresh connections; 5. all
    workers share one deadline; 6. SIGTERM: the server exits with its usual status and
    leaves no socket behind; 7. not one request failed."""
    env = {
        "ASGI_SUPERVISOR_RUNTIME_DIR": str(runtime),
        "ASGI_SUPERVISOR_GRACE_PERIOD": "15",
        # Longer than HAProxy's check interval (200 ms) times fall (1), with margin.
        "ASGI_SUPERVISOR_SHUTDOWN_DELAY": "1.0",
    }
    multi = ServerProcess(APP, tmp_path=tmp_path, server=server, env=env, args=WORKERS[server])
    steady = replica("steady", PLAIN_APP, tmp_path, {})
    balancer = Balancer(tmp_path, [multi, steady])
    load: subprocess.Popen[str] | None = None
    try:
        multi.start()
        steady.start()
        workers = wait_for_workers(multi.base_url, 2)
        balancer.start()
        balancer.wait_for(server, "UP", timeout=10)
        balancer.wait_for("steady", "UP", timeout=10)
        script = tmp_path / "counts.lua"
        script.write_text(COUNTER_LUA)
        load = subprocess.Popen(
            ["wrk", "-t1", "-c8", f"-d{LOAD_SECONDS}s", "-s", str(script),
             f"http://127.0.0.1:{balancer.port}/"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        time.sleep(1.0)  # steady load through both backends first

        # The preStop exec runs with the server's environment, runtime folder included.
        drain = subprocess.run(
            [sys.executable, "-m", "asgi_supervisor", "drain", multi.base_url],
            capture_output=True, text=True, timeout=30, check=False,
            env={**os.environ, "ASGI_SUPERVISOR_RUNTIME_DIR": str(runtime)},
        )  # fmt: skip
        assert drain.returncode == 0, drain.stdout + drain.stderr
        reported = {
            int(line.split()[0].removeprefix("pid=")): line
            for line in drain.stdout.splitlines()
            if line.startswith("  pid=")
        }
        assert reported.keys() == workers, drain.stdout
        assert all("drained=True" in line for line in reported.values()), drain.stdout

        balancer.wait_for(server, "DOWN", timeout=5)
        answers = probe(f"{multi.base_url}/_supervisor/health/ready", workers=workers)
        assert {status for status, _ in answers} == {503}, answers
        assert {pid for _, pid in answers} == workers, answers
        shared = deadlines(multi.base_url, workers)
        assert shared.keys() == workers
        # Each value is read a request's trip after it was computed: allow for a slow machine.
        assert max(shared.values()) - min(shared.values()) < 0.5, shared

        assert load.poll() is None, "the load ended before SIGTERM: raise LOAD_SECONDS"
        multi.signal(signal.SIGTERM)
        status = multi.wait_exit(timeout=20)
        output, _ = load.communicate(timeout=LOAD_SECONDS + 30)
    finally:
        if load is not None:
            if load.poll() is None:
                load.kill()
                load.wait(timeout=10)
            if load.stdout is not None:
                load.stdout.close()
        multi.stop()
        steady.stop()
        balancer.stop()
    result = LoadResult.parse(output)
    assert result.requests > 200
    assert result.failures == 0, (result.statuses, result.socket_errors)
    assert status == EXIT_STATUS[server], multi.output()[-3000:]
    assert list(runtime.iterdir()) == []


@pytest.mark.parametrize("server", ["gunicorn", "uvicorn"])
def test_a_signal_to_one_worker_stays_in_that_worker(server: str, tmp_path: Path) -> None:
    """1. SIGTERM to one worker, as gunicorn's reload (SIGHUP) sends to its old workers;
    2. that worker fails readiness while it drains (uvicorn), or stops accepting at once,
    since the master keeps the listener for its siblings (gunicorn, see
    `asgi_supervisor.gunicorn`); 3. its sibling stays ready throughout."""
    env = {"ASGI_SUPERVISOR_SHUTDOWN_DELAY": "3", "ASGI_SUPERVISOR_GRACE_PERIOD": "8"}
    with ServerProcess(APP, tmp_path=tmp_path, server=server, env=env, args=WORKERS[server]) as s:
        signalled, sibling = sorted(wait_for_workers(s.base_url, 2))
        os.kill(signalled, signal.SIGTERM)
        if server == "gunicorn":
            deadline = time.monotonic() + 5
            while f"[{signalled}] [INFO] Shutting down" not in s.output():
                assert time.monotonic() < deadline, "the signalled worker still accepts"
                time.sleep(0.02)
        else:
            probe_until(f"{s.base_url}/_supervisor/health/ready", 503, pid=signalled)
        answers = probe(f"{s.base_url}/_supervisor/health/ready", workers={sibling}, count=20)
    # Only the signalled worker fails readiness. (gunicorn replaces it at once, with a
    # fresh worker that is ready too.)
    assert all(status == 200 for status, pid in answers if pid != signalled)
    assert {status for status, pid in answers if pid == signalled} <= {503}
    assert (200, sibling) in answers


@pytest.mark.parametrize("server", ["gunicorn", "uvicorn"])
def test_sigterm_fails_readiness_in_every_worker_while_they_serve(
    server: str, tmp_path: Path, runtime: Path
) -> None:
    """1. SIGTERM to the server; 2. every worker, each on its own signal, fails readiness
    while still serving requests for the shutdown delay; 3. exit status 0, nothing left."""
    env = {
        "ASGI_SUPERVISOR_RUNTIME_DIR": str(runtime),
        "ASGI_SUPERVISOR_SHUTDOWN_DELAY": "3",
        "ASGI_SUPERVISOR_GRACE_PERIOD": "8",
    }
    with ServerProcess(APP, tmp_path=tmp_path, server=server, env=env, args=WORKERS[server]) as s:
        workers = wait_for_workers(s.base_url, 2)
        s.signal(signal.SIGTERM)
        probe_until(f"{s.base_url}/_supervisor/health/ready", 503)
        answers = probe(f"{s.base_url}/_supervisor/health/ready", workers=workers, count=20)
        served = httpx.get(f"{s.base_url}/", timeout=5.0)
        status = s.wait_exit(timeout=15)
    assert {status for status, _ in answers} == {503}, answers
    assert {pid for _, pid in answers} == workers, answers
    assert (served.status_code, served.headers["connection"]) == (200, "close")
    assert status == EXIT_STATUS[server], s.output()[-3000:]
    assert list(runtime.iterdir()) == []
