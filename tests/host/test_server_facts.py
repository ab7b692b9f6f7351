"""What a server integration tells the supervisors: the kill timeout and listener handover."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from asgi_supervisor._host import server_facts as _server_facts
from asgi_supervisor._host.server_facts import (
    KillTimeout,
    ServerFacts,
    kill_timeout,
    listener_taken_over,
    register,
)


@pytest.fixture(autouse=True)
def no_facts() -> Iterator[None]:
    """Each test starts, and leaves the process, with no server registered."""
    _server_facts._facts = None
    yield
    _server_facts._facts = None


def test_the_kill_timeout_is_what_the_integration_registered() -> None:
    """The kill timeout reads back with the server's name and setting (the budget's warning
    names them, see tests/supervisor/test_budget.py)."""
    register(
        ServerFacts(server="gunicorn", kill_timeout=3.0, kill_timeout_setting="--graceful-timeout")
    )
    assert kill_timeout() == KillTimeout("gunicorn", "--graceful-timeout", 3.0)


def test_without_a_server_nothing_is_known_or_taken_over() -> None:
    """No integration registered (plain uvicorn): no kill timeout, and the listener is ours."""
    assert kill_timeout() is None
    assert listener_taken_over() is False


def test_a_probe_that_fails_reads_as_not_taken_over(caplog: pytest.LogCaptureFixture) -> None:
    """A handover probe that raises is logged, and the usual drain (hold the listener) runs."""

    def broken() -> bool:
        raise PermissionError("/proc is not readable")

    register(ServerFacts(server="gunicorn", listener_taken_over=broken))
    assert listener_taken_over() is False
    assert "could not tell whether the listening socket is taken over" in caplog.text
