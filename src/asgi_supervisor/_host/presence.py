"""This process's membership in the folders of the listeners it serves.

Every process that serves a listener is a member of that listener's folder (see
`listener_folder`) from the moment its `ListenerWatch` finds the port until its lifespan
ends. The membership is the one cross-process mechanism of the package: the process group
(`_group`) and the metrics of a group speak over its `channel`, and the local admin token
(`_admin`) lives beside it, through a join hook; none of them knows of the others.

* **Joining**, in a thread: sweep the folders of other listeners whose members all died;
  then, for each new port, under its folder's lock: make the folder; clear it if no member
  is alive (a dead server's token is never inherited); place our socket (bound in the first
  folder, hard-linked into the others: a unix socket is found by its inode, so every name
  reaches it); run the join hooks (the local token). Then, on the loop, the joined
  callbacks (the group says hello).
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
from collections.abc import Callable
from pathlib import Path

from . import listener_folder as folders
from .channel import Channel
from .listeners import ListenerWatch
from .proc import listening_ports
from .runtime_dir import RuntimeDir, RuntimeDirError, open_private, remove_if_empty

__all__ = ["JoinHook", "Presence"]

logger = logging.getLogger("asgi_supervisor")

# A leaving process may remove a default runtime directory, empty, as we join.
_ATTEMPTS = 3

JoinHook = Callable[[int, int], None]
"""Called as ``hook(folder_fd, port)`` in the join's thread, under the folder's lock."""


class Presence:
    """This process as a member of the folders of the listeners it serves.

    Example::

        presence = Presence(loop, runtime_dir=lambda: locate(None, os.environ))
        presence.on_join(write_token)        # in each folder joined, under its lock
        presence.start()                     # joins once the watch finds a port
        await presence.channel.ask("status", {}, answer_timeout=1.0)
        await presence.aclose()              # leaves; the last one removes the folder

    Failures (an unsafe runtime directory, a read-only file system) are logged once per
    attempt; the process then has no sibling and no local token until one succeeds.

    Args:
        loop: the event loop of the lifespan.
        runtime_dir: where the folders are, and whether it may be removed once empty; asked
            in the first join's thread (finding it looks at the file system).
        pid: the name of our socket; this process's pid unless a test gives its own.
        find: how the watch finds the listening ports (run in a thread).
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        runtime_dir: Callable[[], RuntimeDir],
        pid: int | None = None,
        find: Callable[[], set[int]] = listening_ports,
    ) -> None:
        self._loop = loop
        self._locate = runtime_dir
        self._runtime_dir: RuntimeDir | None = None  # set by the first join's thread
        self.pid = os.getpid() if pid is None else pid
        self.watch = ListenerWatch(find)
        self.channel = Channel(loop, self.pid)
        # port -> our kept descriptor of its folder; changed on the loop only.
        self._folders: dict[int, int] = {}
        self._join_hooks: list[JoinHook] = []
        self._joined_callbacks: list[Callable[[], None]] = []
        self._joining: asyncio.Task[None] | None = None
        self._broken = False
        self._closed = False

    def __repr__(self) -> str:
        ports = ",".join(str(port) for port in sorted(self._folders)) or "none"
        return f"<Presence pid={self.pid} ports={ports}>"

    @property
    def path(self) -> Path:
        """The runtime directory the folders are in; in a thread (it may look for it)."""
        return self._where().path

    def _where(self) -> RuntimeDir:
        if self._runtime_dir is None:
            self._runtime_dir = self._locate()
        return self._runtime_dir

    @property
    def joined(self) -> bool:
        """True once this process is a member of a listener's folder."""
        return bool(self._folders)

    def on_join(self, hook: JoinHook) -> None:
        """Run ``hook(folder_fd, port)`` in each folder joined, under its lock, in a thread;
        an ``OSError`` it raises fails the join."""
        self._join_hooks.append(hook)

    def on_joined(self, callback: Callable[[], None]) -> None:
        """Call *callback* on the loop after each join of new folders; it must not raise."""
        self._joined_callbacks.append(callback)

    def start(self) -> None:
        """Join the folder of each port the watch finds from now on; in the loop."""
        if not self._closed:
            self.watch.subscribe(self._found, self._not_found)
            self.watch.start()

    def refresh(self) -> asyncio.Task[None]:
        """Look for the ports now and join any new folder, or join the update under way.

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

    def _found(self, ports: frozenset[int]) -> None:
        # Most looks find the ports already joined; an update under way gets to new ones.
        if self._joining is None and ports - self._folders.keys():
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
                new = sorted(self.watch.ports - self._folders.keys())
                if not new:
                    break
                sock, before = self.channel.socket(), tuple(self._folders.values())
                joined, shared = await asyncio.to_thread(self._enter, sock, before, new)
                self._folders.update(joined)
                self.channel.attach(tuple(self._folders.values()), shared=shared)
                where = str(self._where().path)  # found by the join's thread
                logger.info(
                    "joined the listener folder of port %s in %s",
                    ",".join(str(port) for port in new),
                    where,
                    extra={"pid": self.pid, "runtime_dir": where},
                )
                for callback in self._joined_callbacks:
                    callback()
        except OSError as exc:  # TimeoutError (a lock) included
            self.channel.discard()
            # An unsafe directory stays unsafe: stop trying. Anything else may pass.
            self._broken = isinstance(exc, RuntimeDirError)
            where = "?" if self._runtime_dir is None else str(self._runtime_dir.path)
            logger.error(
                "cannot join the listener folder in %s: %s; until this is fixed this process "
                "drains alone and its admin endpoints accept only the configured admin_token",
                where,
                exc,
                extra={"runtime_dir": where},
            )
        finally:
            self._joining = None

    def _enter(
        self, sock: socket.socket, before: tuple[int, ...], ports: list[int]
    ) -> tuple[dict[int, int], bool]:
        """In a thread: join the folders of *ports*; return their kept descriptors and
        whether a live sibling was in one. *before* are the folders joined already."""
        for attempt in range(1, _ATTEMPTS + 1):
            base_fd = open_private(self._where().path, create=True)
            try:
                return self._enter_folders(base_fd, sock, before, ports)
            except FileNotFoundError:
                # The last user of the runtime directory removed it, empty, between our
                # open and our mkdir: make it again.
                if before or attempt == _ATTEMPTS:
                    raise
            finally:
                os.close(base_fd)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _enter_folders(
        self, base_fd: int, sock: socket.socket, before: tuple[int, ...], ports: list[int]
    ) -> tuple[dict[int, int], bool]:
        joined: dict[int, int] = {}
        shared = False
        first = before[0] if before else None
        try:
            if not before:
                _sweep(base_fd, keep={folders.folder_name(port) for port in ports}, pid=self.pid)
            for port in ports:
                with folders.locked(base_fd, folders.folder_name(port), create=True) as fd:
                    if folders.live_members(fd, skip=self.pid):
                        shared = True
                    else:
                        folders.clear(fd)  # left by members that died: never inherited
                    _place(sock, fd, self.pid, first)
                    joined[port] = folders.reopen(fd)
                    first = joined[port] if first is None else first
                    for hook in self._join_hooks:
                        hook(fd, port)
        except BaseException:
            self._leave(base_fd, joined)  # what we joined before the failure, we leave
            raise
        return joined, shared

    # -- leaving ------------------------------------------------------------------------------

    def _leave_all(self, joined: dict[int, int]) -> None:
        try:
            base_fd = open_private(self._where().path, create=False)
        except OSError as exc:
            logger.warning("cannot leave the listener folders: %s", exc)
            for fd in joined.values():
                os.close(fd)
            return
        try:
            self._leave(base_fd, joined)
        finally:
            os.close(base_fd)
        if self._where().removable:
            remove_if_empty(self._where().path)

    def _leave(self, base_fd: int, joined: dict[int, int]) -> None:
        """In a thread: leave the folders of *joined*, closing the kept descriptors."""
        for port, kept in joined.items():
            os.close(kept)
            name = folders.folder_name(port)
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
