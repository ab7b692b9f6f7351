"""asgi-supervisor: start and stop an ASGI app's asynchronous work properly.

The public API is this namespace (``__all__``), plus the public modules ``exceptions``,
``testing`` and the server integration ``gunicorn``; ``python -m asgi_supervisor`` is the
command line. Everything else lives in private subpackages, one per layer: each public name
reports this package as its ``__module__``, and no public signature names a private type.
"""

# General layout, from the bottom up. Each layer imports only the layers below it, and two
# layers on one line know nothing of each other; the import-linter contracts in
# pyproject.toml check every import, those made for type checking included.
#
#   _core        the asyncio shutdown core: the deadline, cancellation within it, the
#                lifecycle, the registry of tracked tasks, workers, checks and the report.
#                Standard library only; it imports no other part of the package.
#   _host        facts about this host and process: /proc, the private runtime folder and
#                the listener folders in it (the one cross-process channel, its one
#                liveness check), signals, the watchdog, loop lag, the server integration,
#                logs.
#   _group       the process group: the worker processes of one server drain together.
#   _admin       admin access: the local token and who may call the admin endpoints.
#   _supervisor  the supervisor, its settings, and one lifespan's run and shutdown.
#   _observe     what the supervisor shows: /tasks rows and page, metrics.
#   _asgi        the ASGI layer: the middleware, the lifespan bridge, the endpoints.
#   _cli         the command line, which reads the local token, signs login links with it
#                and speaks HTTP, no more.
#
# Public modules sit on top: exceptions, testing, gunicorn and __main__.

from __future__ import annotations

from ._asgi.middleware import SupervisorMiddleware
from ._core.checks import CheckResult
from ._core.lifecycle import State
from ._core.registry import Kind
from ._core.report import AbandonedTask, Phase, ShutdownReport
from ._core.stopping import Closing, Stopping
from ._core.worker_state import WorkerSnapshot, WorkerState
from ._core.workers import Restart
from ._host.looplag import LoopLagStats
from ._supervisor.config import Config
from ._supervisor.settings import Settings
from ._supervisor.supervisor import Supervisor
from .exceptions import (
    NotRunningError,
    StartupError,
    SupervisorClosedError,
    SupervisorError,
)

__all__ = [
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

# The public names say they are this package's (httpx and trio do the same), so that reprs,
# tracebacks, pickles and documentation tools name `asgi_supervisor.Supervisor`, never the
# private module that defines it: pickles and links survive moving it. Two consequences for
# a public class: its field annotations resolve in this namespace (`typing.get_type_hints`,
# Sphinx), so they name only public types and builtins; and tools that read the source
# (Sphinx's attribute docs, `inspect.getsource`) look for it here, so its fields are
# documented in its docstring (``Attributes:``), which travels with the class.
for _name in __all__:
    globals()[_name].__module__ = __name__
del _name

__version__ = "0.1.0"
