"""Every worker process's drain outcome, for the ``/drain`` answer.

The run makes the process group and tells it of drains (`Run.begin_drain`); this module, on
the ASGI side, asks the siblings how their drain went.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asgi_supervisor._core.drain_outcome import drain_outcome

if TYPE_CHECKING:
    from asgi_supervisor._supervisor.supervisor import Supervisor

__all__ = ["process_outcomes"]

# Added to the time a sibling may still need to drain: its answer's trip, and a sibling whose
# drain began a little after ours.
_ANSWER_MARGIN = 1.0


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
    if group is None or not group.joined:
        return [own]
    remaining = supervisor.deadline_remaining() or 0.0
    answer_timeout = max(0.0, remaining - supervisor.config.cancel_timeout) + _ANSWER_MARGIN
    return [own, *await group.ask_siblings(answer_timeout)]
