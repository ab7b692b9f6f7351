"""A process group: the worker processes of one server drain together.

uvicorn ``--workers N``, gunicorn ``-w N`` and granian ``--workers N`` run one supervisor per
worker process. A preStop ``/drain`` reaches one of them; this module tells the others.

* **Who is a sibling.** Every worker of a server listens on the same TCP port, in the same
  network namespace (`proc`: uvicorn and gunicorn workers share their parent's socket,
  granian's open one each with ``SO_REUSEPORT``). A group is a folder named after the port
  and the namespace in the private runtime folder of our user (`runtime_dir`, shared with
  the local token files); each member binds a unix datagram socket there named after its
  pid (`channel`). A process listening on several ports is a member of each group,
  under one socket.
* **When.** uvicorn and gunicorn hand the socket over before lifespan startup; granian's
  workers, and single-process uvicorn and hypercorn, listen only after it. So the group
  subscribes to the lifespan's `ListenerWatch` (`listeners`), which looks when the startup
  is over and then on a bounded schedule (about 25 s) for the local token too, and joins
  once a look finds a listener.
* **What is said.** Small JSON datagrams: ``drain`` (trigger, deadline as a
  ``time.monotonic()`` value, which is host-wide on Linux, origin pid), ``hello`` (a newcomer
  asks whether the group is draining), ``query``/``status`` (how far each one has drained).
* **Races.** Two workers that begin draining at once both announce; every member keeps the
  earliest deadline it hears of. A member announces at most once and never after it heard a
  drain, so a drain is never re-broadcast (no storms). A newcomer that binds while a drain is
  being announced either is in the announcer's listing or sends its ``hello`` after the
  announcer recorded the drain, which the announcer then answers.
* **What stays local.** Only `announce` sends a drain; the supervisor calls it for the drain
  endpoint, the API and a critical failure, never for a signal: each worker gets its own
  signal, and gunicorn's reload sends SIGTERM to the old workers only.
* **Nothing left behind.** `close` removes our socket, and the group's folder when it is
  empty; a socket whose process was killed (``ECONNREFUSED``) is removed by whoever finds
  it, and every join sweeps the runtime folder for such sockets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asgi_supervisor._host.proc import network_namespace

from .channel import GroupSocket

if TYPE_CHECKING:
    from asgi_supervisor._host.listeners import ListenerWatch

__all__ = ["ProcessGroup"]

logger = logging.getLogger("asgi_supervisor")

_MAX_TRIGGER = 200


class ProcessGroup:
    """This process's membership in the group of workers that share its listening socket.

    Example::

        group = ProcessGroup(loop, folder=Path("/run/user/1000/asgi-supervisor"),
                             on_drain=lambda trigger, deadline: ...,
                             describe=lambda timeout: ...)
        group.start(watch)                         # joins once `watch` finds a listener
        group.announce("drain endpoint", deadline)  # every sibling's on_drain runs
        outcomes = await group.ask_siblings(2.0)
        group.close()

    Args:
        loop: the event loop that receives messages (through ``add_reader``).
        folder: the runtime folder; groups are folders inside it.
        remove_folder: remove *folder* too when leaving it empty (no group, no token file).
        on_drain: called with ``(trigger, deadline)`` when a sibling announces a drain with
            an earlier deadline than any heard so far; it must not raise.
        describe: ``await describe(drain_timeout)`` returns this process's status for a
            sibling's query, waiting at most *drain_timeout* seconds for the drain to finish.
        pid: the name of our socket and of our answers; this process's pid by default.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        folder: Path,
        remove_folder: bool = False,
        on_drain: Callable[[str, float], None],
        describe: Callable[[float], Awaitable[dict[str, Any]]],
        pid: int | None = None,
    ) -> None:
        self._loop = loop
        self._base = folder
        self._remove_base = remove_folder
        self._on_drain = on_drain
        self._describe = describe
        self.pid = os.getpid() if pid is None else pid
        self._socket: GroupSocket | None = None
        self._listeners: ListenerWatch | None = None
        self._closed = False
        # The earliest drain this member knows of: (trigger, deadline, origin pid).
        self._drain: tuple[str, float, int] | None = None
        self._shared = False
        self._queries: dict[str, tuple[dict[int, dict[str, Any]], set[int], asyncio.Event]] = {}
        self._answering: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        where = self._socket.names[0].parent.name if self._socket else "not joined"
        return f"<ProcessGroup {where} pid={self.pid}>"

    @property
    def joined(self) -> bool:
        """True once this process has found its listening socket and joined its group."""
        return self._socket is not None

    def is_shared(self) -> bool:
        """True once a sibling has been seen: this process is one worker of several.

        Then it must not end itself after a drain no signal followed: its server would
        start a fresh worker in its place, ready, while the siblings have left.
        """
        return self._shared

    # -- membership -------------------------------------------------------------------------

    def start(self, listeners: ListenerWatch) -> None:
        """Join the group of the ports *listeners* finds, once it finds one (see `listeners`;
        its owner starts and closes it)."""
        self._listeners = listeners
        listeners.subscribe(self._found, self._not_found)

    def _found(self, ports: frozenset[int]) -> None:
        if self._closed or self._socket is not None:
            return
        self._stop_listening()  # one join: ports opened later are not groups of ours
        try:
            self._join(sorted(ports))
        except OSError as exc:
            # A runtime folder we must not use, a read-only file system, a path too long
            # for a unix socket: drain alone, and say why.
            logger.warning("process group unavailable (%s): a drain reaches this worker only", exc)

    def _not_found(self) -> None:
        logger.info("no listening TCP socket found: this process drains alone")

    def _stop_listening(self) -> None:
        if self._listeners is not None:
            self._listeners.unsubscribe(self._found)
            self._listeners = None

    def _join(self, ports: list[int]) -> None:
        namespace = network_namespace()
        groups = [f"port{port}-net{namespace}" for port in ports]
        self._socket = GroupSocket.bind(self._base, groups, self.pid)
        self._loop.add_reader(self._socket.fileno(), self._readable)
        logger.info(
            "joined the process group of port %s",
            ",".join(str(port) for port in ports),
            extra={"pid": self.pid},
        )
        # A drain may already be under way, ours (announced before we joined) or the group's
        # (announced before we bound): say ours, and ask for theirs.
        if self._drain is not None:
            self._broadcast(self._drain_message(*self._drain))
        self._broadcast({"type": "hello", "pid": self.pid})

    def close(self) -> None:
        """Leave the group: stop listening, remove our socket and any folder left empty.

        Never raises. Answers still being prepared for siblings are cancelled: they only
        wait, and end at their next step without anyone awaiting them.
        """
        self._closed = True
        self._stop_listening()
        for task in self._answering:
            task.cancel()
        if self._socket is not None:
            self._loop.remove_reader(self._socket.fileno())
            self._socket.close(base=self._base if self._remove_base else None)
            self._socket = None

    # -- sending ----------------------------------------------------------------------------

    def announce(self, trigger: str, deadline: float) -> None:
        """Tell every sibling to drain, by *deadline* (a ``time.monotonic()`` value).

        At most once per member, and never once it has heard a drain: the group already
        knows. Before the group is joined the drain is kept and sent on joining.
        """
        if self._drain is not None or self._closed:
            return
        self._drain = (trigger[:_MAX_TRIGGER], deadline, self.pid)
        if self._socket is not None:
            self._broadcast(self._drain_message(*self._drain))

    async def ask_siblings(self, answer_timeout: float) -> list[dict[str, Any]]:
        """Each sibling's status, once drained or after *answer_timeout* seconds, sorted by pid.

        A sibling that does not answer in time is listed with state ``"unknown"``.
        Cancellation: stops waiting; late answers are dropped.
        """
        if self._socket is None:
            return []
        query_id = secrets.token_hex(8)
        answers: dict[int, dict[str, Any]] = {}
        expected: set[int] = set()
        complete = asyncio.Event()
        self._queries[query_id] = (answers, expected, complete)
        try:
            message = {"type": "query", "id": query_id, "timeout": answer_timeout}
            expected.update(self._broadcast(message))
            if expected:
                try:
                    # The sibling waits up to *answer_timeout* itself; allow for the trip.
                    async with asyncio.timeout(answer_timeout + 0.5):
                        await complete.wait()
                except TimeoutError:
                    pass
        finally:
            del self._queries[query_id]
        silent = {
            "state": "unknown",
            "drained": False,
            "error": f"no answer in {answer_timeout:.1f} s",
        }
        return [answers.get(pid, {"pid": pid, **silent}) for pid in sorted(expected)]

    def _broadcast(self, message: dict[str, Any]) -> list[int]:
        """Send *message* to every sibling; return the pids it reached."""
        if self._socket is None:
            return []
        siblings = self._socket.siblings()
        self._shared = self._shared or bool(siblings)
        sent = self._socket.send
        return [pid for pid, path in siblings.items() if sent(path, message)]

    def _send(self, address: str, message: dict[str, Any]) -> None:
        if self._socket is not None:
            self._socket.send(address, message)

    @staticmethod
    def _drain_message(trigger: str, deadline: float, origin: int) -> dict[str, Any]:
        return {"type": "drain", "trigger": trigger, "deadline": deadline, "origin": origin}

    # -- receiving --------------------------------------------------------------------------

    def _readable(self) -> None:
        if self._socket is None:
            return
        for data, sender in self._socket.receive():
            self._shared = True
            try:
                message = json.loads(data)
                self._handle(message, sender)
            except (ValueError, KeyError, TypeError) as exc:
                logger.warning("process group: ignoring a malformed message: %r (%s)", data, exc)

    def _handle(self, message: dict[str, Any], sender: str) -> None:
        kind = message["type"]
        if kind == "drain":
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
        elif kind == "hello":
            if self._drain is not None and sender:
                self._send(sender, self._drain_message(*self._drain))
        elif kind == "query":
            if sender:
                answer = self._answer(str(message["id"]), float(message["timeout"]), sender)
                task = self._loop.create_task(answer, name="asgi-supervisor group answer")
                self._answering.add(task)
                task.add_done_callback(self._answering.discard)
        elif kind == "status":
            query = self._queries.get(str(message["id"]))
            if query is not None:
                answers, expected, complete = query
                status = {k: v for k, v in message.items() if k not in ("type", "id")}
                answers[int(status["pid"])] = status
                if expected and expected <= answers.keys():
                    complete.set()

    async def _answer(self, query_id: str, drain_timeout: float, sender: str) -> None:
        try:
            status = await self._describe(drain_timeout)
        except Exception:
            logger.exception("process group: describing this process failed")
            status = {"state": "unknown", "drained": False}
        self._send(sender, {**status, "type": "status", "id": query_id, "pid": self.pid})
