"""The command line against a real server: health, tasks, drain, and its failures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers._process import ServerProcess, free_port

pytestmark = [pytest.mark.server, pytest.mark.timeout(60)]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m asgi_supervisor`` with *args*."""
    return subprocess.run(
        [sys.executable, "-m", "asgi_supervisor", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )


def test_health_tasks_and_drain(tmp_path: Path) -> None:
    """1. health exits 0 when ready; 2. tasks prints a table; 3. drain exits 0 once drained;
    4. health then exits 1 and says why; 5. with no signal following, the drained server
    does not linger: it asks uvicorn to exit, and the app's own shutdown runs."""
    with ServerProcess("tests.servers.served:app", tmp_path=tmp_path) as server:
        health = cli("health", server.base_url)
        assert (health.returncode, health.stdout) == (0, "ready (state=ready)\n")
        tasks = cli("tasks", server.base_url, "--kind", "worker")
        assert tasks.returncode == 0
        header, row, summary = tasks.stdout.splitlines()
        assert header.split() == ["ID", "KIND", "STATE", "AGE", "RESTARTS", "NAME", "WHERE"]
        assert row.split()[1:3] == ["worker", "running"]
        assert "cooperative" in row
        assert "tests/apps.py" in row
        assert summary == "1 of 1 tasks (state=ready)"
        drain = cli("drain", server.base_url)
        assert drain.returncode == 0
        assert drain.stdout.startswith("state=")
        assert "drained=True" in drain.stdout
        after = cli("health", server.base_url)
        assert after.returncode in (1, 3)  # not ready, or already gone
        if after.returncode == 1:
            assert "not ready (state=" in after.stdout
        server.wait_exit(timeout=20)
        assert "stopped without a signal: asking the server to exit" in server.output()
        assert "app shutdown" in [event for _, event in server.events()]


def test_token_is_required_when_configured(tmp_path: Path) -> None:
    """Without the token or with a wrong one the CLI exits 4 and says how to pass it."""
    env = {"ASGI_SUPERVISOR_ADMIN_TOKEN": "s3cret"}
    with ServerProcess("tests.servers.served:app", tmp_path=tmp_path, env=env) as server:
        missing = cli("tasks", server.base_url, env={"PATH": ""})
        assert missing.returncode == 4
        assert "answered 401: pass --token or set ASGI_SUPERVISOR_ADMIN_TOKEN" in missing.stderr
        wrong = cli("tasks", server.base_url, "--token", "nope")
        assert wrong.returncode == 4
        right = cli("tasks", server.base_url, "--token", "s3cret")
        assert right.returncode == 0
        from_env = cli("tasks", server.base_url, env={"ASGI_SUPERVISOR_ADMIN_TOKEN": "s3cret"})
        assert from_env.returncode == 0


def test_unreachable_and_bad_url() -> None:
    """A closed port exits 3 naming the URL; a URL without a scheme exits 2."""
    url = f"http://127.0.0.1:{free_port()}"
    unreachable = cli("health", url, "--timeout", "2")
    assert unreachable.returncode == 3
    assert f"cannot reach {url}/health/ready" in unreachable.stderr
    bad = cli("drain", "127.0.0.1:8000")
    assert bad.returncode == 2
    assert "must start with http:// or https://" in bad.stderr
    usage = cli("frobnicate", url)
    assert usage.returncode == 2
