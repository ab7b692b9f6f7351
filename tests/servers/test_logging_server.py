"""What an operator sees on a real server's output: with no logging configuration of the app's
own, the drain's phases and the report show in the server's format; with the docs' JSON
setup, every line is JSON and carries the structured fields."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.servers._process import REPO, ServerProcess

pytestmark = [pytest.mark.server, pytest.mark.timeout(60)]

APP = "tests.servers.served:app"
NO_LOGGING_CONFIG = {"TEST_LOGGING": "none"}


def stop_and_read(server: ServerProcess) -> str:
    """SIGTERM, wait (bounded) for the exit, and return everything the server printed."""
    server.signal(signal.SIGTERM)
    server.wait_exit(timeout=20)
    return server.output()


@pytest.mark.parametrize(
    ("server_name", "prefix"),
    [
        ("uvicorn", r"(INFO|WARNING): +"),  # uvicorn's "%(levelprefix)s %(message)s"
        ("hypercorn", r"\[[^]]+\] \[\d+\] \[(INFO|WARNING)\] "),  # "[time] [pid] [LEVEL] msg"
    ],
)
def test_a_plain_server_shows_the_phases_and_the_report(
    tmp_path: Path, server_name: str, prefix: str
) -> None:
    """1. the app configures no logging; 2. SIGTERM; 3. the drain's phase lines and the
    report, as one readable line, are in the server's output, once each, in its format."""
    with ServerProcess(APP, tmp_path=tmp_path, server=server_name, env=NO_LOGGING_CONFIG) as server:
        output = stop_and_read(server)
    expected = [
        r"asgi_supervisor: draining: signal SIGTERM;.*$",
        r"asgi_supervisor: closing: refusing new requests$",
        r"asgi_supervisor: shutdown report: signal SIGTERM, clean, \d+\.\d\d s: draining "
        r"\d+\.\d\d s, closing .*; requests drained 0, rejected 0, cancelled 0, cut mid-body "
        r"0; streams ended at the notice 0; websockets closed 0, cancelled 0; tasks finished "
        r"\d+, cancelled \d+, failed 0, "
        r"cut short 0, abandoned 0$",
    ]
    for line in expected:
        assert len(re.findall(f"^{prefix}{line}", output, re.MULTILINE)) == 1, output
    assert "{'trigger'" not in output  # no dict repr


def docs_json_logging_example() -> str:
    """The JSON logging setup of docs/logging.md, as a user would copy it."""
    page = (REPO / "docs" / "logging.md").read_text()
    blocks: list[str] = re.findall(r"```python[^\n]*\n(.*?)```", page, re.DOTALL)
    (block,) = [block for block in blocks if "class JsonFormatter" in block]
    return block


def test_the_docs_json_logging_example_works_under_uvicorn(tmp_path: Path) -> None:
    """1. an app imports the docs' JSON setup first; 2. SIGTERM; 3. every line uvicorn
    and the supervisor print is JSON; 4. the supervisor's records carry their `extra=`
    fields, the report its whole dict; 5. nothing is printed twice."""
    (tmp_path / "logging_setup.py").write_text(docs_json_logging_example())
    (tmp_path / "json_app.py").write_text(
        "import logging_setup  # noqa: F401  (first: configure logging)\n"
        "from tests.servers.served import app  # noqa: F401\n"
    )
    env = {**NO_LOGGING_CONFIG, "PYTHONPATH": f"{tmp_path}{os.pathsep}{REPO}"}
    with ServerProcess("json_app:app", tmp_path=tmp_path, env=env) as server:
        output = stop_and_read(server)
    lines = [line for line in output.splitlines() if line.strip()]
    entries: list[dict[str, Any]] = [json.loads(line) for line in lines]  # raises if not JSON
    ours = [entry for entry in entries if entry["logger"] == "asgi_supervisor"]
    (closing,) = [entry for entry in ours if entry["message"].startswith("closing:")]
    assert closing["state"] == "closing"
    (report,) = [entry for entry in ours if entry["message"].startswith("shutdown report:")]
    assert report["level"] == "INFO"
    assert report["report"]["trigger"] == "signal SIGTERM"
    assert [phase["name"] for phase in report["report"]["phases"]][:2] == ["draining", "closing"]
    assert any(entry["logger"].startswith("uvicorn") for entry in entries)
