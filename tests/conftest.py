"""Shared fixtures: an in-process supervisor that never touches signals or exits, and a
throwaway PostgreSQL cluster for the demo queue's tests.

The helpers behind them live in `tests._inprocess`; test modules import them from there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from blockbuster import BlockBuster, blockbuster_ctx

from asgi_supervisor import Supervisor
from tests._inprocess import quiet_supervisor
from tests._postgres import PostgresNotInstalled, PostgresServer

# Where a blocking call on the event loop is allowed, by file and function: each entry says
# what blockbuster found there and why it stays for now.
_MAY_BLOCK: list[tuple[str, set[str]]] = [
    # Test code that blocks the loop on purpose: a route waiting for a second TestClient,
    # which serves on its own loop in another thread.
    ("tests/asgi/test_transparency.py", {"outer"}),
]


@pytest.fixture(autouse=True)
def blockbuster(request: pytest.FixtureRequest) -> Iterator[BlockBuster | None]:
    """Every in-process test runs under blockbuster: a blocking call on the event loop made
    from the library or the demo app fails the test (Starlette's own suite does the same),
    except where `_MAY_BLOCK` says why not yet."""
    if request.node.get_closest_marker("server") is not None:
        yield None  # real servers run in their own processes; this one only drives them
        return
    with blockbuster_ctx(["asgi_supervisor", "app"]) as detector:
        for function in detector.functions.values():
            for filename, functions in _MAY_BLOCK:
                function.can_block_in(filename, functions)
        yield detector


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
