"""The command line's own checks: a token or URL that cannot be sent is a usage error."""

from __future__ import annotations

import pytest

from asgi_supervisor._cli.commands import main
from tests.servers._process import free_port


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["--token", "s3c\nret"], {}, "the token from --token contains '\\n'"),
        (["--token", "sécret"], {}, "the token from --token contains 'é'"),
        (["--token", "  "], {}, "the token from --token is empty"),
        ([], {"ASGI_SUPERVISOR_ADMIN_TOKEN": "a\rb"}, "from ASGI_SUPERVISOR_ADMIN_TOKEN contains"),
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
    assert main(["drain", url, "--timeout", "2", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_cli_turns_a_bad_url_into_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A URL with a control character is exit 2 with a sentence, not a traceback."""
    assert main(["tasks", "http://127.0.0.1:1/a b\n", "--token", "x"]) == 2
    assert "cannot send a request to" in capsys.readouterr().err
