"""The command line, in-process: what it prints from the server's answers, and its own checks
(a token or URL that cannot be sent is a usage error)."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import pytest

from asgi_supervisor._cli import commands
from asgi_supervisor.testing import LifespanManager
from tests._inprocess import TOKEN, bare_app, client, quiet_supervisor
from tests.servers._process import free_port


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
    # The command line runs with no event loop (it reads files and argparse stats them).
    status = await asyncio.to_thread(commands.main, ["drain", "http://127.0.0.1:1"], out)
    assert status == commands.OK
    first, own = out.getvalue().splitlines()
    assert first == f"state={body['state']} drained=True: {summary}"
    assert own.startswith(f"  pid={body['processes'][0]['pid']} state=")


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["--token", "s3c\nret"], {}, "asgi-supervisor: --token contains '\\n'"),
        (["--token", "sécret"], {}, "asgi-supervisor: --token contains 'é'"),
        (["--token", "  "], {}, "asgi-supervisor: --token is empty"),
        (
            [],
            {"ASGI_SUPERVISOR_ADMIN_TOKEN": "a\rb"},
            "asgi-supervisor: ASGI_SUPERVISOR_ADMIN_TOKEN contains",
        ),
    ],
)
def test_cli_turns_a_bad_token_into_a_usage_error(
    argv: list[str],
    environ: dict[str, str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A token that cannot go in a header is exit 2 with a sentence, never a traceback."""
    monkeypatch.delenv("ASGI_SUPERVISOR_ADMIN_TOKEN", raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    url = f"http://127.0.0.1:{free_port()}"
    assert commands.main(["drain", url, "--timeout", "2", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_cli_turns_a_bad_url_into_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A URL with a control character is exit 2 with a sentence, not a traceback."""
    assert commands.main(["tasks", "http://127.0.0.1:1/a b\n", "--token", "x"]) == 2
    assert "cannot send a request to" in capsys.readouterr().err
