"""Exceptions raised by asgi-supervisor.

The hierarchy::

    SupervisorError (RuntimeError)
    ├── SupervisorClosedError      spawn() or add_worker() once the supervisor is closing
    ├── StartupError               the app's startup or a worker's first step failed
    └── NotRunningError            an operation that needs the lifespan to be running

Configuration mistakes raise the built-in ``ValueError`` or ``TypeError`` with a message that
names the setting, the bad value, and the fix.
"""

from __future__ import annotations

__all__ = ["NotRunningError", "StartupError", "SupervisorClosedError", "SupervisorError"]


class SupervisorError(RuntimeError):
    """Base class of every error the supervisor raises at run time."""


class SupervisorClosedError(SupervisorError):
    """Raised by ``spawn()`` and ``add_worker()`` once the supervisor no longer takes new work."""


class StartupError(SupervisorError):
    """Raised when the app's own startup fails or a worker fails while starting."""


class NotRunningError(SupervisorError):
    """Raised when an operation needs a running event loop and lifespan, and has neither."""
