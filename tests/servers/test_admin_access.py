"""Attacks on the admin endpoints of a real server, as a client on another host would try them.

Every server here runs with no ``admin_token``: only a caller holding the local token file
may drain it. Each attack ends with a SIGTERM, whose shutdown must be the first: a drain that
slipped through would have begun one before it, and the log names the trigger.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.servers._process import ServerProcess, cli

pytestmark = [pytest.mark.server, pytest.mark.timeout(90)]

APP = "tests.servers.served:app"


def assert_never_drained(server: ServerProcess) -> None:
    """Stop *server* with SIGTERM and check that the signal began its shutdown: a drain that
    slipped through, however late, would have begun it first, and the first trigger is the
    one the log and the report name. Once the process has exited, every request it got has
    had its effect, so no pause can be too short."""
    with httpx.Client(base_url=server.base_url, timeout=5.0) as client:
        assert client.get("/_supervisor/health/ready").status_code == 200, server.output()
    server.signal(signal.SIGTERM)
    assert server.wait_exit(timeout=20) == -signal.SIGTERM
    output = server.output()
    assert "draining: signal SIGTERM" in output, output
    assert "draining: drain endpoint" not in output, output


def send_and_reset(port: int, request: bytes) -> None:
    """Send *request* on a new connection and reset it at once (SO_LINGER 0, then close)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.sendall(request)


def test_a_request_reset_after_sending_never_drains(tmp_path: Path) -> None:
    """1. A client sends POST (or GET) /drain and resets the connection at once, so uvicorn
    cannot read its address (the scope's client is None); 2. repeated 30 times; 3. the
    service stays ready, and a SIGTERM then begins its shutdown: no address, not even a
    missing one, opens an admin endpoint."""
    requests = [
        f"{method} /_supervisor/drain HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode()
        for method in ("POST", "GET")
    ]
    with ServerProcess(APP, tmp_path=tmp_path) as server, httpx.Client(timeout=5.0) as client:
        for attempt in range(30):
            send_and_reset(server.port, requests[attempt % 2])
            ready = client.get(f"{server.base_url}/_supervisor/health/ready")
            assert ready.status_code == 200, f"drained on attempt {attempt}: {ready.text}"
        assert_never_drained(server)


def test_spoofed_forwarding_headers_and_browsers_are_refused(tmp_path: Path) -> None:
    """Under uvicorn --forwarded-allow-ips='*': 1. X-Forwarded-For: 127.0.0.1 without the
    token gets 401 on /tasks and /drain; 2. with the local token, a request with an Origin
    or a cross-site Sec-Fetch-Site gets 403; 3. GET /drain gets 405 with Allow: POST; 4. the
    token itself works; 5. none of it drained: a SIGTERM begins the shutdown."""
    args = ("--proxy-headers", "--forwarded-allow-ips", "*")
    with (
        ServerProcess(APP, tmp_path=tmp_path, args=args) as server,
        httpx.Client(base_url=server.base_url, timeout=5.0) as client,
    ):
        spoofed = {"X-Forwarded-For": "127.0.0.1", "X-Real-IP": "127.0.0.1"}
        assert client.get("/_supervisor/tasks", headers=spoofed).status_code == 401
        assert client.post("/_supervisor/drain", headers=spoofed).status_code == 401
        token = server.admin_headers()
        for browser in (
            {"Origin": "http://evil.example"},
            {"Origin": server.base_url},
            {"Sec-Fetch-Site": "cross-site"},
        ):
            refused = client.post("/_supervisor/drain", headers={**token, **browser})
            assert refused.status_code == 403, browser
            assert "browsers" in refused.json()["error"]
        for method in ("GET", "HEAD"):
            wrong = client.request(method, "/_supervisor/drain", headers=token)
            assert (wrong.status_code, wrong.headers["allow"]) == (405, "POST")
        assert "use POST" in client.get("/_supervisor/drain", headers=token).json()["error"]
        assert client.get("/_supervisor/tasks", headers=token).status_code == 200
        assert_never_drained(server)


