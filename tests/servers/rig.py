"""A rolling-restart rig on loopback: HAProxy in front of two replicas, under wrk load.

HAProxy checks ``/_supervisor/health/ready`` every 200 ms (``fall 1 rise 1``) with retries
off, so the balancer replays nothing: every failed request is the app's. wrk drives steady
load for the whole run and counts every status and socket error. Each round sends SIGTERM
to each replica in turn and restarts it once it has exited; the rig records SIGTERM ->
marked DOWN -> exit.

Used by ``tests/servers/test_rolling_restart.py`` (short form) and
``bench/rolling_restart.py`` (long form, ``make proof``). Only processes it started are ever
signalled, by pid, and everything is torn down in ``close()`` even when a step fails.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from tests.servers._process import ServerProcess, free_port

# wrk: count every status and every socket error, across threads.
COUNTER_LUA = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) codes = {} end
function response(status, headers, body) codes[status] = (codes[status] or 0) + 1 end
function done(summary, latency, requests)
  local all = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("codes")) do all[k] = (all[k] or 0) + v end
  end
  for k, v in pairs(all) do io.write(string.format("STATUS %d %d\\n", k, v)) end
  local e = summary.errors
  io.write(string.format("ERRORS connect=%d read=%d write=%d status=%d timeout=%d\\n",
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""

HAPROXY_CFG = """
global
    maxconn 4096
    stats socket {socket} mode 600 level admin
defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s
    timeout tunnel 1h
    retries 0
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
    balance roundrobin
    option httpchk GET /_supervisor/health/ready
    http-check expect status 200
    default-server inter 200ms fall 1 rise 1
{servers}
"""

SUPERVISED_APP = "app.main:app"
PLAIN_APP = "tests.servers.rig_apps:plain"


@dataclass
class Transition:
    """When one replica was signalled, seen DOWN by HAProxy, and exited."""

    replica: str
    signalled: float
    down: float | None = None
    exited: float | None = None
    exit_status: int | None = None

    @property
    def to_down(self) -> float | None:
        return None if self.down is None else self.down - self.signalled

    @property
    def to_exit(self) -> float | None:
        return None if self.exited is None else self.exited - self.signalled


@dataclass
class LoadResult:
    """What wrk counted over the whole run."""

    statuses: dict[int, int] = field(default_factory=dict)
    socket_errors: dict[str, int] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())

    @property
    def failures(self) -> int:
        """Every non-2xx response plus every socket error (wrk's own "status" count is the
        non-2xx responses again, so it is left out)."""
        bad = sum(n for status, n in self.statuses.items() if not 200 <= status < 300)
        return bad + sum(n for kind, n in self.socket_errors.items() if kind != "status")

    @classmethod
    def parse(cls, output: str) -> LoadResult:
        result = cls()
        for status, count in re.findall(r"^STATUS (\d+) (\d+)$", output, re.M):
            result.statuses[int(status)] = int(count)
        errors = re.search(r"^ERRORS (.*)$", output, re.M)
        if errors is None:
            raise RuntimeError(f"wrk printed no counts:\n{output}")
        for name, count in re.findall(r"(\w+)=(\d+)", errors.group(1)):
            result.socket_errors[name] = int(count)
        return result


def replica(name: str, app: str, workdir: Path, env: dict[str, str]) -> ServerProcess:
    """One uvicorn replica of *app* for the rig: httptools, no access log, ready when its
    readiness answers 200, on a port kept across restarts."""
    args = (
        *("--http", "httptools", "--no-access-log", "--log-level", "warning"),
        *("--timeout-graceful-shutdown", "10"),
    )
    return ServerProcess(
        app, tmp_path=workdir, env=env, args=args, name=name, ready_path="/_supervisor/health/ready"
    )


class Backend(Protocol):
    """What HAProxy needs to know of a server: its name in the stats and its port."""

    @property
    def name(self) -> str: ...
    @property
    def port(self) -> int: ...


class Balancer:
    """HAProxy in the foreground, with an admin socket to read server states."""

    def __init__(self, workdir: Path, replicas: Sequence[Backend]) -> None:
        self.port = free_port()
        self.socket_path = workdir / "haproxy.sock"
        servers = "\n".join(f"    server {r.name} 127.0.0.1:{r.port} check" for r in replicas)
        self.config = workdir / "haproxy.cfg"
        self.config.write_text(
            HAPROXY_CFG.format(socket=self.socket_path, port=self.port, servers=servers)
        )
        self.log = workdir / "haproxy.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                ["haproxy", "-db", "-f", str(self.config)],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def states(self) -> dict[str, str]:
        """Each backend server's status (UP, DOWN, ...), from ``show stat``."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(1.0)
            sock.connect(str(self.socket_path))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        states = {}
        for line in data.decode().splitlines():
            cells = line.split(",")
            if len(cells) > 17 and cells[0] == "be" and cells[1] not in ("BACKEND", "FRONTEND"):
                states[cells[1]] = cells[17].split()[0]
        return states

    def wait_for(self, name: str, status: str, timeout: float) -> float:
        """Poll every 20 ms until *name* is *status*; return when (monotonic)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.states().get(name) == status:
                    return time.monotonic()
            except OSError:
                pass
            time.sleep(0.02)
        raise TimeoutError(f"{name} not {status} within {timeout} s: {self.states()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


class Rig:
    """Two replicas of *app* behind HAProxy; `rolling_restart` is one proof run."""

    def __init__(self, app: str, env: dict[str, str] | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="rig-")
        self.workdir = Path(self._tmp.name)
        queue_url = f"sqlite:///{self.workdir / 'queue.sqlite3'}"
        replica_env = {"APP_DATABASE_URL": queue_url, **(env or {})}
        self.replicas = [replica(n, app, self.workdir, replica_env) for n in ("a", "b")]
        self.balancer = Balancer(self.workdir, self.replicas)
        self.url = f"http://127.0.0.1:{self.balancer.port}"

    def __enter__(self) -> Rig:
        try:
            for replica in self.replicas:
                replica.start()
            self.balancer.start()
            for replica in self.replicas:
                self.balancer.wait_for(replica.name, "UP", timeout=10)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Kill whatever we started that still runs, and remove the work folder."""
        for replica in self.replicas:
            replica.stop()
        self.balancer.stop()
        self._tmp.cleanup()

    def restart(self, replica: ServerProcess, sig: int = signal.SIGTERM) -> Transition:
        """Signal *replica*, record DOWN and exit, start it again, wait until UP."""
        transition = Transition(replica.name, time.monotonic())
        replica.signal(sig)
        watcher = threading.Thread(target=self._watch_down, args=(transition,), daemon=True)
        watcher.start()
        transition.exit_status = replica.wait_exit(timeout=30)
        transition.exited = time.monotonic()
        watcher.join(timeout=5)
        replica.start()
        self.balancer.wait_for(replica.name, "UP", timeout=10)
        return transition

    def _watch_down(self, transition: Transition) -> None:
        try:
            transition.down = self.balancer.wait_for(transition.replica, "DOWN", timeout=10)
        except TimeoutError:
            transition.down = None

    def rolling_restart(self, rounds: int) -> tuple[LoadResult, list[Transition]]:
        """Steady wrk load while each replica restarts in turn, *rounds* times."""
        script = self.workdir / "counts.lua"
        script.write_text(COUNTER_LUA)
        # Long enough for every restart (about 2-3 s each) plus a margin; wrk then stops.
        seconds = 2 + rounds * 2 * 4
        load = subprocess.Popen(
            ["wrk", "-t1", "-c16", f"-d{seconds}s", "-s", str(script), f"{self.url}/"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        transitions = []
        try:
            time.sleep(1.0)  # steady load before the first restart
            for _ in range(rounds):
                for replica in self.replicas:
                    transitions.append(self.restart(replica))
            output, _ = load.communicate(timeout=seconds + 30)
        finally:
            if load.poll() is None:
                load.kill()
                load.wait(timeout=10)
        return LoadResult.parse(output), transitions


SUPERVISED_ENV = {
    # Longer than HAProxy's check interval (200 ms) times fall (1), with margin.
    "ASGI_SUPERVISOR_SHUTDOWN_DELAY": "1.0",
    "ASGI_SUPERVISOR_GRACE_PERIOD": "5",
    "ASGI_SUPERVISOR_CANCEL_TIMEOUT": "2",
}
