"""What a newcomer meets first: `make run` and the README's FastAPI example, run for real."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.servers._process import ServerProcess

REPO = Path(__file__).resolve().parents[2]


def readme_block(heading: str) -> str:
    """The first ```python block in the README section under *heading*."""
    readme = (REPO / "README.md").read_text()
    section = readme.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"^```python\n(.*?)^```$", section, re.M | re.S)
    assert match is not None, f"no python block under {heading!r}"
    return match.group(1)


def test_make_run_takes_host_and_port_and_installs_only_the_demo_group() -> None:
    """`make run HOST=... PORT=...` serves there, after installing the package with its
    metrics extra and the demo dependency group, not the test tools."""
    # A clean make environment: under `make test` the outer make's flags would leak in.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", "run", "HOST=0.0.0.0", "PORT=9123"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    commands = [line for line in result.stdout.splitlines() if not line.startswith("#")]
    installs = [line for line in commands if "pip install" in line and "-e" in line]
    assert installs == [".venv/bin/python -m pip install --quiet -e '.[metrics]' --group demo"]
    assert commands[-1] == ".venv/bin/python -m uvicorn app.main:app --host 0.0.0.0 --port 9123"


def test_readme_fastapi_example_defines_every_name_it_uses(tmp_path: Path) -> None:
    """ruff finds no undefined or unused name in the README's FastAPI example."""
    example = tmp_path / "main.py"
    example.write_text(readme_block("Use it with FastAPI"))
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--select", "F", str(example)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.server
@pytest.mark.timeout(90)
def test_readme_fastapi_example_serves_and_stops_cleanly(tmp_path: Path) -> None:
    """1. the README's example, saved as main.py, runs under uvicorn; 2. POST /emails spawns
    the e-mail and queues a job; 3. SIGTERM drains it: the e-mail is sent, the worker ends
    its job and returns, the app's own shutdown runs, and the report is clean."""
    (tmp_path / "main.py").write_text(readme_block("Use it with FastAPI"))
    env = {"PYTHONPATH": f"{tmp_path}:{REPO}"}
    with ServerProcess("main:app", tmp_path=tmp_path, env=env) as server:
        response = httpx.post(f"{server.base_url}/emails", params={"address": "a@b.c"})
        assert response.json() == {"status": "queued"}
        assert httpx.get(f"{server.base_url}/health/ready").status_code == 200
        server.signal(signal.SIGTERM)
        server.wait_exit(timeout=30)
    output = server.output()
    for line in ("opening connections", "sent an e-mail to a@b.c", "closing connections"):
        assert line in output, output
    assert re.search(r"shutdown report: signal SIGTERM, clean, ", output), output
    # The 2 s job ends within the 5 s shutdown delay: the worker sees `stopping` and returns.
    assert "worker 'consume_jobs' returned" in output, output
