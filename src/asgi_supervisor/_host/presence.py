"""This process's membership in the folders of the listeners it serves.

Every process that serves a listener is a member of that listener's folder (see
`listener_folder`: one per address and port) from the moment its `ListenerWatch` finds the
listening socket until its lifespan ends. The membership is the one cross-process mechanism
of the package: the process group (`_group`) and the metrics of a group speak over its
`channel`, and the local admin token (`_admin`) lives beside it, through a join hook; none
of them knows of the others.

* **Joining**, in a thread: find the runtime directory (`placement`: where siblings already
  are, else the first safe place); sweep the folders of other listeners whose members all
  died; then, for each new listener, under its folder's lock: make the folder; clear it if
  no member is alive (a dead server's token is never inherited); place our socket (bound in
  the first folder, hard-linked into the others: a unix socket is found by its inode, so
  every name reaches it); run the join hooks (the local token and its record). Then, on the
  loop, the joined callbacks (the group says hello).
* **Failing** (an unsafe runtime directory, a read-only file system, a lock held too long):
  logged as an ERROR the first time and at DEBUG after, since an endpoint asks again at most
  once a second; `problem` says why, and `sibling_workers` tells whether this process is
  one of several workers of its server all the same, which the process group needs to
  refuse a drain that would reach this worker alone.
* **Leaving**, in a thread, under each folder's lock: unlink our socket; the last live member
  removes every file and the folder, then a default runtime directory left empty.
* **Who.** The lifespan's run makes one `Presence` when the local token or the process
  group is on, starts it once the app's startup is over and closes it before the server
  hears that the lifespan ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Collection
from pathlib import Path

from . import listener_folder as folders
from .channel import Channel
from .listeners import ListenerWatch
from .proc import sibling_workers
from .runtime_dir import RuntimeDir, RuntimeDirError, open_private, remove_if_empty
from .tcp_table import Listener, endpoint_text, listening_sockets, listening_table

__all__ = ["JoinHook", "Presence"]

logger = logging.getLogger("asgi_supervisor")

# A leaving process may remove a default runtime directory, empty, as we join.
_ATTEMPTS = 3

JoinHook = Callable[[int, Listener], None]
"""Called as ``hook(folder_fd, listener)`` in the join's thread, under the folder's lock, for
each of our listening sockets on the folder's address and port."""

Endpoint = tuple[str, int]


