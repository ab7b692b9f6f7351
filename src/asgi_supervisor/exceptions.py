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

from ._core.errors import (
    NotRunningError,
    StartupError,
    SupervisorClosedError,
    SupervisorError,
)

__all__ = ["NotRunningError", "StartupError", "SupervisorClosedError", "SupervisorError"]
