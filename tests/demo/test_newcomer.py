"""What a newcomer meets first, run for real as written: the Quickstart's commands against
`make run`, the README's FastAPI example, and the log it shows for that example.

The texts are found by what marks them, never by line numbers, in README.md and then in the
pages of docs/: the Quickstart by its heading, the example and its log by the HTML comments
``<!-- example: main.py -->`` and ``<!-- output: main.py ... -->`` just above their blocks.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.servers._process import ServerProcess, free_port

REPO = Path(__file__).resolve().parents[2]
PAGES = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))
BIN = Path(sys.executable).parent
# A clean make environment: under `make test` the outer make's flags would leak in.
MAKE_ENV = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}


def marked_block(marker: str) -> str:
    """The fenced block right below the comment ``<!-- {marker}`` (the first page that has
    one), without its fences."""
    # The fence may carry settings after the language (see tests/docs/_blocks.py).
    fence = r"```[^\n]*\n"
    pattern = re.compile(rf"^<!-- {re.escape(marker)}[^\n]*-->\n{fence}(.*?)^```$", re.M | re.S)
    for page in PAGES:
        match = pattern.search(page.read_text())
        if match:
            return match.group(1)
    raise AssertionError(f"no block marked {marker!r} in {[p.name for p in PAGES]}")


def section(heading: str) -> str:
    """The text under the ``## {heading}`` of the first page that has it, to the next one."""
    for page in PAGES:
        text = page.read_text()
        if f"\n## {heading}\n" in text:
            return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    raise AssertionError(f"no '## {heading}' in {[p.name for p in PAGES]}")


def console_commands(text: str) -> list[str]:
    """The ``$ `` lines of the console blocks in *text*, without the prompt."""
    blocks = re.findall(r"^```console\n(.*?)^```$", text, re.M | re.S)
    return [line[2:] for block in blocks for line in block.splitlines() if line.startswith("$ ")]


def make_run(port: int) -> list[str]:
    """The command `make run` runs last (the server), for *port*, as make prints it."""
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", "run", "HOST=127.0.0.1", f"PORT={port}"],
        cwd=REPO, env=MAKE_ENV, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    command = shlex.split(result.stdout.splitlines()[-1])
    assert command[0] == ".venv/bin/python", command
    return [sys.executable, *command[1:]]


def test_make_run_takes_host_and_port_and_installs_only_the_demo_group() -> None:
    """`make run HOST=... PORT=...` serves there, after installing the package with its
    metrics extra and the demo dependency group, not the test tools."""
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", "run", "HOST=0.0.0.0", "PORT=9123"],
        cwd=REPO, env=MAKE_ENV, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    commands = [line for line in result.stdout.splitlines() if not line.startswith("#")]
    installs = [line for line in commands if "pip install" in line and "-e" in line]
    assert installs == [".venv/bin/python -m pip install --quiet -e '.[metrics]' --group demo"]
    assert commands[-1] == ".venv/bin/python -m uvicorn app.main:app --host 0.0.0.0 --port 9123"


@pytest.mark.server
@pytest.mark.timeout(120)
def test_every_quickstart_command_succeeds_against_make_run(tmp_path: Path) -> None:
    """1. the server `make run` starts, on a free port; 2. each command of the Quickstart, as
    written (its port and `.venv/bin/` aside), exits 0: curl fails on any HTTP error, the
    CLI on anything but ready, listed or drained; 3. after the drain, the server exits by
    itself, as the Quickstart says."""
    commands = console_commands(section("Quickstart"))
    assert commands[0] == "make run", commands
    assert len(commands) >= 4, commands
    port = free_port()
    server = ServerProcess("app.main:app", tmp_path=tmp_path)
    server.port, server.base_url = port, f"http://127.0.0.1:{port}"
    server.command = make_run(port)
    # No setting of the test's: the demo as it ships, its queue and token in tmp_path.
    server.env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("ASGI_SUPERVISOR_")},
        "PYTHONUNBUFFERED": "1",
        "APP_DATABASE_URL": f"sqlite:///{tmp_path}/queue.sqlite3",
        "ASGI_SUPERVISOR_RUNTIME_DIR": str(tmp_path / "run"),
    }
    with server:
        for command in commands[1:]:
            assert "8000" in command, command
            line = command.replace("8000", str(port)).replace(".venv/bin/", f"{BIN}/")
            result = subprocess.run(
                ["bash", "-c", line], cwd=REPO, env=server.env, capture_output=True,
                text=True, timeout=60, check=False,
            )  # fmt: skip
            assert result.returncode == 0, f"$ {command}\n{result.stdout}{result.stderr}"
        server.wait_exit(timeout=30)


def _shape(line: str) -> str:
    """*line* with what differs between runs and machines made the same: durations, pids,
    ports, the user id in the runtime folder and the network namespace."""
    line = re.sub(r"\b\d+\.\d+ s\b", "<seconds> s", line)
    line = re.sub(r"\[\d+\]", "[<pid>]", line)
    line = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", line)
    line = re.sub(r"\bport \d+", "port <port>", line)
    line = re.sub(r"asgi-supervisor-\d+", "asgi-supervisor-<uid>", line)
    return re.sub(r"-net\d+/", "-net<ns>/", line)  # the network namespace


@pytest.mark.server
@pytest.mark.timeout(90)
def test_the_example_logs_what_the_readme_shows(tmp_path: Path) -> None:
    """1. the README's example, saved as main.py, under a plain ``uvicorn main:app`` (no
    logging configured, the default runtime folder); 2. POST /emails, then Ctrl-C (SIGINT)
    at once; 3. every line printed is the README's, in its order, once durations, pids,
    ports and the user's id are set aside: the counts of the report included."""
    (tmp_path / "main.py").write_text(marked_block("example: main.py"))
    expected = [_shape(line) for line in marked_block("output: main.py").splitlines()]
    server = ServerProcess("main:app", tmp_path=tmp_path)
    server.command = [sys.executable, "-m", "uvicorn", "main:app", "--port", str(server.port)]
    moved = ("ASGI_SUPERVISOR_", "XDG_RUNTIME_DIR", "PYTHONPATH")
    server.env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(moved)},
        "PYTHONPATH": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
    }
    # No readiness polls (each would add an access line): the token's line says it serves.
    try:
        server.start(wait_live=False)
        wait_printed(server, "asgi_supervisor: the local admin token for ", within=30)
        response = subprocess.run(
            ["curl", "-fsS", "-X", "POST", f"{server.base_url}/emails?address=a@b.c"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
        assert response.stdout == '{"status":"queued"}'
        server.signal(signal.SIGINT)
        server.wait_exit(timeout=30)
    finally:
        server.stop()
    printed = [_shape(line) for line in server.output().splitlines()]
    assert printed == expected, "\n".join(printed)


def wait_printed(server: ServerProcess, text: str, *, within: float) -> None:
    """Return once *server* has printed *text*; fail with its output after *within* s."""
    deadline = time.monotonic() + within
    while text not in server.output():
        assert server.process is not None
        assert server.process.poll() is None, server.output()
        assert time.monotonic() < deadline, f"no {text!r} within {within} s:\n{server.output()}"
        time.sleep(0.05)
