"""Settings that would leave requests in flight no time are refused, or warned about at startup."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from asgi_supervisor import Config
from asgi_supervisor._host import server_facts
from asgi_supervisor._host.server_facts import ServerFacts
from asgi_supervisor._supervisor import budget
from asgi_supervisor.testing import LifespanManager
from tests._inprocess import bare_app, quiet_supervisor


@pytest.fixture(autouse=True)
def no_server_facts(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts outside Kubernetes, and starts and leaves the process with no server
    integration registered."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    server_facts._facts = None
    yield
    server_facts._facts = None


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        (
            # The README's servers table once said so: a 3 s request was cut at 1.5 s.
            {"grace_period": 6, "shutdown_delay": 1, "cancel_timeout": 5},
            r"^grace_period=6 - shutdown_delay=1 - cancel_timeout=5 leaves 0 s for the "
            r"requests in flight to finish once new ones are refused, less than 1 s: they "
            r"would be cancelled and answered 503\. Raise grace_period to 7 or more, lower "
            r"cancel_timeout to 4 or less or lower shutdown_delay\.$",
        ),
        (
            {"grace_period": 1.0, "shutdown_delay": 0, "cancel_timeout": 0.5},
            r"^grace_period=1 - shutdown_delay=0 - cancel_timeout=0\.5 leaves 0\.5 s .* less "
            r"than 1 s: .* Raise grace_period to 1\.5 or more\.$",
        ),
        (
            {"grace_period": 10, "shutdown_delay": 4, "cancel_timeout": 3},
            r"^grace_period=10 - shutdown_delay=4 - cancel_timeout=3 leaves 3 s .* less than "
            r"the 4 s the balancers get: .* Raise grace_period to 11 or more, lower "
            r"cancel_timeout to 2 or less or lower shutdown_delay\.$",
        ),
        (
            # shutdown_delay=None is 0 s outside Kubernetes: the floor holds everywhere.
            {"grace_period": 5, "cancel_timeout": 4.5},
            r"^grace_period=5 - shutdown_delay=0 - cancel_timeout=4\.5 leaves 0\.5 s",
        ),
    ],
)
def test_a_short_closing_budget_is_refused_with_the_arithmetic(
    settings: dict[str, Any], match: str
) -> None:
    """Each refusal shows grace_period - shutdown_delay - cancel_timeout and what would do."""
    with pytest.raises(ValueError, match=match):
        Config(**settings)


@pytest.mark.parametrize(
    "settings",
    [
        {"grace_period": 7, "shutdown_delay": 1, "cancel_timeout": 5},  # 1 s, the floor
        {"grace_period": 11, "shutdown_delay": 4, "cancel_timeout": 3},  # 4 s, the delay
        {"grace_period": 1.5, "shutdown_delay": 0, "cancel_timeout": 0.5},
        {},  # the defaults: 25 - 0 - 5, or 25 - 5 - 5 in Kubernetes
    ],
)
def test_a_closing_budget_at_the_bounds_is_accepted(settings: dict[str, Any]) -> None:
    """A budget of exactly 1 s, or exactly the shutdown delay, is enough."""
    config = Config(**settings)
    delay = config.shutdown_delay or 0.0
    assert config.grace_period - delay - config.cancel_timeout >= max(1.0, delay)


def test_kubernetes_automatic_delay_that_eats_the_budget_is_warned_at_startup(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """1. shutdown_delay=None with grace_period=8, cancel_timeout=5 is accepted (0 s delay
    here); 2. in Kubernetes it is 3 s, leaving 0 s: the startup warns with the arithmetic."""
    config = Config(grace_period=8, cancel_timeout=5)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    with caplog.at_level(logging.WARNING, logger="asgi_supervisor"):
        budget.warn_at_startup(config)
    assert [record.getMessage() for record in caplog.records] == [
        "grace_period=8 - shutdown_delay=3 - cancel_timeout=5 leaves 0 s for the requests in "
        "flight to finish once new ones are refused, less than the 3 s the balancers get: "
        "they would be cancelled and answered 503. shutdown_delay=None is 3 s in Kubernetes "
        "(KUBERNETES_SERVICE_HOST is set): set shutdown_delay to the seconds your load "
        "balancers need, or raise grace_period to 11 or more."
    ]


def test_kubernetes_default_delay_with_the_default_budget_says_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The defaults in Kubernetes, 25 - 5 - 5, leave 15 s: no warning."""
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    with caplog.at_level(logging.WARNING, logger="asgi_supervisor"):
        budget.warn_at_startup(Config())
    assert caplog.records == []


async def test_the_lifespan_startup_gives_the_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The warning comes from a real lifespan startup, once, before ``ready``."""
    supervisor = quiet_supervisor(grace_period=8.0, cancel_timeout=5.0, shutdown_delay=None)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    with caplog.at_level(logging.INFO, logger="asgi_supervisor"):
        async with LifespanManager(bare_app(supervisor)):
            pass
    messages = [record.getMessage() for record in caplog.records]
    warned = [i for i, m in enumerate(messages) if "leaves 0 s for the requests" in m]
    assert len(warned) == 1, messages
    assert warned[0] < messages.index("ready")


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
    server_facts.register(gunicorn(kill_timeout))
    with caplog.at_level(logging.WARNING, logger="asgi_supervisor"):
        budget.warn_at_startup(Config())
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


def test_a_kill_within_the_closing_budget_says_requests_are_killed_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """gunicorn kills 3 s after SIGTERM; with a 2 s shutdown delay the requests in flight get
    1 s at most instead of 4 s: the one warning says so, with the arithmetic."""
    server_facts.register(gunicorn(3.0))
    config = Config(grace_period=10, shutdown_delay=2, cancel_timeout=4)
    with caplog.at_level(logging.WARNING, logger="asgi_supervisor"):
        budget.warn_at_startup(config)
    assert [record.getMessage() for record in caplog.records] == [
        "gunicorn's --graceful-timeout is 3 s, shorter than grace_period=10 s plus a 2 s "
        "margin: gunicorn kills this process before the shutdown ends, and the app's own "
        "shutdown never runs; the requests in flight get 1 s after shutdown_delay=2 before "
        "the kill, less than the 2 s they need, so they are killed too. Set "
        "--graceful-timeout to 12 or more, or lower grace_period."
    ]
