"""The supervisor's side of the process group: join it, answer siblings, report them.

Kept apart from `_group` (which knows nothing of supervisors) and from the core, which calls
only `join_group` when a lifespan's run starts, ``group.announce`` in ``Run.begin_drain``
and ``group.close`` when the run closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from typing import TYPE_CHECKING, Any

from ._group import ProcessGroup
from ._rundir import runtime_folder

if TYPE_CHECKING:
    from ._run import Run
    from ._supervisor import Supervisor

__all__ = ["join_group", "process_outcomes"]

# Added to the time a sibling may still need to drain: its answer's trip, and a sibling whose
# drain began a little after ours.
_ANSWER_MARGIN = 1.0


def join_group(run: Run) -> ProcessGroup | None:
    """Start joining this worker's process group, or None if the settings turn groups off.

    Called from the running loop at lifespan startup; joining itself may happen later, once
    the server listens (see `ProcessGroup.start`).
    """
    config = run.config
    if not config.process_group:
        return None
    folder, ours = runtime_folder(config.runtime_dir, os.environ)

    def on_drain(trigger: str, deadline: float) -> None:
        run.begin_drain(trigger, deadline=deadline)

    async def describe(drain_timeout: float) -> dict[str, Any]:
        if run.shutdown.deadline is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(drain_timeout):
                    await run.shutdown.wait_drained()
        counts = run.registry.counts(run.requests.in_flight)
        return _status(
            run.lifecycle.state.value, run.lifecycle.draining, counts, run.shutdown.remaining()
        )

    group = ProcessGroup(
        run.loop, folder=folder, remove_folder=ours, on_drain=on_drain, describe=describe
    )
    group.start()
    return group


async def process_outcomes(supervisor: Supervisor) -> list[dict[str, Any]]:
    """Every worker process's drain outcome, this one first, for the ``/drain`` answer.

    Waits for the siblings at most until the shared deadline's drain point (they drain by
    the same deadline) plus a margin.
    """
    own = _status(
        supervisor.state.value,
        supervisor.is_draining,
        supervisor.counts(),
        supervisor.deadline_remaining(),
    )
    group = supervisor.group
    if group is None or not group.joined:
        return [own]
    remaining = supervisor.deadline_remaining() or 0.0
    answer_timeout = max(0.0, remaining - supervisor.config.cancel_timeout) + _ANSWER_MARGIN
    return [own, *await group.ask_siblings(answer_timeout)]


def _status(
    state: str, draining: bool, counts: dict[str, int], remaining: float | None
) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "state": state,
        "drained": draining and not counts["requests"] and not counts["websockets"],
        "deadline_remaining": None if remaining is None else round(remaining, 3),
    }
