"""Start a real ASGI server (or Prometheus) as a subprocess on loopback, and stop only that.

Every wait here is bounded; `ServerProcess.stop` (also run by the context manager) kills
the process group it created if the test left it running.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from asgi_supervisor._host.listener_folder import folder_name
from tests.servers._started import Started

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m asgi_supervisor`` with *args* (and *env*), for at most 30 s."""
    return subprocess.run(
        [sys.executable, "-m", "asgi_supervisor", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        check=False,
    )


def wait_until_ok(
    url: str, process: subprocess.Popen[bytes], within: float, output: Callable[[], str]
) -> None:
    """Poll *url* until it answers 200, while *process* runs, for at most *within* seconds.

    Raises:
        RuntimeError: the process exited first (its *output* is in the message).
        TimeoutError: no 200 in time.
    """
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited early:\n{output()}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer 200 within {within} s:\n{output()}")


def read_events(path: Path) -> list[tuple[float, str]]:
    """The events the test app recorded (see `tests.apps.record`), in order."""
    if not path.exists():
        return []
    events = []
    for line in path.read_text().splitlines():
        stamp, _, event = line.partition(" ")
        events.append((float(stamp), event))
    return events


# How each server is started, by the name tests pass as `server=`: one worker process (or
# none: the app in the main process) unless the name says otherwise.
_COMMANDS: dict[str, tuple[str, ...]] = {
    "uvicorn": ("uvicorn", "{app}", "--host", "127.0.0.1", "--port", "{port}"),
    "gunicorn": (
        "gunicorn",
        "{app}",
        "--bind",
        "127.0.0.1:{port}",
        "--workers",
        "1",
        "--worker-class",
        "asgi_supervisor.gunicorn.UvicornWorker",
        # gunicorn 27 opens a control socket at a fixed path in $HOME by default, which
        # would be shared by every gunicorn running at once.
        "--no-control-socket",
    ),
    "hypercorn": ("hypercorn", "{app}", "-b", "127.0.0.1:{port}", "-w", "0"),
    "hypercorn-uvloop": ("hypercorn", "{app}", "-b", "127.0.0.1:{port}", "-w", "0", "-k", "uvloop"),
    "hypercorn-trio": ("hypercorn", "{app}", "-b", "127.0.0.1:{port}", "-w", "0", "-k", "trio"),
    # Hypercorn's default: a parent holds the socket and runs the app in one child process.
    "hypercorn-workers": ("hypercorn", "{app}", "-b", "127.0.0.1:{port}"),
    "granian": (
        "granian",
        "--interface",
        "asgi",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--workers",
        "1",
        "{app}",
    ),
}


class ServerProcess(Started):
    """One server process (see `_COMMANDS`) serving *app* on a free loopback port; *args* go
    to the server (``--workers 2``).

    It runs this checkout's code with the tests' Python, from the checkout, unless given
    *python* and *cwd*: then it runs that interpreter isolated (``-I``: no PYTHONPATH, no
    user site, not even the working folder on ``sys.path``, which uvicorn adds for the app).
    """

    def __init__(
        self,
        app: str,
        *,
        tmp_path: Path,
        server: str = "uvicorn",
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        name: str | None = None,
        ready_path: str = "/_supervisor/health/live",
        python: str | None = None,
        cwd: Path = REPO,
    ) -> None:
        # Its name as a load balancer's backend (see `tests.servers.rig.Balancer`).
        self.name = name or server
        # The port is kept across restarts (`start` after an exit): a balancer knows it.
        self.port = free_port()
        self.host = "127.0.0.1"
        self.ready_path = ready_path
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.events_path = tmp_path / f"events-{self.port}.log"
        self.log_path = tmp_path / f"server-{self.port}.log"
        # Each server writes its local admin token under the test's own directory.
        self.runtime_dir = tmp_path / f"run-{self.port}"
        self.cwd = cwd
        interpreter = [sys.executable] if python is None else [python, "-I"]
        try:
            command = [*interpreter, "-m", *_COMMANDS[server]]
        except KeyError:
            raise ValueError(f"server={server!r} is not one of {sorted(_COMMANDS)}") from None
        command = [part.format(app=app, port=self.port) for part in command]
        command += args
        self.command = command
        self.env = {
            **os.environ,
            **({"PYTHONPATH": str(REPO)} if python is None else {}),
            "PYTHONUNBUFFERED": "1",
            "TEST_EVENTS": str(self.events_path),
            "ASGI_SUPERVISOR_GRACE_PERIOD": "6",
            "ASGI_SUPERVISOR_SHUTDOWN_DELAY": "0",
            "ASGI_SUPERVISOR_CANCEL_TIMEOUT": "2",
            "ASGI_SUPERVISOR_RUNTIME_DIR": str(self.runtime_dir),
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout: float = 20.0, *, wait_live: bool = True) -> None:
        """Start the server and wait until /health/live answers (unless not *wait_live*)."""
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command,
            cwd=self.cwd,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        if not wait_live:
            return
        wait_until_ok(f"{self.base_url}{self.ready_path}", self.process, ready_timeout, self.output)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def signal(self, sig: int) -> float:
        """Send *sig* to the server; return the monotonic time it was sent."""
        os.kill(self.pid, sig)
        return time.monotonic()

    def wait_exit(self, timeout: float) -> int:
        """The exit status, waiting at most *timeout* seconds.

        Raises:
            subprocess.TimeoutExpired: still running.
        """
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    @property
    def listener_folder(self) -> Path:
        """The folder its workers share in the runtime directory: sockets and the token."""
        runtime_dir = Path(self.env.get("ASGI_SUPERVISOR_RUNTIME_DIR") or self.runtime_dir)
        return runtime_dir / folder_name((self.host, self.port))

    @property
    def token_path(self) -> Path:
        """The local admin token file of this server's port."""
        return self.listener_folder / "token"

    def admin_headers(self, timeout: float = 10.0) -> dict[str, str]:
        """An Authorization header with the local admin token, once the server wrote it.

        Raises:
            TimeoutError: no token file within *timeout* seconds.
        """
        deadline = time.monotonic() + timeout
        while not self.token_path.exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {self.token_path} within {timeout} s:\n{self.output()}")
            time.sleep(0.05)
        return {"Authorization": f"Bearer {self.token_path.read_text().strip()}"}

    def output(self) -> str:
        """What the server printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def events(self) -> list[tuple[float, str]]:
        """The events the app recorded so far."""
        return read_events(self.events_path)

    def stop(self) -> None:
        """Kill the server's process group if it still runs (only ours: we created it)."""
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self.process.wait(timeout=10)


class PrometheusProcess(Started):
    """Debian's Prometheus on a free loopback port, scraping *targets* every second.

    Its data lives in *tmp_path*; `stop` (also run by the context manager) ends the process
    group it created: SIGTERM, then SIGKILL after 10 s.
    """

    def __init__(
        self, targets: list[str], *, tmp_path: Path, binary: str = "/usr/bin/prometheus"
    ) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"prometheus-{self.port}.log"
        config = tmp_path / f"prometheus-{self.port}.yml"
        scrape = {
            "job_name": "asgi",
            "metrics_path": "/_supervisor/metrics",  # the endpoints' default prefix
            "static_configs": [{"targets": targets}],
        }
        global_ = {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
        # JSON is YAML: no YAML writer needed.
        config.write_text(json.dumps({"global": global_, "scrape_configs": [scrape]}))
        self.command = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / f'prometheus-{self.port}-data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, ready_timeout: float = 30.0) -> None:
        """Start Prometheus and wait until it says it is ready."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_until_ok(f"{self.base_url}/-/ready", self.process, ready_timeout, self.output)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The instant vector *promql* evaluates to now, through the HTTP API."""
        response = httpx.get(f"{self.base_url}/api/v1/query", params={"query": promql}, timeout=5)
        body = response.json()
        if body.get("status") != "success":
            raise AssertionError(f"query {promql!r} failed: {body}")
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for(self, promql: str, within: float, count: int = 1) -> list[dict[str, Any]]:
        """Poll *promql* until it returns at least *count* series; return them."""
        deadline = time.monotonic() + within
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = self.query(promql)
            if len(result) >= count:
                return result
            time.sleep(0.25)
        targets = httpx.get(f"{self.base_url}/api/v1/targets", timeout=5).text
        raise AssertionError(
            f"{promql!r} gave {result} within {within} s; targets: {targets}\n{self.output()}"
        )

    def output(self) -> str:
        """What Prometheus logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """End Prometheus by its process group (ours: we created it)."""
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def events_named(server: ServerProcess, name: str) -> list[float]:
    """When the app recorded *name*."""
    return [at for at, event in server.events() if event == name]


async def wait_for_event(server: ServerProcess, name: str, within: float = 5.0) -> None:
    """Wait, bounded, until the app has recorded *name*."""
    deadline = time.monotonic() + within
    while not events_named(server, name):
        if time.monotonic() > deadline:
            raise AssertionError(f"the app did not record {name!r} within {within} s")
        await asyncio.sleep(0.01)


async def wait_for_output(server: ServerProcess, text: str, within: float = 5.0) -> None:
    """Wait, bounded, until the server's output (its log) holds *text*."""
    deadline = time.monotonic() + within
    while text not in server.output():
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not logged within {within} s:\n{server.output()}")
        await asyncio.sleep(0.01)


async def wait_for_status(url: str, status: int, within: float) -> float:
    """Poll *url* until it answers *status*; return when it did (monotonic)."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if (await client.get(url)).status_code == status:
                return time.monotonic()
            await asyncio.sleep(0.01)
    raise AssertionError(f"{url} did not answer {status} within {within} s")
