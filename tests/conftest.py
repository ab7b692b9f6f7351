"""Shared fixtures: an in-process supervisor that never touches signals or exits, and a
throwaway PostgreSQL cluster for the demo queue's tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from blockbuster import BlockBuster, blockbuster_ctx
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


# Where a blocking call on the event loop is allowed, by file and function: each entry says
# what blockbuster found there and why it stays for now.
_MAY_BLOCK: list[tuple[str, set[str]]] = [
    # Test code that blocks the loop on purpose: a route waiting for a second TestClient,
    # which serves on its own loop in another thread.
    ("tests/asgi/test_transparency.py", {"outer"}),
    # Found by blockbuster, left to the rewrite of the cross-process channels (branch
    # 17-one-channel); remove each entry once that branch is merged:
    # - os.stat, os.open, os.unlink of the token file's lock and folder, on the loop, when
    #   the local token is released at the end of a lifespan;
    ("asgi_supervisor/_admin/local_token.py", {"aclose"}),
    # - os.stat and os.mkdir of the runtime folder (`runtime_dir.locate`) when `LocalTokens`
    #   is made inside a running loop (tests do; the middleware makes it at import time);
    ("asgi_supervisor/_admin/local_token.py", {"__init__"}),
    # - io.BufferedReader.read of the token file by `find_token`, the command line's, which
    #   runs with no loop; a test calls it from a coroutine;
    ("asgi_supervisor/_admin/local_token.py", {"find_token"}),
    # - os.readlink of /proc/self/ns/net (`proc.network_namespace`) and the socket folder's
    #   os.stat and os.mkdir when the process group is joined, os.scandir of the folder at
    #   each broadcast (`channel.siblings`), os.unlink of our socket when leaving, all on
    #   the loop;
    ("asgi_supervisor/_group/membership.py", {"_join", "_broadcast", "close"}),
    # - os.mkdir, os.write, os.replace, os.unlink of the metrics snapshot files, on the loop,
    #   by the snapshot publisher and when it is closed at the end of a lifespan;
    ("asgi_supervisor/_observe/metrics_group.py", {"publish", "aclose"}),
    # - the same, by a test that writes its peers' snapshot files directly;
    (
        "tests/observe/test_metrics_group.py",
        {"test_a_scrape_merges_live_peers_and_drops_dead_and_stale_ones"},
    ),
    # - os.listdir and os.readlink of /proc (`proc.listening_ports`, `network_namespace`),
    #   by tests that ask what the group will find.
    (
        "tests/group/test_membership.py",
        {
            "test_a_newcomer_learns_of_a_drain_begun_before_it_joined",
            "test_token_files_and_group_sockets_share_the_runtime_dir_set_in_code",
        },
    ),
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
