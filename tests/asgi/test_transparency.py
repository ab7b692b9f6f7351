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

import asgi_lifespan
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.testclient import TestClient
from starlette_context.errors import ConfigurationError
from starlette_context.middleware import ContextMiddleware, RawContextMiddleware

from asgi_supervisor import Supervisor, SupervisorMiddleware
from asgi_supervisor.exceptions import StartupError
from asgi_supervisor.testing import LifespanManager
from tests._inprocess import quiet_supervisor
from tests.apps import LIFESPAN_FAULTS, hello

pytestmark = pytest.mark.timeout(30)


def app_with(supervisor: Supervisor, lifespan: Any = None) -> SupervisorMiddleware:
    return SupervisorMiddleware(
        Starlette(routes=[Route("/", hello)], lifespan=lifespan), supervisor=supervisor
    )


def _described(exc: BaseException) -> str:
    cause = exc.__cause__
    because = "" if cause is None else f" (from {type(cause).__name__}: {cause})"
    return f"{type(exc).__name__}: {exc}{because}"


def _through_test_client(app: Any) -> list[str]:
    """What Starlette's TestClient does with *app*: enter, one GET, exit."""
    seen: list[str] = []
    try:
        with TestClient(app) as client:
            seen.append("started")
            seen.append(f"GET / {client.get('/').status_code}")
    except Exception as exc:
        seen.append(_described(exc))
    return seen


async def _through_asgi_lifespan(app: Any) -> list[str]:
    """What asgi-lifespan's LifespanManager does with *app*: enter, one GET, exit."""
    seen: list[str] = []
    try:
        async with asgi_lifespan.LifespanManager(app, startup_timeout=0.5) as manager:
            seen.append("started")
            transport = httpx.ASGITransport(manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                seen.append(f"GET / {(await client.get('/')).status_code}")
    except Exception as exc:
        seen.append(_described(exc))
    return seen


@pytest.mark.parametrize("fault", sorted(LIFESPAN_FAULTS))
def test_test_client_sees_a_lifespan_fault_as_without_the_middleware(fault: str) -> None:
    """Whatever goes wrong on the lifespan scope, before or after the app's first
    `receive()`, TestClient raises (or not) exactly as it does without the middleware."""
    build = LIFESPAN_FAULTS[fault]
    without = _through_test_client(build())
    with_it = _through_test_client(SupervisorMiddleware(build(), supervisor=quiet_supervisor()))
    assert with_it == without


@pytest.mark.parametrize("fault", sorted(LIFESPAN_FAULTS))
async def test_asgi_lifespan_sees_a_lifespan_fault_as_without_the_middleware(fault: str) -> None:
    """Whatever goes wrong on the lifespan scope, asgi-lifespan's LifespanManager raises the
    same error with it as without it: LifespanNotSupported for an error before the app's
    first `receive()`, the app's own error after it."""
    build = LIFESPAN_FAULTS[fault]
    without = await _through_asgi_lifespan(build())
    app = SupervisorMiddleware(build(), supervisor=quiet_supervisor())
    assert await _through_asgi_lifespan(app) == without


def test_a_middleware_whose_constructor_raises_fails_the_test_client() -> None:
    """Starlette builds its middleware stack on the lifespan scope: the constructor's error
    fails the startup, as without the middleware, and nothing is served 500 instead."""
    app = SupervisorMiddleware(
        LIFESPAN_FAULTS["middleware_raises"](), supervisor=quiet_supervisor()
    )
    with pytest.raises(RuntimeError, match="BROKER_URL is not set"), TestClient(app):
        pass


@pytest.mark.parametrize("context_middleware", [ContextMiddleware, RawContextMiddleware])
def test_starlette_context_given_a_wrong_plugin_fails_the_test_client(
    context_middleware: type[ContextMiddleware | RawContextMiddleware],
) -> None:
    """starlette-context's own check (its sdists carry no tests, so the peer harness cannot
    run them): a context middleware given something that is not a plugin raises
    ConfigurationError when Starlette builds the stack, and TestClient raises it."""
    app = Starlette()
    not_a_plugin: Any = object()
    app.add_middleware(context_middleware, plugins=[not_a_plugin])
    wrapped = SupervisorMiddleware(app, supervisor=quiet_supervisor())
    with pytest.raises(ConfigurationError, match="is not a valid instance"), TestClient(wrapped):
        pass


@pytest.mark.parametrize(
    ("fault", "what"),
    [
        ("middleware_raises", "raised RuntimeError: BROKER_URL is not set, before"),
        ("http_only", "raised ValueError: Django can only handle"),
        ("silent", "returned without a word"),
        ("raises_after_receive", "raised LookupError: no configuration file, after"),
    ],
)
async def test_a_lifespan_that_ends_before_its_startup_logs_one_warning(
    fault: str, what: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A lifespan that ends before the app answered the startup, which a server may take as
    "lifespan unsupported", logs one WARNING saying what happened and how to be supervised."""
    app = SupervisorMiddleware(LIFESPAN_FAULTS[fault](), supervisor=quiet_supervisor())
    await _through_asgi_lifespan(app)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, warnings
    assert what in warnings[0]
    assert "unsupervised" in warnings[0]
    assert "app_lifespan=False" in warnings[0]


@pytest.mark.parametrize("fault", ["startup_raises", "shutdown_raises"])
async def test_a_lifespan_that_answered_its_startup_logs_no_warning_of_ours(
    fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An app that answered the startup (failed or complete) told the server itself: the
    middleware adds no warning to the server's own report."""
    app = SupervisorMiddleware(LIFESPAN_FAULTS[fault](), supervisor=quiet_supervisor())
    await _through_asgi_lifespan(app)
    ours = [
        r for r in caplog.records if r.name == "asgi_supervisor" and r.levelno == logging.WARNING
    ]
    assert ours == []


def test_an_app_without_lifespan_is_supervised_with_app_lifespan_false() -> None:
    """``app_lifespan=False``: the app that raises on a lifespan scope never sees one, the
    supervisor answers the lifespan itself, and TestClient starts and serves."""
    supervisor = quiet_supervisor()
    app = SupervisorMiddleware(
        LIFESPAN_FAULTS["http_only"](), supervisor=supervisor, app_lifespan=False
    )
    with TestClient(app) as client:
        assert client.get("/").text == "hello"
        assert client.get("/_supervisor/health/ready").status_code == 200
    assert supervisor.last_report is not None


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
