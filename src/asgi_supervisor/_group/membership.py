"""A process group: the worker processes of one server drain together.

uvicorn ``--workers N``, gunicorn ``-w N`` and granian ``--workers N`` run one supervisor per
worker process. A preStop ``/drain`` reaches one of them; this module tells the others.

* **Who is a sibling.** Every worker of a server listens on the same TCP address and port,
  in the same network namespace (`proc`: uvicorn and gunicorn workers share their parent's
  socket, granian's open one each with ``SO_REUSEPORT``), so they are the members of one
  listener folder (`_host.presence`, shared with the local token). A process listening on
  several addresses or ports is a member of each folder, under one socket.
* **When.** uvicorn and gunicorn hand the socket over before lifespan startup; granian's
  workers, and single-process uvicorn and hypercorn, listen only after it. The presence
  joins once its watch finds a listener, and tells us (`on_joined`).
* **What is said,** over the presence's channel (`_host.channel`): ``drain`` (trigger,
  deadline as a ``time.monotonic()`` value, which is host-wide on Linux, origin pid),
  ``hello`` (a newcomer asks whether the group is draining), and the query ``status`` (how
  far each one has drained), which every sibling's loop answers.
* **Races.** Two workers that begin draining at once both announce; every member keeps the
  earliest deadline it hears of. A member announces at most once and never after it heard a
  drain, so a drain is never re-broadcast (no storms). A newcomer that joins while a drain is
  being announced either is in the announcer's listing or sends its ``hello`` after the
  announcer recorded the drain, which the announcer then answers. Its hello's answer may
  still cross the announcer's ``status`` question: the question carries the drain too, and
  a sibling adopts it before it answers.
* **What stays local.** Only `announce` sends a drain; the supervisor calls it for the drain
  endpoint, the API and a critical failure, never for a signal: each worker gets its own
  signal, and gunicorn's reload sends SIGTERM to the old workers only. A process whose
  ``process_group`` setting is off has no `ProcessGroup`: it is still a member of its
  listener folder (for the local token and the metrics), but ignores drains.
* **No split drain.** A worker that could not join (an unsafe runtime directory, a
  read-only file system) still knows whether it is one of several: its parent's other
  children hold a listening socket on its address and port (`Presence.sibling_workers`).
  Then a drain endpoint call there is refused (`reach_problem`) rather than drain one worker
  of several, and `/health` says the group is ``unavailable``. A member asking for the
  siblings' outcomes lists such a worker too, as not drained.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asgi_supervisor._host.presence import Presence

__all__ = ["ProcessGroup"]

logger = logging.getLogger("asgi_supervisor")

_MAX_TRIGGER = 200


class ProcessGroup:
    """The drain protocol between this process and the other workers of its server.

    Example::

        group = ProcessGroup(presence, on_drain=lambda trigger, deadline: ...,
                             describe=lambda timeout: ...)
        presence.start()                            # the group hears once it joined
        group.announce("drain endpoint", deadline)  # every sibling's on_drain runs
        outcomes = await group.ask_siblings(2.0)

    Args:
        presence: this process's membership in its listener folders, whose owner starts
            and closes it.
        on_drain: called with ``(trigger, deadline)`` when a sibling announces a drain with
            an earlier deadline than any heard so far; it must not raise.
        describe: ``await describe(drain_timeout)`` returns this process's status for a
            sibling's query, waiting at most *drain_timeout* seconds for the drain to finish.
    """

    def __init__(
        self,
        presence: Presence,
        *,
        on_drain: Callable[[str, float], None],
        describe: Callable[[float], Awaitable[dict[str, Any]]],
    ) -> None:
        self._presence = presence
        self._channel = presence.channel
        self._on_drain = on_drain
        self._describe = describe
        self.pid = presence.pid
        # The earliest drain this member knows of: (trigger, deadline, origin pid).
        self._drain: tuple[str, float, int] | None = None
        presence.on_joined(self._joined)
        self._channel.on_message("drain", self._heard_drain)
        self._channel.on_message("hello", self._heard_hello)
        self._channel.serve("status", self._status)

    def __repr__(self) -> str:
        return f"<ProcessGroup {self._presence!r}>"

    @property
    def joined(self) -> bool:
        """True once this process has found its listening socket and joined its group."""
        return self._presence.joined

    @property
    def state(self) -> str:
        """``"joined"``, ``"unavailable"`` (joining failed: the log says why) or
        ``"pending"`` (no listening socket found yet), for `/health`."""
        if self._presence.joined:
            return "joined"
        return "unavailable" if self._presence.problem is not None else "pending"

    async def reach_problem(self) -> str | None:
        """Why a drain begun here would not reach every worker of the server, or None.

        A member reaches every other member; a process outside the group (joining failed,
        or none has happened yet: one is tried first) reaches nobody, which matters only if
        it is one of several workers. Reads ``/proc`` in a thread (milliseconds), and may
        wait for a join (file operations, each lock bounded by 2 s).
        """
        if not self._presence.joined and self._presence.problem is None:
            await asyncio.shield(self._presence.refresh())
        if self._presence.joined:
            return None
        siblings = await asyncio.to_thread(self._presence.sibling_workers)
        if not siblings:
            return None
        pids = ", ".join(str(pid) for pid in sorted(siblings))
        why = self._presence.problem or "no listening socket of this worker was found"
        return (
            f"this worker (pid {self.pid}) is one of several of its server (also pid {pids}) "
            f"but is not in their process group ({why}), so a drain here would reach it "
            "alone; nothing was drained. Fix the cause (the server's log names it), or "
            "drain the server with a signal."
        )

    def is_shared(self) -> bool:
        """True once a sibling has been seen: this process is one worker of several.

        Then it must not end itself after a drain no signal followed: its server would
        start a fresh worker in its place, ready, while the siblings have left.
        """
        return self._channel.is_shared()

    def _joined(self) -> None:
        # A drain may already be under way, ours (announced before we joined) or the group's
        # (announced before we joined): say ours, and ask for theirs.
        hello = {"type": "hello"}
        if self._drain is not None:
            self._channel.broadcast_soon(self._drain_message(*self._drain), hello)
        else:
            self._channel.broadcast_soon(hello)

    # -- sending ----------------------------------------------------------------------------

    def announce(self, trigger: str, deadline: float) -> None:
        """Tell every sibling to drain, by *deadline* (a ``time.monotonic()`` value).

        At most once per member, and never once it has heard a drain: the group already
        knows. Before the group is joined the drain is kept and sent on joining. The
        folders are listed in a thread, so the siblings hear a moment after this returns.
        """
        if self._drain is not None:
            return
        self._drain = (trigger[:_MAX_TRIGGER], deadline, self.pid)
        if self._presence.joined:
            self._channel.broadcast_soon(self._drain_message(*self._drain))

    async def ask_siblings(self, answer_timeout: float) -> list[dict[str, Any]]:
        """Each sibling's status, once drained or after *answer_timeout* seconds, sorted by pid.

        A sibling that does not answer in time is listed with state ``"unknown"`` and the
        reason, and so is a worker of the server that is not in the group (its join failed).
        Cancellation: stops waiting; late answers are dropped.
        """
        # The sibling waits up to *answer_timeout* itself; allow for the trip. The question
        # carries our drain: a sibling that joined while it was broadcast (its hello crossed
        # the broadcast) adopts it before it answers, instead of answering "not drained".
        body: dict[str, Any] = {"timeout": answer_timeout}
        if self._drain is not None:
            body["drain"] = self._drain_message(*self._drain)
        replies = await self._channel.ask("status", body, answer_timeout + 0.5)
        outcomes = []
        for pid, reply in replies.items():
            if reply.body is not None:
                outcomes.append({**reply.body, "pid": pid})
            else:
                outcomes.append(
                    {"pid": pid, "state": "unknown", "drained": False, "error": reply.error}
                )
        outside = await asyncio.to_thread(self._presence.sibling_workers)
        for pid in sorted(outside - replies.keys()):
            error = "a worker of this server outside this one's process group: it heard no drain"
            outcomes.append({"pid": pid, "state": "unknown", "drained": False, "error": error})
        return sorted(outcomes, key=lambda outcome: int(outcome["pid"]))

    @staticmethod
    def _drain_message(trigger: str, deadline: float, origin: int) -> dict[str, Any]:
        return {"type": "drain", "trigger": trigger, "deadline": deadline, "origin": origin}

    # -- receiving --------------------------------------------------------------------------

    def _heard_drain(self, message: dict[str, Any]) -> None:
        trigger = str(message["trigger"])[:_MAX_TRIGGER]
        deadline, origin = float(message["deadline"]), int(message["origin"])
        if not math.isfinite(deadline):
            raise ValueError(f"deadline {deadline!r} is not a time")
        if self._drain is not None and self._drain[1] <= deadline:
            return  # we already drain by an earlier deadline (or this same one)
        self._drain = (trigger, deadline, origin)
        try:
            self._on_drain(f"{trigger} (from pid {origin})", deadline)
        except Exception:
            logger.exception("process group: starting the drain failed")

    def _heard_hello(self, message: dict[str, Any]) -> None:
        if self._drain is not None:
            self._channel.send(int(message["pid"]), self._drain_message(*self._drain))

    async def _status(self, body: dict[str, Any]) -> dict[str, Any]:
        if isinstance(body.get("drain"), dict):
            self._heard_drain(body["drain"])  # a malformed one fails the answer, logged
        try:
            status = await self._describe(float(body["timeout"]))
        except Exception:
            logger.exception("process group: describing this process failed")
            status = {"state": "unknown", "drained": False}
        return {k: v for k, v in status.items() if k != "pid"}
