"""asgi-supervisor: start and stop an ASGI app's asynchronous work properly.

Layout, from the bottom up (each layer imports only those below it):

* the pure core: ``_config`` (settings), ``_deadline`` (the one deadline of a shutdown),
  ``_state`` (the state machine), ``_registry`` (tracked tasks), ``_requests`` (the count of
  in-flight requests), ``_cancel`` (cancel within a deadline), ``_report``, ``_stacks``;
* the supervisor: ``_workers``, ``_checks``, ``_signals``, ``_server_facts`` (what a server
  integration tells it), ``_watchdog``, ``_looplag``, ``_logs``, ``_shutdown``, ``_run``
  (one lifespan's state, and its process group: ``_group`` over ``_listening``, ``_listeners``,
  ``_runtime_dir`` and ``_group_socket``, which know nothing of supervisors), ``_stopping``
  and ``_supervisor``, which ties them together; ``_metrics`` and ``_metrics_group`` read
  it, and ``_group_hooks`` gathers every worker's outcome for ``/drain``;
* the local admin token, stdlib only and shared with the command line: ``_listening``,
  ``_listeners`` (one watch of our listening ports, for the token and the process group),
  ``_runtime_dir`` (the private folder it shares with the process group), ``_token_file``
  and ``_local_token``;
* the ASGI layer: ``_response`` (how every endpoint answer is sent), ``_admin_auth``,
  ``_endpoints``, ``_tasks_view``, ``_metrics_http``, ``_websocket``, ``_asyncio_only``,
  ``_lifespan`` and ``_middleware``, and the page `/tasks` shows to browsers
  (``_negotiate``, ``_tasks_page``, ``_timeline``, ``_page_style``);
* public modules: ``exceptions``, ``testing``, the command line (``__main__``), and the
  server integration ``gunicorn`` (a worker class; it imports the public API and
  ``_server_facts``, and nothing imports it).
"""

from __future__ import annotations

from ._config import Config
from ._looplag import LoopLagStats
from ._middleware import SupervisorMiddleware
from ._registry import Kind
from ._report import AbandonedTask, Phase, ShutdownReport
from ._state import State
from ._supervisor import Supervisor
from ._workers import Restart
from .exceptions import (
    NotRunningError,
    StartupError,
    SupervisorClosedError,
    SupervisorError,
)

__all__ = [
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

__version__ = "0.1.0"
