"""The public namespace stays small and deliberate, and nothing private shows through it.

The public API is `asgi_supervisor.__all__` plus the public modules `exceptions`, `testing`
and `gunicorn`. Its names say they come from ``asgi_supervisor`` (as httpx's and trio's do),
so tracebacks, pickles and documentation tools never name a private module, and no public
signature names a private type: the private layers may move without breaking anyone.
"""

from __future__ import annotations

import ast
import inspect
import pickle
import sys
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import asgi_supervisor
from asgi_supervisor import exceptions, gunicorn, testing

PUBLIC_MODULES: tuple[types.ModuleType, ...] = (asgi_supervisor, exceptions, testing, gunicorn)
# The dunders that are API: how users build, call and enter the public classes.
PUBLIC_DUNDERS = frozenset({"__init__", "__call__", "__aenter__", "__aexit__"})


def test_all_is_pinned() -> None:
    """`__all__` lists exactly the public names, sorted, and each one exists."""
    assert asgi_supervisor.__all__ == [
        "AbandonedTask",
        "CheckResult",
        "Closing",
        "Config",
        "Kind",
        "LoopLagStats",
        "NotRunningError",
        "Phase",
        "Restart",
        "Settings",
        "ShutdownReport",
        "StartupError",
        "State",
        "Stopping",
        "Supervisor",
        "SupervisorClosedError",
        "SupervisorError",
        "SupervisorMiddleware",
        "WorkerSnapshot",
        "WorkerState",
    ]
    assert sorted(asgi_supervisor.__all__) == asgi_supervisor.__all__
    for name in asgi_supervisor.__all__:
        assert getattr(asgi_supervisor, name).__doc__, f"{name} has no docstring"


def test_public_names_report_the_package_as_their_module() -> None:
    """Each name of `__all__` says it is `asgi_supervisor`'s; the public modules' names say
    they come from a public module."""
    for name in asgi_supervisor.__all__:
        assert getattr(asgi_supervisor, name).__module__ == "asgi_supervisor", name
    for module in PUBLIC_MODULES:
        for name in module.__all__:
            home = getattr(module, name).__module__
            assert not _is_private(home), f"{module.__name__}.{name} reports {home}"


def test_no_public_signature_names_a_private_type() -> None:
    """No annotation of a public name, or of a public method or property of a public class,
    names a class defined in a private module."""
    offenders = [
        f"{where} names {found.__module__}.{found.__qualname__}"
        for where, hint in _public_annotations()
        for found in _classes_in(hint)
        if _is_private(found.__module__)
    ]
    assert offenders == []


def test_the_walk_sees_the_whole_surface() -> None:
    """The annotation walk reaches the members it must check (it cannot pass by seeing none)."""
    seen = {where for where, _ in _public_annotations()}
    for where in (
        "asgi_supervisor.Supervisor.spawn",
        "asgi_supervisor.Supervisor.stopping",
        "asgi_supervisor.Supervisor.loop_lag",
        "asgi_supervisor.Supervisor config",  # an attribute declared on the class
        "asgi_supervisor.Supervisor.workers",
        "asgi_supervisor.Supervisor.check_results",
        "asgi_supervisor.Supervisor.worker[overload]",
        "asgi_supervisor.SupervisorMiddleware.__init__",
        "asgi_supervisor.ShutdownReport phases",  # the fields of a dataclass
        "asgi_supervisor.testing.LifespanManager.__aenter__",
        "asgi_supervisor.gunicorn.UvicornWorker.run",
    ):
        assert any(s == where or s.startswith(f"{where} ") for s in seen), where


def test_the_middlewares_protocol_is_private() -> None:
    """What only the middleware calls is not on the public class."""
    supervisor = asgi_supervisor.Supervisor
    for name in ("begin_startup", "start", "end", "registry", "group"):
        assert not hasattr(supervisor, name), name
    assert not hasattr(asgi_supervisor.SupervisorMiddleware, "request_ages")


@pytest.mark.parametrize(
    "value",
    [
        asgi_supervisor.State.READY,
        asgi_supervisor.Kind.TASK,
        asgi_supervisor.Restart.ALWAYS,
        asgi_supervisor.WorkerState.RESTARTING,
        asgi_supervisor.Config(grace_period=10.0),
        asgi_supervisor.LoopLagStats(threshold=0.5, stall_count=2),
        asgi_supervisor.Phase(name="draining", start=0.0, duration=1.5),
        asgi_supervisor.CheckResult(name="db", ok=True, critical=True, error=None, duration=0.1),
        asgi_supervisor.WorkerSnapshot(
            name="consume", state=asgi_supervisor.WorkerState.RUNNING, restarts=1, last_error=None
        ),
        asgi_supervisor.NotRunningError("no lifespan"),
        asgi_supervisor.ShutdownReport(
            trigger="api",
            forced=False,
            started_at=1_700_000_000.0,
            duration=2.5,
            phases=(asgi_supervisor.Phase(name="draining", start=0.0, duration=2.5),),
            requests_drained_count=3,
            requests_rejected_count=0,
            requests_cancelled_count=0,
            abandoned=(
                asgi_supervisor.AbandonedTask(id=7, name="job", kind="task", where=None, stack=()),
            ),
        ),
    ],
    ids=lambda value: type(value).__name__,
)
def test_public_values_pickle_by_their_public_name(value: object) -> None:
    """A public value pickles as `asgi_supervisor.<Name>`, so a pickle outlives a re-layout
    of the private modules, and it loads back equal."""
    data = pickle.dumps(value)
    assert b"asgi_supervisor._" not in data
    loaded = pickle.loads(data)
    if isinstance(value, Exception):
        assert type(loaded) is type(value)
        assert loaded.args == value.args
    else:
        assert loaded == value


