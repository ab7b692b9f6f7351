"""The messages between the members of a listener's folder: one unix datagram socket each.

Each member's socket sits in its listener folders as ``<pid>.sock`` (see `listener_folder`;
`presence` binds it and removes it). The process group (`_group`) and the metrics of a
process group (`_observe.metrics_group`) speak over it; neither knows of the other.

* **What a message is.** A JSON object, one per datagram (a datagram keeps each one whole),
  at most `MAX_MESSAGE` bytes, with its ``type`` and the sender's ``pid``. Answers go to the
  sender's socket by its pid, in our folders, never to the address the kernel reports.
* **Queries.** `ask` sends ``ask`` (``kind``, ``id``, ``body``, ``timeout``) to every sibling
  and gathers the ``answer`` messages (``id``, ``body`` or ``error``) until all came or the
  timeout; each sibling's loop answers with the service registered for the kind (`serve`).
* **Never blocking.** The socket is non-blocking and read through ``loop.add_reader``;
  listing a folder runs in a thread. A sibling whose queue is full (its loop is blocked;
  ``net.unix.max_dgram_qlen`` is 10 by default) misses a message, which is logged; an
  answer is tried again until its asker gives up, since many siblings answer at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import socket
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from . import listener_folder as folders

__all__ = ["MAX_MESSAGE", "Channel", "MessageTooLargeError", "Reply", "encode"]

logger = logging.getLogger("asgi_supervisor")

# The metrics snapshot of a large app (200 workers, 50 checks) is about 60 KB; the test of
# `_observe.metrics_group` fails if it outgrows this. Linux's default socket send buffer
# (212992 bytes) sends longer datagrams, and ours is raised to twice this if a host set it
# lower (EMSGSIZE otherwise).
MAX_MESSAGE = 128 * 1024
_RETRY_DELAY = 0.005
_SENT, _GONE, _FULL, _FAILED = "sent", "gone", "full", "failed"

Service = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
"""Answers the body of an ``ask`` with the body of its answer."""


class MessageTooLargeError(ValueError):
    """A message does not fit in one datagram of the channel."""


@dataclass(frozen=True, slots=True)
class Reply:
    """One sibling's answer to an `ask`: its body, or why there is none."""

    body: dict[str, Any] | None
    error: str | None = None


@dataclass(slots=True)
class _Query:
    expected: set[int] = field(default_factory=set)
    replies: dict[int, Reply] = field(default_factory=dict)
    complete: asyncio.Event = field(default_factory=asyncio.Event)


def encode(message: dict[str, Any]) -> bytes:
    """The datagram of *message*.

    Raises:
        MessageTooLargeError: it is longer than `MAX_MESSAGE` bytes.
    """
    data = json.dumps(message, separators=(",", ":")).encode()
    if len(data) > MAX_MESSAGE:
        raise MessageTooLargeError(
            f"A {message.get('type')!r} message of {len(data)} bytes exceeds the channel's "
            f"limit of {MAX_MESSAGE} bytes."
        )
    return data


