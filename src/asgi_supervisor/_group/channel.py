"""The process group's transport: one unix datagram socket per worker, in the group folders.

A member's socket is ``<folder>/<pid>.sock`` in each of its group folders (bound in the first,
hard-linked into the others: a unix socket is found by its inode, so every name reaches it).
Its siblings are the other ``<pid>.sock`` entries there. Messages are JSON objects, one per
datagram; a datagram socket keeps each message whole, and the sender's address is its bound
name, which is where answers go.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

from asgi_supervisor._host.runtime_dir import make_private, remove_if_empty

__all__ = ["GroupSocket", "sweep"]

logger = logging.getLogger("asgi_supervisor")

_MAX_DATAGRAM = 65536


class GroupSocket:
    """Our socket in the group folders; `bind` makes one, `close` removes every trace."""

    def __init__(self, sock: socket.socket, names: list[Path], pid: int) -> None:
        self._sock = sock
        self.names = names
        self.pid = pid

    @classmethod
    def bind(cls, base: Path, groups: list[str], pid: int) -> GroupSocket:
        """Bind ``<pid>.sock`` in the private folder ``base/<group>`` of each of *groups*.

        Raises:
            RuntimeDirError: a folder is not ours alone (see `make_private`).
            OSError: a read-only file system, or a path too long for a unix socket.
        """
        make_private(base)
        sweep(base)
        # A sibling (or the local token) leaving may remove a folder it left empty between
        # our mkdir and our bind, the runtime folder itself included; then we make it again.
        for attempt in range(3):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.setblocking(False)
            names: list[Path] = []
            try:
                make_private(base)
                names = [make_private(base / group) / f"{pid}.sock" for group in groups]
                _unlink(names[0])  # ours by name: left by a killed process with our pid
                sock.bind(str(names[0]))
                for name in names[1:]:
                    _unlink(name)
                    os.link(names[0], name)
            except OSError as exc:
                sock.close()
                for name in names:
                    _unlink(name)
                if exc.errno == errno.ENOENT and attempt < 2:
                    continue
                raise
            return cls(sock, names, pid)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def fileno(self) -> int:
        """The socket's descriptor, for ``loop.add_reader``."""
        return self._sock.fileno()

    def siblings(self) -> dict[int, Path]:
        """The other members' sockets, by pid, across our group folders."""
        siblings: dict[int, Path] = {}
        for own in self.names:
            try:
                entries = list(os.scandir(own.parent))
            except OSError:
                continue
            for entry in entries:
                stem, dot, suffix = entry.name.partition(".")
                if dot and suffix == "sock" and stem.isdigit() and int(stem) != self.pid:
                    siblings.setdefault(int(stem), Path(entry.path))
        return siblings

    def send(self, path: Path | str, message: dict[str, Any]) -> bool:
        """Send *message* to the socket at *path*; False (logged) if it did not get there.

        Never blocks: a sibling whose queue is full (its loop is blocked) misses the message.
        A socket nobody is bound to any more (its process was killed) is removed.
        """
        data = json.dumps(message, separators=(",", ":")).encode()
        try:
            self._sock.sendto(data, str(path))
        except ConnectionRefusedError:
            logger.debug("removing the stale process group socket %s", path)
            _unlink(Path(path))
            return False
        except FileNotFoundError:
            return False  # it left meanwhile
        except OSError as exc:
            logger.warning("process group: cannot reach %s: %s", path, exc)
            return False
        return True

    def receive(self) -> list[tuple[bytes, str]]:
        """Every datagram waiting, with its sender's address; never blocks."""
        received: list[tuple[bytes, str]] = []
        while True:
            try:
                data, sender = self._sock.recvfrom(_MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return received
            except OSError as exc:
                logger.warning("process group: receiving failed: %s", exc)
                return received
            received.append((data, sender or ""))

    def close(self, *, base: Path | None = None) -> None:
        """Close the socket, remove its names and any group folder left empty, and *base*
        too if it is empty. Never raises."""
        self._sock.close()
        for name in self.names:
            _unlink(name)
            remove_if_empty(name.parent)
        if base is not None:
            remove_if_empty(base)


def sweep(base: Path) -> None:
    """Remove the sockets in *base*'s group folders that nobody is bound to any more (their
    process was killed, or ended by the watchdog), and the folders that leaves empty.

    Never raises. Probing connects without sending, so live members see nothing.
    """
    try:
        folders = [entry.path for entry in os.scandir(base) if entry.is_dir(follow_symlinks=False)]
    except OSError:
        return
    for folder in folders:
        try:
            entries = [entry.path for entry in os.scandir(folder) if entry.name.endswith(".sock")]
        except OSError:
            continue
        for path in entries:
            if _is_stale(path):
                _unlink(Path(path))
        remove_if_empty(Path(folder))


def _is_stale(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(path)
        except ConnectionRefusedError:
            return True
        except OSError:
            return False  # gone already, or not ours to judge
    return False


def _unlink(path: Path) -> None:
    with contextlib.suppress(OSError):  # already gone, or not ours to remove
        path.unlink()