def test_workers_of_one_server_share_one_token_and_leave_no_file(tmp_path: Path) -> None:
    """Under uvicorn --workers 2: 1. both workers are members of one listener folder, with
    one token; 2. requests, whichever worker takes them, accept it; 3. after SIGTERM no file
    is left."""
    with ServerProcess(APP, tmp_path=tmp_path, args=("--workers", "2")) as server:
        token = server.admin_headers()
        folder = server.listener_folder
        deadline = time.monotonic() + 20
        while len(list(folder.glob("*.sock"))) < 2:
            assert time.monotonic() < deadline, sorted(os.listdir(folder))
            time.sleep(0.05)
        assert sorted(os.listdir(server.runtime_dir)) == [folder.name]
        assert len(os.listdir(folder)) == 4  # two sockets, the token and its record
        for _ in range(8):
            # A new connection each time, so the kernel may hand it to either worker.
            with httpx.Client(base_url=server.base_url, timeout=5.0) as client:
                assert client.get("/_supervisor/tasks", headers=token).status_code == 200
        server.signal(signal.SIGTERM)
        server.wait_exit(timeout=20)
    assert os.listdir(server.runtime_dir) == []


def test_hypercorn_binds_after_startup_and_the_cli_still_finds_the_token(
    tmp_path: Path,
) -> None:
    """hypercorn binds its socket after the lifespan startup: 1. the supervisor still finds
    the port and writes the token; 2. the CLI, with no flag, lists the tasks."""
    with ServerProcess(APP, tmp_path=tmp_path, server="hypercorn") as server:
        env = {**os.environ, "ASGI_SUPERVISOR_RUNTIME_DIR": str(server.runtime_dir)}
        env.pop("ASGI_SUPERVISOR_ADMIN_TOKEN", None)
        tasks = subprocess.run(
            [sys.executable, "-m", "asgi_supervisor", "tasks", server.base_url],
            capture_output=True,
            text=True,
            timeout=30,
            env=env,
            check=False,
        )
        assert tasks.returncode == 0, tasks.stderr
        assert "cooperative" in tasks.stdout
        assert server.token_path.exists()


def test_a_login_link_used_on_one_worker_is_refused_by_the_other(tmp_path: Path) -> None:
    """Under uvicorn --workers 2, whose answers name their worker: 1. `open` signs a link
    with the local token the workers share; 2. one worker exchanges it for a session, which
    both workers accept; 3. the link again, on fresh connections until both workers have
    answered, is refused by each: the one that took it, and the other, which it told."""
    app = "tests.servers.served:app_with_pid"
    with ServerProcess(app, tmp_path=tmp_path, args=("--workers", "2")) as server:
        server.admin_headers()
        folder = server.listener_folder
        deadline = time.monotonic() + 20
        while len(list(folder.glob("*.sock"))) < 2:  # both workers joined the folder
            assert time.monotonic() < deadline, sorted(os.listdir(folder))
            time.sleep(0.05)
        env = {**server.env, "ASGI_SUPERVISOR_ADMIN_TOKEN": "none"}
        printed = cli("open", server.base_url, env=env)
        assert printed.returncode == 0, printed.stderr
        link = printed.stdout.strip()
        browser = {"Sec-Fetch-Site": "none", "Accept": "text/html"}
        with httpx.Client(timeout=5.0, headers=browser) as client:
            exchanged = client.get(link)
        assert exchanged.status_code == 303, exchanged.text
        taker = int(exchanged.headers["x-pid"])
        cookies = dict(exchanged.cookies.items())
        refusals: list[tuple[int, int]] = []  # (worker, status) of each use again
        accepted: set[int] = set()
        for _ in range(200):
            if len({pid for pid, _ in refusals}) == 2 and len(accepted) == 2:
                break
            # A new connection each time, so the kernel may hand it to either worker.
            with httpx.Client(timeout=5.0, headers=browser, cookies=cookies) as client:
                again = client.get(link)
                refusals.append((int(again.headers["x-pid"]), again.status_code))
                page = client.get(f"{server.base_url}/_supervisor/tasks")
                assert page.status_code == 200
                accepted.add(int(page.headers["x-pid"]))
        assert {pid for pid, _ in refusals} == accepted, refusals
        assert taker in accepted
        assert {status for _, status in refusals} == {403}, refusals
        assert len(accepted) == 2, accepted