class Presence:
    """This process as a member of the folders of the listeners it serves.

    Example::

        presence = Presence(loop, runtime_dir=lambda found: locate(None, os.environ, found))
        presence.on_join(write_token)        # in each folder joined, under its lock
        presence.start()                     # joins once the watch finds a port
        await presence.channel.ask("status", {}, answer_timeout=1.0)
        await presence.aclose()              # leaves; the last one removes the folder

    Failures (an unsafe runtime directory, a read-only file system) are logged, as an ERROR
    once; the process then has no sibling and no local token until a join succeeds.

    Args:
        loop: the event loop of the lifespan.
        runtime_dir: ``runtime_dir(endpoints)`` says where the folders are, and whether it
            may be removed once empty, for a first join of the listeners *endpoints*; asked
            in the join's thread (finding it looks at the file system).
        pid: the name of our socket; this process's pid unless a test gives its own.
        find: how the watch finds the listening sockets (run in a thread).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        runtime_dir: Callable[[Collection[Endpoint]], RuntimeDir],
        pid: int | None = None,
        find: Callable[[], set[Listener]] = listening_sockets,
    ) -> None:
        self._loop = loop
        self._locate = runtime_dir
        self._runtime_dir: RuntimeDir | None = None  # set by the first join's thread
        self.pid = os.getpid() if pid is None else pid
        self.watch = ListenerWatch(find)
        self.channel = Channel(loop, self.pid)
        # (address, port) -> our kept descriptor of its folder; changed on the loop only.
        self._folders: dict[Endpoint, int] = {}
        # Why the last join failed, if it did; None once one succeeds. Set on the loop.
        self.problem: str | None = None
        self._reported = False  # the first failure was logged as an ERROR
        self._join_hooks: list[JoinHook] = []
        self._joined_callbacks: list[Callable[[], None]] = []
        self._joining: asyncio.Task[None] | None = None
        self._broken = False
        self._closed = False

    def __repr__(self) -> str:
        joined = ",".join(endpoint_text(endpoint) for endpoint in sorted(self._folders))
        return f"<Presence pid={self.pid} listeners={joined or 'none'}>"

    @property
    def path(self) -> Path:
        """The runtime directory the folders are in, once a join has found it."""
        if self._runtime_dir is None:
            raise RuntimeError(f"{self!r} has not found its runtime directory yet")
        return self._runtime_dir.path

    def _where(self, endpoints: Collection[Endpoint]) -> RuntimeDir:
        if self._runtime_dir is None:
            self._runtime_dir = self._locate(endpoints)
            for reason in self._runtime_dir.skipped:
                logger.warning("runtime directory: %s", reason)
        return self._runtime_dir

    @property
    def joined(self) -> bool:
        """True once this process is a member of a listener's folder."""
        return bool(self._folders)

    @property
    def endpoints(self) -> frozenset[Endpoint]:
        """The addresses and ports this process was last found listening on."""
        return frozenset(listener.endpoint for listener in self.watch.listeners)

    def sibling_workers(self) -> set[int]:
        """The pids of the other workers of our server, members of the group or not: the
        other children of our parent that hold a listening socket on one of our addresses
        and ports (`proc.sibling_workers`). Blocking (``/proc`` reads): in a thread."""
        endpoints = self.endpoints
        table = listening_table()
        return sibling_workers({sock.inode for sock in table if sock.endpoint in endpoints})

    def on_join(self, hook: JoinHook) -> None:
        """Run ``hook(folder_fd, listener)`` in each folder joined, under its lock, in a
        thread; an ``OSError`` it raises fails the join."""
        self._join_hooks.append(hook)

    def on_joined(self, callback: Callable[[], None]) -> None:
        """Call *callback* on the loop after each join of new folders; it must not raise."""
        self._joined_callbacks.append(callback)

    def start(self) -> None:
        """Join the folder of each listener the watch finds from now on; in the loop."""
        if not self._closed:
            self.watch.subscribe(self._found, self._not_found)
            self.watch.start()

    def refresh(self) -> asyncio.Task[None]:
        """Look for the listeners now and join any new folder, or join the update under way.

        Await it through `asyncio.shield`: cancelling it stops no thread.
        """
        if self._joining is None:
            self._joining = self._loop.create_task(self._join(look=True))
        return self._joining

    async def aclose(self) -> None:
        """Leave every folder: the last live member removes it, and a default runtime
        directory it leaves empty.

        Waits for a join under way (a thread of file operations, each lock bounded by 2 s),
        then leaves in a thread, under each folder's lock. File system errors are logged,
        never raised. Cancellation: delayed until the leaving thread returns, so the files
        are gone whenever this returns.
        """
        self._closed = True
        self.watch.unsubscribe(self._found)
        await self.watch.aclose()
        if self._joining is not None:
            await asyncio.wait({self._joining})
        await self.channel.aclose()
        joined, self._folders = self._folders, {}
        if not joined:
            return
        leaving = asyncio.ensure_future(asyncio.to_thread(self._leave_all, joined))
        try:
            await asyncio.shield(leaving)
        except asyncio.CancelledError:
            await asyncio.wait({leaving})
            raise

    # -- joining ------------------------------------------------------------------------------

    def _found(self, listeners: frozenset[Listener]) -> None:
        # Most looks find the listeners already joined; an update under way gets new ones.
        new = {listener.endpoint for listener in listeners} - self._folders.keys()
        if self._joining is None and new:
            self._joining = self._loop.create_task(self._join(look=False))

    def _not_found(self) -> None:
        logger.info("no listening TCP socket found: this process has no siblings")

    async def _join(self, *, look: bool) -> None:
        try:
            if self._closed:
                return  # asked after the lifespan ended: no look, no join
            if look:
                # Shielded: our cancellation must not cut the watch's look short.
                await asyncio.shield(self.watch.look())
            while not self._closed and not self._broken:
                listeners = self.watch.listeners
                new = sorted({listener.endpoint for listener in listeners} - self._folders.keys())
                if not new:
                    break
                ours = [listener for listener in listeners if listener.endpoint in new]
                sock, before = self.channel.socket(), tuple(self._folders.values())
                joined, shared = await asyncio.to_thread(self._enter, sock, before, ours)
                self._folders.update(joined)
                self.problem = None
                self.channel.attach(tuple(self._folders.values()), shared=shared)
                where = str(self.path)  # found by the join's thread
                logger.info(
                    "joined the listener folder of %s in %s",
                    ", ".join(endpoint_text(endpoint) for endpoint in new),
                    where,
                    extra={"pid": self.pid, "runtime_dir": where},
                )
                for callback in self._joined_callbacks:
                    callback()
        except OSError as exc:  # TimeoutError (a lock) included
            self.channel.discard()
            # An unsafe directory stays unsafe: stop trying. Anything else may pass.
            self._broken = isinstance(exc, RuntimeDirError)
            self.problem = str(exc)
            await self._report(exc)
        finally:
            self._joining = None

    async def _report(self, exc: OSError) -> None:
        # Logged as an ERROR once: an endpoint asks again at most once a second, and a log
        # line a second per worker says nothing new.
        if self._reported:
            logger.debug("still cannot join the listener folder: %s", exc)
            return
        self._reported = True
        siblings = await asyncio.to_thread(self.sibling_workers)
        if siblings:
            pids = ", ".join(str(pid) for pid in sorted(siblings))
            consequence = (
                f"this process is one of several workers of its server (also pid {pids}), "
                "so a drain through its drain endpoint is refused (it would reach this "
                "worker alone); drain the server with a signal"
            )
        else:
            consequence = "this process drains alone"
        where = "?" if self._runtime_dir is None else str(self._runtime_dir.path)
        logger.error(
            "cannot join the listener folder in %s: %s; until this is fixed %s, and its "
            "admin endpoints accept only the configured admin_token",
            where,
            exc,
            consequence,
            extra={"runtime_dir": where},
        )

    def _enter(
        self, sock: socket.socket, before: tuple[int, ...], listeners: list[Listener]
    ) -> tuple[dict[Endpoint, int], bool]:
        """In a thread: join the folders of *listeners*; return their kept descriptors and
        whether a live sibling was in one. *before* are the folders joined already."""
        endpoints = {listener.endpoint for listener in listeners}
        for attempt in range(1, _ATTEMPTS + 1):
            where = self._where(endpoints)
            try:
                # A default directory was made by `placement`: if it is gone, choose again.
                base_fd = open_private(where.path, create=not where.removable)
            except FileNotFoundError:
                if before or attempt == _ATTEMPTS:
                    raise
                self._runtime_dir = None
                continue
            try:
                return self._enter_folders(base_fd, sock, before, listeners)
            except FileNotFoundError:
                # The last user of the runtime directory removed it, empty, between our
                # open and our mkdir: find it, or make it, again.
                if before or attempt == _ATTEMPTS:
                    raise
                self._runtime_dir = None
            finally:
                os.close(base_fd)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _enter_folders(
        self, base_fd: int, sock: socket.socket, before: tuple[int, ...], listeners: list[Listener]
    ) -> tuple[dict[Endpoint, int], bool]:
        joined: dict[Endpoint, int] = {}
        shared = False
        first = before[0] if before else None
        endpoints = sorted({listener.endpoint for listener in listeners})
        try:
            if not before:
                keep = {folders.folder_name(endpoint) for endpoint in endpoints}
                _sweep(base_fd, keep=keep, pid=self.pid)
            for endpoint in endpoints:
                with folders.locked(base_fd, folders.folder_name(endpoint), create=True) as fd:
                    if folders.live_members(fd, skip=self.pid):
                        shared = True
                    else:
                        folders.clear(fd)  # left by members that died: never inherited
                    _place(sock, fd, self.pid, first)
                    joined[endpoint] = folders.reopen(fd)
                    first = joined[endpoint] if first is None else first
                    for listener in listeners:
                        if listener.endpoint == endpoint:
                            for hook in self._join_hooks:
                                hook(fd, listener)
        except BaseException:
            self._leave(base_fd, joined)  # what we joined before the failure, we leave
            raise
        return joined, shared

    # -- leaving ------------------------------------------------------------------------------

    def _leave_all(self, joined: dict[Endpoint, int]) -> None:
        assert self._runtime_dir is not None, "joined, so the runtime directory was found"
        where = self._runtime_dir
        try:
            base_fd = open_private(where.path, create=False)
        except OSError as exc:
            logger.warning("cannot leave the listener folders: %s", exc)
            for fd in joined.values():
                os.close(fd)
            return
        try:
            self._leave(base_fd, joined)
        finally:
            os.close(base_fd)
        if where.removable:
            remove_if_empty(where.path)

    def _leave(self, base_fd: int, joined: dict[Endpoint, int]) -> None:
        """In a thread: leave the folders of *joined*, closing the kept descriptors."""
        for endpoint, kept in joined.items():
            os.close(kept)
            name = folders.folder_name(endpoint)
            try:
                with folders.locked(base_fd, name, create=False) as fd:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(folders.socket_name(self.pid), dir_fd=fd)
                    if not folders.live_members(fd, skip=self.pid):
                        folders.clear(fd)
                        os.rmdir(name, dir_fd=base_fd)
            except FileNotFoundError:
                continue  # removed already
            except OSError as exc:
                # Our socket is closed: the next member to join finds it refused and clears.
                logger.warning("cannot leave the listener folder %s: %s", name, exc)


def _place(sock: socket.socket, fd: int, pid: int, first: int | None) -> None:
    """Put our socket in the folder *fd*: bind it there, or link the *first* folder's name."""
    name = folders.socket_name(pid)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=fd)  # ours by name: left by a killed process with our pid
    if first is None:
        sock.bind(folders.socket_path(fd, pid))
    else:
        os.link(name, name, src_dir_fd=first, dst_dir_fd=fd)


def _sweep(base_fd: int, *, keep: set[str], pid: int) -> None:
    """Remove the folders of other listeners whose members all died (SIGKILL, the
    watchdog's exit); never raises. A folder whose lock is held is busy: left alone."""
    try:
        names = {name for name in os.listdir(base_fd) if name.startswith(folders.FOLDER_PREFIX)}
    except OSError:
        return
    for name in sorted(names - keep):
        try:
            with folders.locked(base_fd, name, create=False, timeout=0.0) as fd:
                if not folders.live_members(fd, skip=pid):
                    folders.clear(fd)
                    os.rmdir(name, dir_fd=base_fd)
        except OSError:
            continue  # busy, gone, or not ours to judge
