"""What a server integration tells the supervisors: the kill timeout and listener handover."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from asgi_supervisor._host import server_facts as _server_facts
from asgi_supervisor._host.server_facts import (
    ServerFacts,
    check_kill_timeout,
    listener_taken_over,
    register,
)


@pytest.fixture(autouse=True)
def no_facts() -> Iterator[None]:
    """Each test starts, and leaves the process, with no server registered."""
    _server_facts._facts = None
    yield
    _server_facts._facts = None


def gunicorn(kill_timeout: float) -> ServerFacts:
    return ServerFacts(
        server="gunicorn", kill_timeout=kill_timeout, kill_timeout_setting="--graceful-timeout"
    )


@pytest.mark.parametrize(("kill_timeout", "warned"), [(26.9, True), (27.0, False)])
def test_a_kill_timeout_below_the_grace_period_and_margin_is_named(
    kill_timeout: float, warned: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A kill timeout under grace_period + 2 s warns with both values and the fix; at or
    above it, nothing is said."""
    register(gunicorn(kill_timeout))
    with caplog.at_level(logging.WARNING, logger="asgi_supervisor"):
        check_kill_timeout(25.0)
    messages = [record.getMessage() for record in caplog.records]
    if warned:
        assert messages == [
            "gunicorn's --graceful-timeout is 26.9 s, shorter than grace_period=25 s plus a "
            "2 s margin: gunicorn kills this process before the shutdown ends, and the app's "
            "own shutdown never runs. Set --graceful-timeout to 27 or more, or lower "
            "grace_period."
        ]
    else:
        assert messages == []


def test_without_a_server_nothing_is_checked_or_taken_over(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No integration registered (plain uvicorn): no warning, and the listener is ours."""
    with caplog.at_level(logging.WARNING, logger="asgi_supervisor"):
        check_kill_timeout(25.0)
    assert caplog.records == []
    assert listener_taken_over() is False


def test_a_probe_that_fails_reads_as_not_taken_over(caplog: pytest.LogCaptureFixture) -> None:
    """A handover probe that raises is logged, and the usual drain (hold the listener) runs."""

    def broken() -> bool:
        raise PermissionError("/proc is not readable")

    register(ServerFacts(server="gunicorn", listener_taken_over=broken))
    assert listener_taken_over() is False
    assert "could not tell whether the listening socket is taken over" in caplog.text