def test_exception_hierarchy() -> None:
    """Every runtime error derives from SupervisorError, itself a RuntimeError."""
    assert issubclass(exceptions.SupervisorError, RuntimeError)
    for name in ("SupervisorClosedError", "StartupError", "NotRunningError"):
        assert issubclass(getattr(exceptions, name), exceptions.SupervisorError)


def test_the_gunicorn_worker_is_uvicorns() -> None:
    """`asgi_supervisor.gunicorn.UvicornWorker` can stand wherever uvicorn's worker does."""
    import uvicorn_worker

    from asgi_supervisor.gunicorn import UvicornWorker

    assert issubclass(UvicornWorker, uvicorn_worker.UvicornWorker)
    assert UvicornWorker.__doc__


# -- the walk -------------------------------------------------------------------------------


def _is_private(module: str) -> bool:
    # `asgi_supervisor._core.x` is private; `_asyncio` (where asyncio.Task lives) is not ours.
    return any(part.startswith("_") for part in module.split(".")[1:])


def _public_annotations() -> Iterator[tuple[str, Any]]:
    """(where, resolved annotation) for every annotation of the public surface."""
    for module in PUBLIC_MODULES:
        for name in module.__all__:
            obj = getattr(module, name)
            where = f"{module.__name__}.{name}"
            if inspect.isclass(obj):
                yield from _class_annotations(where, obj)
            elif inspect.isfunction(obj):
                yield from _function_annotations(where, obj)


def _class_annotations(where: str, cls: type) -> Iterator[tuple[str, Any]]:
    own = [klass for klass in cls.__mro__ if klass.__module__.startswith("asgi_supervisor")]
    if any(inspect.get_annotations(klass) for klass in own):
        # With the default globals, those of the module the class reports: what Sphinx,
        # dataclass tools and `get_type_hints` users get.
        for field, hint in typing.get_type_hints(cls).items():
            yield f"{where} {field}", hint
    for klass in own:
        for name, value in vars(klass).items():
            if name.startswith("_") and name not in PUBLIC_DUNDERS:
                continue
            fn = _function_of(value)
            if fn is not None:
                yield from _function_annotations(f"{where}.{name}", fn)


def _function_of(value: object) -> Callable[..., Any] | None:
    if isinstance(value, property):
        return value.fget
    if isinstance(value, classmethod | staticmethod):
        return typing.cast("Callable[..., Any]", value.__func__)
    if inspect.isfunction(value):
        return value
    return None


def _function_annotations(where: str, fn: Callable[..., Any]) -> Iterator[tuple[str, Any]]:
    variants = [(where, fn)] + [(f"{where}[overload]", o) for o in typing.get_overloads(fn)]
    for name, variant in variants:
        module = sys.modules[variant.__module__]
        namespace = {**vars(module), **_type_checking_imports(module)}
        for parameter, hint in typing.get_type_hints(variant, globalns=namespace).items():
            yield f"{name} {parameter}", hint


def _type_checking_imports(module: types.ModuleType) -> dict[str, Any]:
    """The names *module* imports under ``if TYPE_CHECKING:``, which its annotations use."""
    namespace: dict[str, Any] = {}
    source = inspect.getsource(module)
    for node in ast.parse(source).body:
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            code = compile(ast.Module(body=node.body, type_ignores=[]), module.__name__, "exec")
            exec(code, {"__name__": module.__name__, "__package__": module.__package__}, namespace)
    return namespace


def _classes_in(hint: Any) -> Iterator[type]:
    """Every class an annotation names, through unions, generics and callables."""
    if isinstance(hint, list | tuple):
        for item in hint:
            yield from _classes_in(item)
        return
    if isinstance(hint, typing.TypeVar):
        yield from _classes_in([hint.__bound__, *hint.__constraints__])
        return
    if isinstance(hint, type) and not typing.get_args(hint):
        yield hint
        return
    origin = typing.get_origin(hint)
    if origin is not None:
        yield from _classes_in(origin)
        yield from _classes_in(typing.get_args(hint))
