"""The middleware is invisible to the app and its tests: lifespan errors, test clients, loops.

Each test pins what the app, its server, Starlette's TestClient or a lifespan driver would
see without the middleware, and checks they see the same with it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from asgi_supervisor import Supervisor, SupervisorMiddleware
from asgi_supervisor.exceptions import StartupError
from asgi_supervisor.testing import LifespanManager
from tests._inprocess import quiet_supervisor
from tests.apps import hello

pytestmark = pytest.mark.timeout(30)


def app_with(supervisor: Supervisor, lifespan: Any = None) -> SupervisorMiddleware:
    return SupervisorMiddleware(
        Starlette(routes=[Route("/", hello)], lifespan=lifespan), supervisor=supervisor
    )


async def test_an_exception_raised_on_the_lifespan_scope_reaches_the_server() -> None:
    """A raw app that raises after the startup message: the driver sees that very error."""

    async def raw(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()
            raise LookupError("no config")

    supervisor = quiet_supervisor()
    with pytest.raises(LookupError, match="no config"):
        async with LifespanManager(SupervisorMiddleware(raw, supervisor=supervisor)):
            pass


def test_test_client_after_its_block_serves_as_before_any_lifespan() -> None:
    """After `with TestClient(app):` ends, requests are served, not answered 503."""
    supervisor = quiet_supervisor()
    app = app_with(supervisor)
    client = TestClient(app)
    assert client.get("/").status_code == 200  # before any lifespan
    with client:
        assert client.get("/").status_code == 200
    after = client.get("/")
    assert (after.status_code, after.text) == (200, "hello")
    with client:  # and a second lifespan starts afresh
        assert client.get("/_supervisor/health/ready").status_code == 200


def test_a_worker_failing_at_startup_fails_the_test_client_instead_of_hanging() -> None:
    """Starlette's TestClient gets the startup failure raised, naming the worker."""
    supervisor = quiet_supervisor()
    torn_down = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        torn_down.append(True)

    async def broken() -> None:
        raise ConnectionError("no broker")

    supervisor.add_worker(broken, name="consumer")
    client = TestClient(app_with(supervisor, lifespan))
    outcome: list[BaseException] = []

    def enter() -> None:
        try:
            with client:
                pass
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=enter, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "TestClient hung on a failed startup"
    assert len(outcome) == 1
    assert isinstance(outcome[0], StartupError)
    assert "worker 'consumer' failed while starting" in str(outcome[0])
    assert torn_down == [True]  # the app's own shutdown still ran


def test_requests_from_a_second_test_client_on_another_loop_are_served() -> None:
    """A request on another event loop (a second TestClient in another thread), made while
    a request of the lifespan's loop is running, is served and leaves that request intact."""
    supervisor = quiet_supervisor()
    answers: list[int] = []
    app: SupervisorMiddleware

    def second_client() -> None:
        answers.append(TestClient(app).get("/").status_code)

    async def outer(request: Request) -> Response:
        # The lifespan loop is busy running this very request while the other loop serves.
        thread = threading.Thread(target=second_client)
        thread.start()
        thread.join(timeout=10)
        return PlainTextResponse("outer")

    app = SupervisorMiddleware(
        Starlette(routes=[Route("/", hello), Route("/outer", outer)]), supervisor=supervisor
    )
    with TestClient(app) as first:
        assert first.get("/outer").status_code == 200
        assert answers == [200]
        assert supervisor.counts()["requests"] == 0


def test_one_supervisor_around_an_app_and_its_mounted_sub_app() -> None:
    """The same supervisor wrapping an app and a sub-app mounted in it serves both, and a
    request through both is counted once."""
    supervisor = quiet_supervisor()
    inner = SupervisorMiddleware(Starlette(routes=[Route("/", hello)]), supervisor=supervisor)
    outer = SupervisorMiddleware(
        Starlette(routes=[Route("/", hello), Mount("/sub", app=inner)]), supervisor=supervisor
    )
    with TestClient(outer) as client:
        assert client.get("/sub/").status_code == 200
        assert client.get("/").status_code == 200
        assert supervisor.counts()["requests"] == 0
    report = supervisor.last_report
    assert report is not None
    assert report.requests_drained_count == 0


async def test_a_routine_lifespan_shutdown_logs_at_info(caplog: pytest.LogCaptureFixture) -> None:
    """Nothing at WARNING or above when a lifespan simply ends: users' caplog tests pass."""
    caplog.set_level(logging.DEBUG, logger="asgi_supervisor")
    supervisor = quiet_supervisor()
    async with LifespanManager(app_with(supervisor)):
        pass
    assert "draining: lifespan shutdown" in caplog.text
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
