"""A pytest plugin that runs another project's suite with every Starlette app supervised.

Loaded into a peer suite's own pytest run (``-p supervise_every_app``, with this folder on
``PYTHONPATH``; `run.py` does both). In every run it:

* deselects the tests parametrized to run on trio (anyio's ``anyio_backend``, asgi-lifespan's
  ``concurrency``): asgi-supervisor runs on asyncio and refuses trio with a sentence, which
  its own suite pins (``tests/asgi/test_asyncio_only.py``);
* writes each test's outcome, and the crash line of each failure, as JSON to
  ``--peers-results``, for `run.py` to compare the two runs.

With ``--supervise-every-app`` it also wraps every Starlette app, FastAPI's included, as a
user does (``app = SupervisorMiddleware(app, supervisor=...)``): each call to an app goes
through a `SupervisorMiddleware` of its own, made with the app, whose quiet supervisor installs no
signal handler, starts no thread and writes no file. Any other app given to asgi-lifespan's
``LifespanManager`` (a bare ASGI function, a Router) is wrapped the same way, since what
that suite checks is what the lifespan manager sees of an app. And it adds
``asgi_supervisor`` to the modules that Starlette's blockbuster fixture scans, so a call
that blocks the event loop from the library fails a test, as one from Starlette does.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGICall = Callable[[Any, Scope, Receive, Send], Awaitable[None]]

# A quiet supervisor with the library's defaults otherwise: the endpoints' prefix, the
# deadlines' proportions (shorter, as tests wait for them). The same settings as
# tests/_inprocess.py's quiet_supervisor, written again: inside another project's run its
# own `tests` package shadows ours, and that module imports what the peers lack.
QUIET: dict[str, Any] = {
    "grace_period": 3.0,
    "cancel_timeout": 1.0,
    "shutdown_delay": 0.0,
    "handle_signals": False,
    "watchdog": False,
    "local_token": False,
    "loop_lag_threshold": None,
    "process_group": False,
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("asgi-supervisor peers")
    group.addoption(
        "--supervise-every-app",
        action="store_true",
        help="wrap every Starlette and FastAPI app in SupervisorMiddleware",
    )
    group.addoption("--peers-results", metavar="PATH", help="write the outcomes here as JSON")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--supervise-every-app"):
        _supervise_every_app()
        _supervise_what_lifespan_manager_runs()
        _scan_the_library_too()
    path = config.getoption("--peers-results")
    # Under pytest-xdist the controller sees every worker's reports; a worker writes nothing.
    if path and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_Outcomes(Path(path)), "peers-outcomes")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    on_trio = [item for item in items if _on_trio(item)]
    if on_trio:
        config.hook.pytest_deselected(items=on_trio)
        items[:] = [item for item in items if not _on_trio(item)]


def _on_trio(item: pytest.Item) -> bool:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return False
    for value in callspec.params.values():
        if value == "trio" or (isinstance(value, tuple) and value[:1] == ("trio",)):
            return True
    return False


# -- every app supervised ------------------------------------------------------------------

# The app whose own __call__ is running in this context: FastAPI's __call__ calls
# Starlette's through super(), which must not be supervised a second time.
_serving: contextvars.ContextVar[object | None] = contextvars.ContextVar("serving", default=None)
_MIDDLEWARE = "_asgi_supervisor_peers_middleware"


def _supervise_every_app() -> None:
    from starlette.applications import Starlette

    classes: list[type[Any]] = [Starlette]
    try:
        from fastapi import FastAPI
    except ImportError:
        pass
    else:
        classes.append(FastAPI)
    for cls in classes:
        cls.__call__ = _supervised(cls.__call__)
        cls.__init__ = _wrapped_when_made(cls.__init__)


def _wrapped_when_made(init: Callable[..., None]) -> Callable[..., None]:
    # A user wraps the app where it is made, not on its first request: a test that watches
    # what a request calls (FastAPI's mocks json.dumps) must not see the middleware built.
    def __init__(app: Any, *args: Any, **kwargs: Any) -> None:
        init(app, *args, **kwargs)
        _middleware_of(app)

    __init__.__wrapped__ = init  # type: ignore[attr-defined]
    return __init__


def _supervised(original: ASGICall) -> ASGICall:
    async def __call__(app: Any, scope: Scope, receive: Receive, send: Send) -> None:
        if _serving.get() is app:
            await original(app, scope, receive, send)
        else:
            await _middleware_of(app)(scope, receive, send)

    __call__.__wrapped__ = original  # type: ignore[attr-defined]
    return __call__


def _middleware_of(app: Any) -> Any:
    # Kept on the app itself: a weak mapping from the app would be kept alive by its value.
    middleware = app.__dict__.get(_MIDDLEWARE)
    if middleware is None:

        async def the_app(scope: Scope, receive: Receive, send: Send) -> None:
            token = _serving.set(app)
            try:
                await type(app).__call__(app, scope, receive, send)
            finally:
                _serving.reset(token)

        middleware = _supervised_app(the_app)
        app.__dict__[_MIDDLEWARE] = middleware
    return middleware


def _supervised_app(app: Any) -> Any:
    from asgi_supervisor import Supervisor, SupervisorMiddleware

    return SupervisorMiddleware(app, supervisor=Supervisor(**QUIET))


def _supervise_what_lifespan_manager_runs() -> None:
    try:
        from asgi_lifespan import LifespanManager
    except ImportError:
        return
    from starlette.applications import Starlette

    init = LifespanManager.__init__

    def __init__(self: LifespanManager, app: Any, *args: Any, **kwargs: Any) -> None:
        if not isinstance(app, Starlette):  # a Starlette app is supervised already
            app = _supervised_app(app)
        init(self, app, *args, **kwargs)

    LifespanManager.__init__ = __init__  # type: ignore[method-assign]


def _scan_the_library_too() -> None:
    try:
        from blockbuster import BlockBuster
    except ImportError:
        return
    init = BlockBuster.__init__

    def __init__(self: BlockBuster, scanned_modules: Any = None, **kwargs: Any) -> None:
        if scanned_modules == "starlette":  # Starlette's own fixture, tests/conftest.py
            scanned_modules = ["starlette", "asgi_supervisor"]
        init(self, scanned_modules, **kwargs)

    BlockBuster.__init__ = __init__  # type: ignore[method-assign]


# -- outcomes --------------------------------------------------------------------------------


class _Outcomes:
    """Each test's outcome (passed, failed, skipped) and each failure's crash line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.outcomes: dict[str, str] = {}
        self.crashes: dict[str, str] = {}

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self._failed(report.nodeid, report)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            self._failed(report.nodeid, report)
        elif report.skipped:
            self.outcomes.setdefault(report.nodeid, "skipped")
        elif report.when == "call":
            self.outcomes.setdefault(report.nodeid, "passed")

    def _failed(self, nodeid: str, report: pytest.CollectReport | pytest.TestReport) -> None:
        self.outcomes[nodeid] = "failed"
        self.crashes.setdefault(nodeid, _crash_line(report))

    def pytest_sessionfinish(self) -> None:
        body = {"outcomes": self.outcomes, "crashes": self.crashes}
        self.path.write_text(json.dumps(body, indent=1, sort_keys=True))


def _crash_line(report: pytest.CollectReport | pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = crash.message if crash is not None else str(report.longrepr)
    return f"{report.when or 'collect'}: {_first_lines(text)}"


def _first_lines(text: str, count: int = 3) -> str:
    lines: Iterator[str] = (line.strip() for line in text.splitlines())
    return " | ".join(line for _, line in zip(range(count), filter(None, lines), strict=False))
