"""The one vocabulary of a worker's life: its states, and the frozen snapshot users read.

`/health`, `/tasks`, the `/tasks` page and the metrics' ``worker_state`` labels all show
`WorkerState` values, and nothing else spells them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["WorkerSnapshot", "WorkerState"]


class WorkerState(enum.Enum):
    """Where a worker is in its life.

    The worker's own loop (``add_worker``'s restart policy) is the one writer of its state.
    Allowed transitions::

        running    -> restarting   it crashed, or returned under restart="always"
        restarting -> running      the backoff is over
        running    -> completed    it returned and its policy does not run it again
        running    -> failed       it gave up restarting, or raised while starting or stopping
        running    -> stopped      the shutdown cancelled it
        restarting -> stopped      draining began during its backoff

    ``abandoned`` is shown, never written: a worker the shutdown gave up on at its deadline
    (it swallowed its cancellation, or blocks in sync code) shows so while it still runs, and
    shows the state its loop wrote if it ends after all.
    """

    RUNNING = "running"
    RESTARTING = "restarting"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"
    ABANDONED = "abandoned"

    def __repr__(self) -> str:
        return f"<WorkerState {self.value}>"


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerSnapshot:
    """One worker as ``Supervisor.workers()`` saw it: what ``/health`` shows of it.

    Example::

        failed = [w.name for w in supervisor.workers() if w.state is WorkerState.FAILED]

    Attributes:
        name: the worker's name (``add_worker(name=...)``, by default the function's).
        state: where it is in its life.
        restarts: how many times its policy started it again.
        last_error: ``"Type: message"`` of the last exception it raised, or None.
    """

    name: str
    state: WorkerState
    restarts: int
    last_error: str | None
