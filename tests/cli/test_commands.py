"""The command line's output, in-process: what it prints from the server's answers."""

from __future__ import annotations

import io
from typing import Any

import pytest

from asgi_supervisor._cli import commands
from asgi_supervisor.testing import LifespanManager
from tests._inprocess import TOKEN, client
from tests.conftest import bare_app, quiet_supervisor


async def test_drain_prints_the_line_the_report_writes_of_itself(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """1. a real /drain answer; 2. `asgi-supervisor drain` given it prints the state, whether
    drained, and the report's own line (its ``summary``), then this process's line."""
    supervisor = quiet_supervisor(admin_token=TOKEN)
    app = bare_app(supervisor)
    async with LifespanManager(app), client(app) as http:
        body: dict[str, Any] = (await http.post("/drain")).json()
    summary = body["report"]["summary"]
    assert summary.startswith("drain endpoint, ")
    monkeypatch.setattr(commands, "_request", lambda args, path, **_: (200, body))
    out = io.StringIO()
    assert commands.main(["drain", "http://127.0.0.1:1"], out=out) == commands.OK
    first, own = out.getvalue().splitlines()
    assert first == f"state={body['state']} drained=True: {summary}"
    assert own.startswith(f"  pid={body['processes'][0]['pid']} state=")
