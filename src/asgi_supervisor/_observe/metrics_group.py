"""Metrics of a process group: a scrape of any worker asks its siblings for their snapshots.

``uvicorn --workers N`` (gunicorn ``-w N``, granian ``--workers N``) runs one supervisor per
process, and a scrape reaches whichever process accepted it. The workers of a server are the
members of one listener folder (`_host.presence`), so a scrape asks the others over the
folder's channel (`_host.channel`): each sibling's loop answers with a snapshot taken then,
within `ANSWER_TIMEOUT`, and the scrape answers for all, each sample labelled with its
``pid``. A sibling that does not answer in time (its loop is blocked) is shown as such,
``asgi_supervisor_group_answered{pid="..."} 0``, never with old values.

prometheus_client's own multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``) keeps values that
code increments in files; ours are computed from the supervisor's state when asked, so
nothing is written anywhere and that variable plays no part.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .metrics import Snapshot, take_snapshot

if TYPE_CHECKING:
    from asgi_supervisor._host.channel import Channel
    from asgi_supervisor._supervisor.supervisor import Supervisor

__all__ = ["ANSWER_TIMEOUT", "Peer", "ask_snapshots", "serve_snapshots"]

logger = logging.getLogger("asgi_supervisor")

# A sibling takes its snapshot as ours is taken (its readiness checks run, or their cached
# results are reused); one that has not answered by then is reported as silent.
ANSWER_TIMEOUT = 2.0
_KIND = "metrics"


@dataclass(frozen=True, slots=True)
class Peer:
    """A sibling's answer to a scrape: its snapshot, or None and why."""

    pid: int
    snapshot: Snapshot | None
    error: str | None = None


def serve_snapshots(channel: Channel, supervisor: Supervisor) -> None:
    """Answer the siblings' scrapes with *supervisor*'s snapshot, for as long as *channel*
    is open."""

    async def answer(body: dict[str, Any]) -> dict[str, Any]:
        return (await take_snapshot(supervisor)).to_dict()

    channel.serve(_KIND, answer)


async def ask_snapshots(channel: Channel) -> list[Peer]:
    """Every sibling's snapshot, by pid, each within `ANSWER_TIMEOUT` seconds.

    Cancellation: stops waiting; late answers are dropped.
    """
    peers = []
    for pid, reply in (await channel.ask(_KIND, {}, ANSWER_TIMEOUT)).items():
        if reply.body is None:
            peers.append(Peer(pid, None, reply.error))
            continue
        try:
            peers.append(Peer(pid, Snapshot.from_dict(reply.body)))
        except ValueError as exc:
            logger.warning("sibling %d answered a scrape with no snapshot: %s", pid, exc)
            peers.append(Peer(pid, None, str(exc)))
    return peers
