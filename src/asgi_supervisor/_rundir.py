"""A private runtime folder for the process group's sockets, safe against other users.

Where: the ``runtime_dir`` setting (``ASGI_SUPERVISOR_RUNTIME_DIR``), else
``$XDG_RUNTIME_DIR/asgi-supervisor``, else ``/tmp/asgi-supervisor-<uid>``. Every folder we
use must be a real folder (not a link), owned by our user and writable by nobody else:
otherwise another local user could put a socket of their own where a worker will send its
drain, or read ours. A folder that fails the check is refused, never repaired.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path

__all__ = ["UnsafeFolderError", "private_folder", "remove_if_empty", "runtime_folder"]


class UnsafeFolderError(OSError):
    """A folder that should be ours alone is not (owner, mode, or a symbolic link)."""


def runtime_folder(configured: str | None, environ: Mapping[str, str]) -> tuple[Path, bool]:
    """Where the groups live, and whether the folder is ours to remove when it is empty.

    A configured folder belongs to whoever configured it and is never removed.
    """
    if configured:
        return Path(configured), False
    xdg = environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "asgi-supervisor", True
    return Path(f"/tmp/asgi-supervisor-{os.getuid()}"), True


def private_folder(path: Path) -> Path:
    """Create *path* (mode 0700) if missing, and check that it is ours alone.

    Raises:
        UnsafeFolderError: *path* is a link, not a folder, owned by another user, or
            writable by group or others.
        OSError: the folder cannot be created (a read-only file system, say).
    """
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise UnsafeFolderError(
            f"{path} is not a folder (or is a symbolic link); remove it or set "
            "ASGI_SUPERVISOR_RUNTIME_DIR to a private folder."
        )
    if info.st_uid != os.getuid():
        raise UnsafeFolderError(
            f"{path} belongs to uid {info.st_uid}, not to this process's uid {os.getuid()}; "
            "set ASGI_SUPERVISOR_RUNTIME_DIR to a folder of your own."
        )
    if info.st_mode & 0o022:
        raise UnsafeFolderError(
            f"{path} is writable by other users (mode {stat.S_IMODE(info.st_mode):o}); "
            f"run `chmod 700 {path}` or set ASGI_SUPERVISOR_RUNTIME_DIR elsewhere."
        )
    return path


def remove_if_empty(path: Path) -> None:
    """Remove the folder *path* if nothing is left in it; never raises."""
    # Not empty (a sibling is still there), or already gone: either way, nothing to do.
    with contextlib.suppress(OSError):
        path.rmdir()
