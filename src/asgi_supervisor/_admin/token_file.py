"""The local admin token's files in a listener's folder: made by one member, read by the rest.

The workers of one server (uvicorn ``--workers``, gunicorn ``-w``, granian) share the
listener, so a request lands on any of them: they must accept one token. It is the file
``token`` (mode 0600, one line) in the listener's folder (see `_host.listener_folder`),
where `asgi-supervisor` reads it. The first member to join, under the folder's lock, finds
the folder cleared of whatever dead members left and writes a new token; the others read
it. The last member to leave removes it with the folder, so a new server never inherits a
dead one's token.

Beside it, ``listener`` records which listening sockets the token is for: their address
and port, and each one's inode and owner (uid), as every member adds its own. The command
sends the token only to a socket listed there (see `local_token.find_token`): never to a
socket another user bound on another address of the same port, nor to a new server that
took a dead one's port.

Both appear atomically (`_host.runtime_dir.publish`): a reader that takes no lock (the
command) sees a whole file or no file. Every function here blocks briefly.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from dataclasses import dataclass

from asgi_supervisor._host.runtime_dir import check_private, publish
from asgi_supervisor._host.tcp_table import Listener

__all__ = [
    "RECORD_NAME",
    "TOKEN_NAME",
    "ListenerRecord",
    "join_token",
    "read_record",
    "read_token",
    "record_listener",
]

TOKEN_NAME = "token"
RECORD_NAME = "listener"
_TOKEN_BYTES = 32
_MAX_FILE = 64 * 1024


@dataclass(frozen=True, slots=True)
class ListenerRecord:
    """The listening sockets a folder's token is for.

    Attributes:
        endpoint: the address and port they are bound to.
        sockets: each one's ``(inode, uid)``.
    """

    endpoint: tuple[str, int]
    sockets: frozenset[tuple[int, int]]

    def lists(self, listener: Listener) -> bool:
        """Whether *listener* is one of the recorded sockets."""
        return listener.endpoint == self.endpoint and (
            (listener.inode, listener.uid) in self.sockets
        )


def join_token(folder_fd: int) -> str:
    """The token of the listener folder *folder_fd*, written first if it has none.

    Call it under the folder's lock (a join hook of `_host.presence`).

    Raises:
        RuntimeDirError: an existing token file is not private.
        OSError: the folder cannot be written.
    """
    token = read_token(folder_fd)
    if token is not None:
        return token
    token = secrets.token_urlsafe(_TOKEN_BYTES)
    try:
        publish(folder_fd, TOKEN_NAME, f"{token}\n".encode())
    except FileExistsError:
        # Written meanwhile by a process that took no lock (two runtime-directory paths
        # that name one directory, say): use its token.
        return read_token(folder_fd) or token
    return token


def read_token(folder_fd: int, where: str = TOKEN_NAME) -> str | None:
    """The token in the listener folder *folder_fd*, or None when there is no token file.

    *where* names the file in an error message.

    Raises:
        RuntimeDirError: the file is not private to this user.
    """
    data = _read(folder_fd, TOKEN_NAME, where)
    if data is None:
        return None
    return data.decode("ascii", "replace").strip() or None


def record_listener(folder_fd: int, listener: Listener) -> None:
    """Add *listener* to the sockets the folder's token is for, if it is not listed yet.

    Call it under the folder's lock, before `join_token` (a reader that takes no lock then
    finds the record whenever it finds the token): the record is replaced whole.

    Raises:
        RuntimeDirError: an existing record is not private.
        OSError: the folder cannot be written.
    """
    try:
        record = read_record(folder_fd)
    except ValueError:
        record = None  # not ours to keep: the next line writes a sound one
    if record is not None and record.lists(listener):
        return
    kept = record.sockets if record is not None and record.endpoint == listener.endpoint else ()
    sockets = sorted({*kept, (listener.inode, listener.uid)})
    address, port = listener.endpoint
    data = {"address": address, "port": port, "sockets": sockets}
    publish(folder_fd, RECORD_NAME, json.dumps(data).encode(), replace=True)


def read_record(folder_fd: int, where: str = RECORD_NAME) -> ListenerRecord | None:
    """The record of the listener folder *folder_fd*, or None when there is none.

    Raises:
        RuntimeDirError: the file is not private to this user.
        ValueError: the file is not a record.
    """
    data = _read(folder_fd, RECORD_NAME, where)
    if data is None:
        return None
    try:
        fields = json.loads(data)
        endpoint = (str(fields["address"]), int(fields["port"]))
        sockets = frozenset((int(inode), int(uid)) for inode, uid in fields["sockets"])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{where!r} is not a record of listening sockets ({exc!r})") from None
    return ListenerRecord(endpoint, sockets)


def _read(folder_fd: int, name: str, where: str) -> bytes | None:
    with contextlib.suppress(FileNotFoundError):
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder_fd)
        with os.fdopen(fd, "rb") as file:
            check_private(os.fstat(fd), where, is_dir=False)
            return file.read(_MAX_FILE)
    return None