class Channel:
    """This process's socket in its listener folders, and what it says and hears there.

    Example::

        channel.on_message("drain", heard_drain)    # the group's protocol
        channel.serve("status", describe)            # answers a sibling's ask
        replies = await channel.ask("status", {}, answer_timeout=1.0)

    `presence` makes it, binds its socket, tells it the folders (`attach`) and closes it.

    Args:
        loop: the event loop that reads the socket (through ``add_reader``).
        pid: the name of our socket and of our messages.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, pid: int) -> None:
        self._loop = loop
        self.pid = pid
        self._sock: socket.socket | None = None
        self._folders: tuple[int, ...] = ()  # kept descriptors, given by `attach`
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {}
        self._services: dict[str, Service] = {}
        self._queries: dict[str, _Query] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._shared = False
        self._closed = False

    def on_message(self, kind: str, handler: Callable[[dict[str, Any]], None]) -> None:
        """Call ``handler(message)`` on the loop for each message of type *kind*.

        A handler that raises ``ValueError``, ``KeyError`` or ``TypeError`` was given a
        malformed message: it is logged and dropped.
        """
        self._handlers[kind] = handler

    def serve(self, kind: str, service: Service) -> None:
        """Answer each sibling's ``ask`` of *kind* with ``await service(body)``."""
        self._services[kind] = service

    def is_shared(self) -> bool:
        """True once a sibling has been seen: this process is one of several."""
        return self._shared

    # -- what presence does -------------------------------------------------------------------

    def socket(self) -> socket.socket:
        """The unbound socket `presence` binds in the first folder, made on first use."""
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.setblocking(False)
            # A datagram longer than the send buffer cannot be sent at all (EMSGSIZE).
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) < 2 * MAX_MESSAGE:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2 * MAX_MESSAGE)
            self._sock = sock
        return self._sock

    def attach(self, folder_fds: tuple[int, ...], *, shared: bool) -> None:
        """Our socket is in the folders *folder_fds* now (*shared*: with a live sibling)."""
        if not self._folders and folder_fds and self._sock is not None:
            self._loop.add_reader(self._sock.fileno(), self._readable)
        self._folders = folder_fds
        self._shared = self._shared or shared

    def discard(self) -> None:
        """Drop a socket bound to a name that is gone again (a join that failed)."""
        if self._sock is not None and not self._folders:
            self._sock.close()
            self._sock = None

    async def aclose(self) -> None:
        """Stop hearing and answering, and close the socket (its names are `presence`'s).

        Waits for our answers and broadcasts to end: cancelled, they end at their next step.
        """
        self._closed = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        sock, self._sock = self._sock, None
        if sock is not None:
            if self._folders:
                self._loop.remove_reader(sock.fileno())
            sock.close()
        self._folders = ()

    # -- sending ------------------------------------------------------------------------------

    async def broadcast(self, *messages: dict[str, Any]) -> list[int]:
        """Send *messages*, in order, to every live sibling; return the live ones' pids.

        A sibling that died (its socket refuses) is skipped, and the next join or leave
        removes its socket; one whose queue is full misses the messages, which is logged.
        """
        if not self._folders or self._closed:
            return []
        listed = await asyncio.to_thread(_list_members, self._folders)
        datagrams = [encode({**message, "pid": self.pid}) for message in messages]
        live: list[int] = []
        seen = {self.pid}
        for fd, pids in listed:
            for pid in sorted(pids - seen):
                seen.add(pid)
                outcomes = {self._deliver(folders.socket_path(fd, pid), d) for d in datagrams}
                if _GONE in outcomes:
                    continue
                live.append(pid)
                if _FULL in outcomes:
                    logger.warning("sibling %d missed a message: its queue is full", pid)
        self._shared = self._shared or bool(live)
        return live

    def broadcast_soon(self, *messages: dict[str, Any]) -> None:
        """`broadcast` in a task of ours (cancelled if still running when we leave)."""
        self._spawn(self.broadcast(*messages), "asgi-supervisor broadcast")

    def send(self, pid: int, message: dict[str, Any]) -> bool:
        """Send *message* to sibling *pid*; False if it did not get there."""
        return self._send(pid, encode({**message, "pid": self.pid})) == _SENT

    def _send(self, pid: int, data: bytes) -> str:
        outcome = _GONE
        for fd in self._folders:
            outcome = self._deliver(folders.socket_path(fd, pid), data)
            if outcome != _GONE:
                return outcome
        return outcome  # in none of our folders

    def _deliver(self, path: str, data: bytes) -> str:
        if self._sock is None:
            return _GONE
        try:
            self._sock.sendto(data, path)
        except (ConnectionRefusedError, FileNotFoundError):
            return _GONE  # it died, or it left meanwhile
        except BlockingIOError:
            return _FULL
        except OSError as exc:
            logger.warning("cannot reach the sibling at %s: %s", path, exc)
            return _FAILED
        return _SENT

    # -- asking -------------------------------------------------------------------------------

    async def ask(self, kind: str, body: dict[str, Any], answer_timeout: float) -> dict[int, Reply]:
        """Each live sibling's answer to *kind* with *body*, by pid, waiting at most
        *answer_timeout* seconds; one that does not answer in time gets a `Reply` saying so.

        Cancellation: stops waiting; late answers are dropped.
        """
        query_id = secrets.token_hex(8)
        query = _Query()
        self._queries[query_id] = query
        try:
            message: dict[str, Any] = {"type": "ask", "kind": kind, "id": query_id}
            message.update(body=body, timeout=answer_timeout)
            query.expected.update(await self.broadcast(message))
            if not query.expected <= query.replies.keys():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(answer_timeout):
                        await query.complete.wait()
        finally:
            del self._queries[query_id]
        silent = Reply(None, f"no answer in {answer_timeout:.1f} s")
        return {pid: query.replies.get(pid, silent) for pid in sorted(query.expected)}

    async def _answer(self, message: dict[str, Any]) -> None:
        asker, query_id, kind = int(message["pid"]), str(message["id"]), str(message["kind"])
        answer_timeout = float(message["timeout"])
        service = self._services.get(kind)
        answer: dict[str, Any] = {"type": "answer", "id": query_id, "pid": self.pid}
        try:
            if service is None:
                raise LookupError(f"this process does not answer {kind!r}")
            data = encode({**answer, "body": await service(dict(message["body"]))})
        except (LookupError, MessageTooLargeError) as exc:
            logger.warning("cannot answer a sibling's %r: %s", kind, exc)
            data = encode({**answer, "error": str(exc)})
        except Exception:
            logger.exception("answering a sibling's %r failed", kind)
            data = encode({**answer, "error": f"answering {kind!r} failed"})
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(answer_timeout):
                while self._send(asker, data) == _FULL:
                    await asyncio.sleep(_RETRY_DELAY)

    # -- receiving ----------------------------------------------------------------------------

    def _readable(self) -> None:
        while self._sock is not None:
            try:
                # One byte more than a message may have: a longer datagram shows as such.
                data = self._sock.recv(MAX_MESSAGE + 1)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                logger.warning("receiving from the siblings failed: %s", exc)
                return
            self._shared = True
            try:
                if len(data) > MAX_MESSAGE:
                    raise ValueError(f"longer than {MAX_MESSAGE} bytes")
                self._handle(json.loads(data))
            except (ValueError, KeyError, TypeError) as exc:
                logger.warning("ignoring a malformed message from a sibling: %r (%s)", data, exc)

    def _handle(self, message: dict[str, Any]) -> None:
        kind, sender = message["type"], int(message["pid"])
        if kind == "ask":
            self._spawn(self._answer(message), "asgi-supervisor answer")
        elif kind == "answer":
            query = self._queries.get(str(message["id"]))
            if query is not None:
                body = message.get("body")
                error = message.get("error")
                query.replies[sender] = Reply(
                    None if body is None else dict(body), None if error is None else str(error)
                )
                if query.expected and query.expected <= query.replies.keys():
                    query.complete.set()
        elif kind in self._handlers:
            self._handlers[kind](message)
        else:
            logger.debug("ignoring a %r message: nothing here handles it", kind)

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        if self._closed:
            coro.close()
            return
        task = self._loop.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _list_members(fds: tuple[int, ...]) -> list[tuple[int, set[int]]]:
    return [(fd, folders.member_pids(fd)) for fd in fds]
