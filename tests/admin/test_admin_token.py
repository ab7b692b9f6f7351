"""The admin token: one validator for the server's setting and the command line's token."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from asgi_supervisor import Config
from asgi_supervisor._admin.admin_token import admin_token, admin_token_from_variable
from asgi_supervisor._admin.local_token import FoundToken
from asgi_supervisor._cli import commands

BAD = [
    ("", r"is empty \(or only whitespace\); set it to the admin token"),
    (" \n\t", r"is empty \(or only whitespace\)"),
    ("s3c ret", r"contains ' ', which cannot be sent in an HTTP Authorization header"),
    ("s3c\nret", r"contains '\\n', which cannot be sent"),
    ("sécret", r"contains 'é', which cannot be sent"),
]


@pytest.mark.parametrize(("raw", "match"), BAD)
def test_a_token_that_cannot_work_is_refused_naming_its_source(raw: str, match: str) -> None:
    """Empty, or with a character a header cannot carry: a ValueError whose sentence starts
    with where the token came from."""
    with pytest.raises(ValueError, match=rf"^--token {match}"):
        admin_token(raw, source="--token")


def test_surrounding_whitespace_is_not_part_of_the_token() -> None:
    """A mounted secret ends in a newline: it is stripped, wherever the token comes from."""
    assert admin_token(" s3cret\n", source="admin_token") == "s3cret"
    assert admin_token_from_variable("s3cret\n") == "s3cret"


def test_the_variable_set_to_none_means_no_token() -> None:
    """Unset, or 'none' in any case: no token; anything else is validated, naming the
    variable."""
    assert admin_token_from_variable(None) is None
    assert admin_token_from_variable(" None\n") is None
    with pytest.raises(ValueError, match=r"^ASGI_SUPERVISOR_ADMIN_TOKEN is empty"):
        admin_token_from_variable(" \n")


def test_a_token_of_another_type_is_a_type_error() -> None:
    """A bytes token is a TypeError naming the type."""
    with pytest.raises(TypeError, match=r"admin_token must be a str or None, not bytes"):
        admin_token(b"s3cret", source="admin_token")


@pytest.mark.parametrize(("raw", "match"), BAD)
def test_the_server_and_the_command_line_refuse_a_token_with_one_sentence(
    raw: str,
    match: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same bad variable is refused by `Config.from_env` and by the command (exit 2),
    with the same sentence, which names the variable."""
    monkeypatch.setenv("ASGI_SUPERVISOR_ADMIN_TOKEN", raw)
    with pytest.raises(ValueError, match=match) as refused:
        Config.from_env({"ASGI_SUPERVISOR_ADMIN_TOKEN": raw})
    assert str(refused.value).startswith("ASGI_SUPERVISOR_ADMIN_TOKEN ")
    assert commands.main(["tasks", "http://127.0.0.1:1"]) == commands.USAGE
    assert capsys.readouterr().err == f"asgi-supervisor: {refused.value}\n"


def test_the_command_line_reads_the_variable_set_to_none_as_unset(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ASGI_SUPERVISOR_ADMIN_TOKEN=none turns the server's admin token off; the command, run
    with the same environment (a preStop exec), then uses the local token file, as it does
    with the variable unset, instead of sending 'none'."""
    monkeypatch.setenv("ASGI_SUPERVISOR_ADMIN_TOKEN", "none")
    found = FoundToken(
        "local-s3cret", Path("/run/token"), "127.0.0.1", frozenset({0}), (Path("/run"),), ()
    )
    monkeypatch.setattr(commands, "find_token", lambda addresses, port, environ: found)
    sent: list[str | None] = []

    def send(
        url: str, method: str, token: str | None, timeout: float, handlers: object = ()
    ) -> tuple[int, bytes]:
        sent.append(token)
        return 200, json.dumps({"state": "ready", "tasks": [], "count": 0, "total": 0}).encode()

    monkeypatch.setattr(commands, "_send", send)
    assert commands.main(["tasks", "http://127.0.0.1:8000"], out=io.StringIO()) == commands.OK
    assert sent == ["local-s3cret"]
