"""The local admin token's file in a listener's folder: made by one member, read by the rest.

The workers of one server (uvicorn ``--workers``, gunicorn ``-w``, granian) share the
listening socket, so a request lands on any of them: they must accept one token. It is the
file ``token`` (mode 0600, one line) in the listener's folder (see `_host.listener_folder`),
where `asgi-supervisor` reads it. The first member to join, under the folder's lock, finds
the folder cleared of whatever dead members left and writes a new token; the others read
it. The last member to leave removes it with the folder, so a new server never inherits a
dead one's token.

The token appears atomically (`_host.runtime_dir.publish`): a reader that takes no lock
(the command) sees the whole token or no file. Every function here blocks briefly.
"""

from __future__ import annotations

import contextlib
import os
import secrets

from asgi_supervisor._host.runtime_dir import check_private, publish

__all__ = ["TOKEN_NAME", "join_token", "read_token"]

TOKEN_NAME = "token"
_TOKEN_BYTES = 32
_MAX_TOKEN_FILE = 4096


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
    with contextlib.suppress(FileNotFoundError):
        fd = os.open(TOKEN_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder_fd)
        with os.fdopen(fd, "rb") as file:
            check_private(os.fstat(fd), where, is_dir=False)
            text = file.read(_MAX_TOKEN_FILE).decode("ascii", "replace").strip()
        return text or None
    return None
