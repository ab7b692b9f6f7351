"""Shared fixtures: an in-process supervisor that never touches signals or exits, and a
throwaway PostgreSQL cluster for the demo queue's tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from asgi_supervisor import Supervisor, SupervisorMiddleware
from tests._postgres import PostgresNotInstalled, PostgresServer


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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the whole session (started on first use, stopped at the
    end); fails in CI and skips elsewhere when PostgreSQL is not installed."""
    try:
        server = PostgresServer()
    except PostgresNotInstalled as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    with server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a new, empty database on the session's PostgreSQL."""
    return postgres_server.create_database()


@pytest.fixture(params=["sqlite", "postgresql"])
def queue_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh demo queue's URL: a SQLite file, or a new database on the session's PostgreSQL
    (a test using it runs once per backend)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'q.sqlite3'}"
    url: str = request.getfixturevalue("postgres_url")
    return url
