"""Whether ``/drain`` may drain, and every worker process's outcome for its answer.

The run makes the process group and tells it of drains (`Run.begin_drain`); this module, on
the ASGI side, asks the group whether a drain here would reach every worker
(`drain_refusal`), and the siblings how their drain went (`process_outcomes`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asgi_supervisor._core.drain_outcome import drain_outcome

if TYPE_CHECKING:
    from asgi_supervisor._supervisor.supervisor import Supervisor

__all__ = ["drain_refusal", "group_state", "process_outcomes"]

# Added to the time a sibling may still need to drain: its answer's trip, and a sibling whose
# drain began a little after ours.
_ANSWER_MARGIN = 1.0


async def drain_refusal(supervisor: Supervisor) -> str | None:
    """Why ``/drain`` must not begin a drain in this process, or None: it is one of several
    workers of its server but outside their process group, so the drain would reach it
    alone. A drain under way (a signal began it in every worker) is joined, not refused.

    May read ``/proc`` and wait for a join in a thread (see `ProcessGroup.reach_problem`).
    """
    group = supervisor._group
    if group is None or supervisor.is_draining:
        return None
    return await group.reach_problem()


def group_state(supervisor: Supervisor) -> str:
    """The process group's state for ``/health``: ``joined``, ``unavailable``, ``pending``,
    or ``off`` (``process_group=False``, or outside a lifespan)."""
    group = supervisor._group
    return "off" if group is None else group.state


async def process_outcomes(supervisor: Supervisor) -> list[dict[str, Any]]:
    """Every worker process's drain outcome, this one first, for the ``/drain`` answer.

    Waits for the siblings at most until the shared deadline's drain point (they drain by
    the same deadline) plus a margin.
    """
    own = drain_outcome(
        supervisor.state.value,
        supervisor.is_draining,
        supervisor.counts(),
        supervisor.deadline_remaining(),
    )
    group = supervisor._group
    if group is None:
        return [own]
    remaining = supervisor.deadline_remaining() or 0.0
    answer_timeout = max(0.0, remaining - supervisor.config.cancel_timeout) + _ANSWER_MARGIN
    return [own, *await group.ask_siblings(answer_timeout)]
