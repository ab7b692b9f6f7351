"""The command line's conventions: --version, --help with the exit statuses and timeouts,
usage errors as exit 2 (in JSON too, with --json), and the options /tasks has."""

from __future__ import annotations

import importlib.metadata
import io
import json

import pytest

from asgi_supervisor._cli import commands
from asgi_supervisor._cli.output import EXIT_CODES
from asgi_supervisor._cli.parser import TIMEOUTS, parser


def run(*argv: str) -> tuple[int, str]:
    """Exit status and stdout of the command with *argv*."""
    out = io.StringIO()
    return commands.main(list(argv), out=out), out.getvalue()


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    """`--version` prints the distribution's version and exits 0."""
    assert commands.main(["--version"]) == 0
    assert (
        capsys.readouterr().out
        == f"asgi-supervisor {importlib.metadata.version('asgi-supervisor')}\n"
    )


def test_help_lists_every_exit_status_and_each_default_timeout(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--help` names each exit status with its meaning and each command's timeout, and each
    command's help gives its own default."""
    assert commands.main(["--help"]) == 0
    text = capsys.readouterr().out
    for code, (_, words) in EXIT_CODES.items():
        assert f"  {code}  {words}" in text
    assert "drain 60 s, tasks 10 s, health 10 s" in text
    for name in ("drain", "tasks", "health", "open"):
        assert name in text
    for name, seconds in TIMEOUTS.items():
        assert commands.main([name, "--help"]) == 0
        assert f"(default: {seconds:g})" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    "argv",
    [
        ["frobnicate", "http://127.0.0.1:1"],
        ["tasks"],
        ["tasks", "http://127.0.0.1:1", "--limit", "0"],
        ["tasks", "http://127.0.0.1:1", "--limit", "10001"],
        ["tasks", "http://127.0.0.1:1", "--offset", "-1"],
        ["tasks", "http://127.0.0.1:1", "--kind", "thread"],
        ["drain", "http://127.0.0.1:1", "--timeout", "nan"],
        ["drain", "http://127.0.0.1:1", "--timeout", "0"],
    ],
)
def test_a_usage_error_is_exit_2_on_stderr_and_one_document_with_json(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad command or option: exit 2, the usage and a sentence on stderr, nothing sent;
    with --json, also one document saying so on stdout."""
    assert commands.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "usage: asgi-supervisor" in captured.err
    assert "(see `asgi-supervisor" in captured.err
    status, out = run(*argv, "--json")
    assert status == 2
    document = json.loads(out)
    assert (document["exit"], document["outcome"], document["command"]) == (2, "usage", None)
    assert "error" in document


def test_tasks_offers_the_filters_of_the_endpoint() -> None:
    """`tasks` takes every parameter /tasks takes: kind, state, name, limit, offset, stack,
    all; health takes no filter."""
    filters = ["--kind", "untracked", "--state", "running", "--name", "job", "--limit", "5"]
    args = parser().parse_args(
        ["tasks", "http://h", *filters, "--offset", "10", "--stack", "--all"]
    )
    given = (args.kind, args.state, args.name, args.limit, args.offset, args.stack, args.all)
    assert given == ("untracked", "running", "job", 5, 10, True, True)
    assert parser().parse_args(["tasks", "http://h"]).limit == 100
    assert parser().parse_args(["tasks", "http://h", "--name", "x"]).command == "tasks"
    assert not hasattr(parser().parse_args(["health", "http://h"]), "kind")
    assert not hasattr(parser().parse_args(["open", "http://h"]), "timeout")
