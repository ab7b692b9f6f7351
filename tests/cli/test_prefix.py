"""Where the command line finds the endpoints: the URL's path, --prefix, the variable, or the
server's default prefix."""

from __future__ import annotations

import pytest

from asgi_supervisor import Config
from asgi_supervisor._cli import commands
from asgi_supervisor._cli.prefix import DEFAULT_PREFIX, endpoint_url


def test_the_default_is_the_servers() -> None:
    """The command's default prefix is the server's default `path_prefix`."""
    assert DEFAULT_PREFIX == Config().path_prefix == "/_supervisor"


@pytest.mark.parametrize(
    ("url", "prefix", "environ", "expected"),
    [
        ("http://127.0.0.1:8000", None, {}, "http://127.0.0.1:8000/_supervisor/health/ready"),
        ("http://127.0.0.1:8000/", None, {}, "http://127.0.0.1:8000/_supervisor/health/ready"),
        ("http://127.0.0.1:8000/_ops", None, {}, "http://127.0.0.1:8000/_ops/health/ready"),
        ("http://127.0.0.1:8000/_ops/", None, {}, "http://127.0.0.1:8000/_ops/health/ready"),
        ("http://127.0.0.1:8000", "/_ops", {}, "http://127.0.0.1:8000/_ops/health/ready"),
        ("http://127.0.0.1:8000", "", {}, "http://127.0.0.1:8000/health/ready"),
        ("http://127.0.0.1:8000", "/", {}, "http://127.0.0.1:8000/health/ready"),
        (
            "http://127.0.0.1:8000",
            None,
            {"ASGI_SUPERVISOR_PATH_PREFIX": "/ops"},
            "http://127.0.0.1:8000/ops/health/ready",
        ),
        (
            "http://127.0.0.1:8000",
            "/flag",
            {"ASGI_SUPERVISOR_PATH_PREFIX": "/ops"},
            "http://127.0.0.1:8000/flag/health/ready",
        ),
        (
            "http://127.0.0.1:8000/in-url",
            None,
            {"ASGI_SUPERVISOR_PATH_PREFIX": "/ops"},
            "http://127.0.0.1:8000/in-url/health/ready",
        ),
    ],
)
def test_the_prefix_comes_from_the_url_the_flag_the_variable_or_the_default(
    url: str, prefix: str | None, environ: dict[str, str], expected: str
) -> None:
    """The URL's path wins, then --prefix, then the variable the server reads, then the
    server's default; '' and '/' mean the root."""
    assert endpoint_url(url, "/health/ready", prefix, environ) == expected


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (
            ["http://127.0.0.1:1/_ops", "--prefix", "/_ops"],
            {},
            "has a path, '/_ops', which is taken as the prefix, and --prefix is '/_ops' too",
        ),
        (["http://127.0.0.1:1", "--prefix", "ops"], {}, "--prefix 'ops' must start with '/'"),
        (
            ["http://127.0.0.1:1"],
            {"ASGI_SUPERVISOR_PATH_PREFIX": ""},
            "ASGI_SUPERVISOR_PATH_PREFIX is empty, which the server refuses too",
        ),
    ],
)
def test_a_prefix_that_cannot_be_right_is_a_usage_error(
    argv: list[str],
    environ: dict[str, str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Exit 2 with a sentence before anything is sent."""
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    assert commands.main(["health", *argv]) == commands.USAGE
    assert message in capsys.readouterr().err
