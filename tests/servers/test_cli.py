"""The command line against a real server: health, tasks, drain, and its failures."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import pytest

from asgi_supervisor._host.listener_folder import folder_name
from tests.servers._process import ServerProcess, cli, free_port

pytestmark = [pytest.mark.server, pytest.mark.timeout(60)]


def default_environment() -> dict[str, str]:
    """This process's environment without the variables that move the runtime directory."""
    moved = ("ASGI_SUPERVISOR_RUNTIME_DIR", "XDG_RUNTIME_DIR", "ASGI_SUPERVISOR_ADMIN_TOKEN")
    return {name: value for name, value in os.environ.items() if name not in moved}


def test_health_tasks_and_drain_with_no_configuration(tmp_path: Path) -> None:
    """With no token, no flag and the default runtime directory: 1. a client without the
    local token is refused; 2. health exits 0 when ready; 3. tasks prints a table; 4. drain
    exits 0 once drained; 5. health then exits 1 and says why, unless already gone; 6. with
    no signal following, the drained server does not linger: it asks uvicorn to exit, the
    app's own shutdown runs, and the token file goes with the server."""
    unset = {"ASGI_SUPERVISOR_RUNTIME_DIR": "", "XDG_RUNTIME_DIR": ""}
    with ServerProcess("tests.servers.served:app", tmp_path=tmp_path, env=unset) as server:
        default = Path(f"/tmp/asgi-supervisor-{os.geteuid()}")
        token_path = default / folder_name(("127.0.0.1", server.port)) / "token"
        with httpx.Client(base_url=server.base_url, timeout=5.0) as client:
            assert client.get("/_supervisor/tasks").status_code == 401
            assert client.post("/_supervisor/drain").status_code == 401
            assert client.get("/_supervisor/drain").status_code == 405
        env = default_environment()
        health = cli("health", server.base_url, env=env)
        assert (health.returncode, health.stdout) == (0, "ready (state=ready)\n")
        tasks = cli("tasks", server.base_url, "--kind", "worker", env=env)
        assert tasks.returncode == 0
        header, row, summary = tasks.stdout.splitlines()
        assert header.split() == ["ID", "KIND", "STATE", "AGE", "RESTARTS", "NAME", "WHERE"]
        assert row.split()[1:3] == ["worker", "running"]
        assert "cooperative" in row
        assert "tests/apps.py" in row
        assert summary == "1 of 1 tasks (state=ready)"
        assert token_path.exists()
        drain = cli("drain", server.base_url, env=env)
        assert drain.returncode == 0, drain.stderr
        assert re.match(r"state=\w+ drained=True: drain endpoint, ", drain.stdout), drain.stdout
        assert "drained=True" in drain.stdout
        after = cli("health", server.base_url, env=env)
        assert after.returncode in (1, 3)  # not ready, or already gone
        if after.returncode == 1:
            assert "not ready (state=" in after.stdout
        server.wait_exit(timeout=20)
        assert "stopped without a signal: asking the server to exit" in server.output()
        assert "app shutdown" in [event for _, event in server.events()]
    assert not token_path.exists()
    assert not token_path.parent.exists()


def test_admin_token_from_a_secret_with_a_newline(tmp_path: Path) -> None:
    """The server's token ends in a newline (a mounted secret): 1. without any token the CLI
    exits 4 and says what to do; 2. a wrong one exits 4; 3. the token, from the flag or
    from the variable with its newline, works."""
    env = {"ASGI_SUPERVISOR_ADMIN_TOKEN": "s3cret\n"}
    with ServerProcess("tests.servers.served:app", tmp_path=tmp_path, env=env) as server:
        missing = cli("tasks", server.base_url, env={"PATH": ""})
        assert missing.returncode == 4
        assert "answered 401" in missing.stderr
        assert "no local token file for 127.0.0.1:" in missing.stderr
        assert "set ASGI_SUPERVISOR_ADMIN_TOKEN to the server's admin_token" in missing.stderr
        wrong = cli("tasks", server.base_url, "--token", "nope", env={"PATH": ""})
        assert wrong.returncode == 4
        assert "the token from --token was refused" in wrong.stderr
        right = cli("tasks", server.base_url, "--token", "s3cret", env={"PATH": ""})
        assert right.returncode == 0, right.stderr
        from_env = cli("tasks", server.base_url, env={"ASGI_SUPERVISOR_ADMIN_TOKEN": "s3cret\n"})
        assert from_env.returncode == 0, from_env.stderr


def test_unreachable_and_bad_url() -> None:
    """A closed port exits 3 naming the URL (and, where the local token was looked for, that
    nothing listens there); a URL without a scheme exits 2."""
    url = f"http://127.0.0.1:{free_port()}"
    unreachable = cli("health", url, "--timeout", "2")
    assert unreachable.returncode == 3
    assert f"cannot reach {url}/_supervisor/health/ready" in unreachable.stderr
    # tasks looks for the local token first: no socket there is the server's, or anyone's.
    looked = cli("tasks", url, "--timeout", "2")
    assert looked.returncode == 3
    assert f"cannot reach {url}/_supervisor/tasks" in looked.stderr
    assert f"nothing listens on 127.0.0.1:{url.rsplit(':', 1)[1]}" in looked.stderr
    bad = cli("drain", "127.0.0.1:8000")
    assert bad.returncode == 2
    assert "must start with http:// or https://" in bad.stderr
    usage = cli("frobnicate", url)
    assert usage.returncode == 2
