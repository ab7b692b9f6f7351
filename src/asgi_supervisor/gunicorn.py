"""A gunicorn worker class that tells the supervisor what gunicorn will do to it.

Use it in place of ``uvicorn_worker.UvicornWorker``::

    gunicorn app.main:app -k asgi_supervisor.gunicorn.UvicornWorker --graceful-timeout 30

(install with ``pip install 'asgi-supervisor[gunicorn]'``). It is uvicorn's worker, plus two
facts the supervisor cannot see from inside the app:

* **gunicorn's ``graceful_timeout``**: the master SIGKILLs a worker that is still alive that
  long after its SIGTERM, and the app's own shutdown never runs. The supervisor logs a
  warning at startup, naming both values and the fix, when it is shorter than
  ``grace_period`` plus a margin.
* **who keeps the listening socket.** On a reload (``SIGHUP``, or fewer workers with
  ``TTOU``) the master starts the new workers and then SIGTERMs the old ones, while it keeps
  the listening socket open for the new ones. An old worker that held the shared socket
  through its drain would take new connections only to refuse them with 503. So when a
  signal arrives and the master still holds our listening socket, the signal goes to
  uvicorn at once: this worker stops accepting, its in-flight requests finish, and the
  siblings take every new connection. When the master itself is stopping it has closed its
  copy of the socket first, and the usual drain (readiness fails, keep serving, then stop)
  runs.

After a drain that no signal followed (a preStop ``/drain``), the worker does not end
itself, even when it is gunicorn's only one: the master would start a fresh worker in its
place, ready, before the SIGTERM that follows the preStop hook. It answers 503 and fails
``/health/live`` until that SIGTERM.

It also fixes one thing in uvicorn's worker: gunicorn's quick shutdown (``SIGINT`` or
``SIGQUIT`` to the master) used to be ignored by the worker until gunicorn killed it; it now
reaches uvicorn and the supervisor as a ``SIGINT``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from typing import Any

import uvicorn
import uvicorn_worker
from gunicorn.arbiter import Arbiter

from ._host.proc import socket_inodes
from ._host.server_facts import ServerFacts, register

__all__ = ["UvicornWorker"]


class UvicornWorker(uvicorn_worker.UvicornWorker):  # type: ignore[misc]  # untyped base
    """uvicorn's gunicorn worker, telling the supervisor gunicorn's kill timeout and reloads.

    Example::

        gunicorn app.main:app -w 4 -k asgi_supervisor.gunicorn.UvicornWorker

    Everything else is ``uvicorn_worker.UvicornWorker``'s; ``CONFIG_KWARGS`` works as there.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listener_inodes: frozenset[int] = frozenset()
        self._stopped_accepting = asyncio.Event()

    def run(self) -> None:
        """Register the facts (in the worker process, after the fork), then serve."""
        # The inodes of our listening sockets, while they are surely open: uvicorn closes
        # its copies when it shuts down.
        self._listener_inodes = frozenset(os.fstat(sock.fileno()).st_ino for sock in self.sockets)
        register(
            ServerFacts(
                server="gunicorn",
                kill_timeout=float(self.cfg.graceful_timeout),
                kill_timeout_setting="--graceful-timeout",
                listener_taken_over=self._master_holds_listener,
                stopped_accepting=self._stopped_accepting,
                replaces_exited_workers=True,
            )
        )
        super().run()

    def _install_sigquit_handler(self) -> None:
        # gunicorn's quick shutdown (SIGINT or SIGQUIT to the master) sends workers SIGQUIT.
        # uvicorn_worker routes it to gunicorn's `handle_exit`, which sets a flag nothing
        # reads: the worker served on until gunicorn SIGKILLed it at graceful_timeout, and
        # the app's shutdown never ran. Deliver it as the SIGINT that uvicorn, and the
        # supervisor chained in front of it, understand.
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGQUIT, signal.raise_signal, signal.SIGINT)

    async def _serve(self) -> None:
        # uvicorn_worker's own `_serve`, with a server that reports when it stops accepting.
        self.config.app = self.wsgi
        server = _Server(config=self.config, stopped_accepting=self._stopped_accepting)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)

    def _master_holds_listener(self) -> bool:
        # A master that is stopping has closed its listeners before it signals the workers.
        # Any error (no /proc, another user) reads as "not taken over": the usual drain is
        # the safe default.
        return not self._listener_inodes.isdisjoint(socket_inodes(self.ppid))


class _Server(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, stopped_accepting: asyncio.Event) -> None:
        super().__init__(config)
        self._stopped_accepting = stopped_accepting

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # Scenario: the event is set, then uvicorn's shutdown runs on in this same step, up
        # to its first await, closing the listener and the idle connections. The waiter
        # wakes only in a later step of the loop: by then nothing new can reach us.
        self._stopped_accepting.set()
        await super().shutdown(sockets)
