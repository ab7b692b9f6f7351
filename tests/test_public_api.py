"""The public namespace stays small and deliberate."""

from __future__ import annotations

import asgi_supervisor
from asgi_supervisor import exceptions


def test_all_is_pinned() -> None:
    """`__all__` lists exactly the public names, sorted, and each one exists."""
    assert asgi_supervisor.__all__ == [
        "AbandonedTask",
        "Config",
        "Kind",
        "LoopLagStats",
        "NotRunningError",
        "Phase",
        "Restart",
        "ShutdownReport",
        "StartupError",
        "State",
        "Supervisor",
        "SupervisorClosedError",
        "SupervisorError",
        "SupervisorMiddleware",
    ]
    assert sorted(asgi_supervisor.__all__) == asgi_supervisor.__all__
    for name in asgi_supervisor.__all__:
        assert getattr(asgi_supervisor, name).__doc__, f"{name} has no docstring"


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
