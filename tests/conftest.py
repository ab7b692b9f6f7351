"""Shared fixtures: an in-process supervisor that never touches signals or exits."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette

from asgi_supervisor import Supervisor, SupervisorMiddleware


def quiet_supervisor(**settings: Any) -> Supervisor:
    """A supervisor for in-process tests: no signal handlers, no watchdog, no loop-lag thread,
    no process group and no local token file (nothing written outside the test, and pytest's
    own listening sockets must not get one), short deadlines."""
    defaults: dict[str, Any] = {
        "grace_period": 3.0,
        "cancel_timeout": 1.0,
        "shutdown_delay": 0.0,
        "handle_signals": False,
        "watchdog": False,
        "local_token": False,
        "loop_lag_threshold": None,
        "process_group": False,
    }
    return Supervisor(**{**defaults, **settings})


def bare_app(supervisor: Supervisor) -> SupervisorMiddleware:
    """An empty Starlette app wrapped in the middleware."""
    return SupervisorMiddleware(Starlette(), supervisor=supervisor)


@pytest.fixture
def supervisor() -> Supervisor:
    """A quiet supervisor (see `quiet_supervisor`)."""
    return quiet_supervisor()
