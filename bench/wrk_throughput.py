"""Sanity check through a real server: requests/s with and without the middleware.

uvicorn (httptools) serves a plain Starlette hello, and the same app wrapped in
SupervisorMiddleware, in turn; wrk drives each for a few seconds, interleaved A B A B.
The server is pinned to CPU 0 and wrk to CPU 1 when taskset exists. Target: >= 0.97x.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from bench._harness import Summary, print_table

REPO = Path(__file__).resolve().parents[1]
APPS = {
    "plain Starlette": "bench.wrk_apps:plain",
    "+ SupervisorMiddleware": "bench.wrk_apps:supervised",
    "+ no-op pure ASGI middleware": "bench.wrk_apps:noop",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pin(cpu: int) -> list[str]:
    return ["taskset", "-c", str(cpu)] if shutil.which("taskset") and os.cpu_count() != 1 else []


def run_once(app: str, seconds: int) -> float:
    """Requests per second for one wrk run against a fresh server serving *app*."""
    port = _free_port()
    server = subprocess.Popen(
        [
            *_pin(0),
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--port",
            str(port),
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError(f"{app} did not start") from None
                time.sleep(0.05)
        result = subprocess.run(
            [*_pin(1), "wrk", "-t1", "-c32", f"-d{seconds}s", f"http://127.0.0.1:{port}/"],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=True,
        )
        match = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
        if match is None:
            raise RuntimeError(f"wrk printed no Requests/sec:\n{result.stdout}")
        return float(match.group(1))
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)


def main(argv: Sequence[str] = ()) -> int:
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk); skipping the throughput check")
        return 0
    seconds, pairs = (1, 1) if "--quick" in argv else (3, 5)
    samples: dict[str, list[float]] = {name: [] for name in APPS}
    for _ in range(pairs):
        for name, app in APPS.items():
            samples[name].append(run_once(app, seconds) / 1000)
    results = {name: Summary(name, tuple(values)) for name, values in samples.items()}
    rows = list(results.values())
    print_table("Throughput through uvicorn + wrk (thousand requests/s)", "k rps", rows, rows[0])
    ratio = rows[1].median / rows[0].median
    verdict = "met" if ratio >= 0.97 else "MISSED"
    print(f"  target >= 0.97x the plain throughput: {verdict} ({ratio:.3f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
