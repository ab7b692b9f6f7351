"""The private runtime directory that holds the local admin token files.

A file there proves something only if no other user can write to the directory or read the
files in it, so the directory is opened without following symlinks and refused unless this
user owns it and no group or other permission bit is set. Where it is, the server and the
`asgi-supervisor` command must agree without being told: both derive it from the same
variables (`candidates`), and the command looks in every candidate.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "RUNTIME_DIR_VARIABLE",
    "RuntimeDirError",
    "candidates",
    "check_private",
    "default_dir",
    "open_private",
]

RUNTIME_DIR_VARIABLE = "ASGI_SUPERVISOR_RUNTIME_DIR"
_NAME = "asgi-supervisor"


class RuntimeDirError(OSError):
    """The runtime directory is unsafe or cannot be created; the message says how to fix it."""


def default_dir(environ: Mapping[str, str]) -> Path:
    """Where a server writes its token files when ``runtime_dir`` is not configured.

    ``$ASGI_SUPERVISOR_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/asgi-supervisor`` when that
    directory exists and is ours (a login session's ``/run/user/<uid>``), else
    ``<tmp>/asgi-supervisor-<uid>`` (``/tmp`` in containers).
    """
    return candidates(environ)[0]


def candidates(environ: Mapping[str, str]) -> list[Path]:
    """Every directory a server of this user may have used, the most specific first."""
    found: list[Path] = []
    explicit = environ.get(RUNTIME_DIR_VARIABLE, "").strip()
    if explicit:
        found.append(Path(explicit))
    xdg = environ.get("XDG_RUNTIME_DIR", "").strip()
    if xdg and _is_own_dir(xdg):
        found.append(Path(xdg) / _NAME)
    uid = os.geteuid()
    for tmp in (tempfile.gettempdir(), "/tmp"):
        path = Path(tmp) / f"{_NAME}-{uid}"
        if path not in found:
            found.append(path)
    return found


def open_private(path: Path, *, create: bool) -> int:
    """Open the directory *path* and return its descriptor, once it is proven private.

    With *create*, a missing directory is made with mode 0700 (its parent must exist).
    Later file operations go through the descriptor (``dir_fd=``), so swapping the path for
    a symlink after the check changes nothing. Blocking, and quick.

    Raises:
        FileNotFoundError: it does not exist and *create* is false.
        RuntimeDirError: it is a symlink or not a directory, another user owns it, group or
            others may access it, or it cannot be created.
    """
    if create:
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise RuntimeDirError(
                f"Cannot create the runtime directory {str(path)!r}: {exc.strerror}. Point "
                f"{RUNTIME_DIR_VARIABLE} at a directory this user can create files in."
            ) from None
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise RuntimeDirError(
            f"The runtime directory {str(path)!r} cannot be opened as a directory "
            f"({exc.strerror}); it must be a real directory, not a symlink. Remove it or point "
            f"{RUNTIME_DIR_VARIABLE} elsewhere."
        ) from None
    try:
        check_private(os.fstat(fd), str(path), is_dir=True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_private(info: os.stat_result, path: str, *, is_dir: bool) -> None:
    """Refuse *info* (of *path*) unless this user owns it and no group or other bit is set.

    Raises:
        RuntimeDirError: naming *path*, its owner or mode, and the fix.
    """
    what = f"The runtime directory {path!r}" if is_dir else f"The token file {path!r}"
    uid = os.geteuid()
    if info.st_uid != uid:
        raise RuntimeDirError(
            f"{what} belongs to uid {info.st_uid}, not to this process's uid {uid}, so another "
            f"user could plant or read a token there; remove it, or point {RUNTIME_DIR_VARIABLE} "
            "at a directory of your own."
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        private = "700" if is_dir else "600"
        raise RuntimeDirError(
            f"{what} has mode {mode:04o}, so other users may read or change it; run "
            f"`chmod {private} {path}` or remove it (the library creates it with mode 0{private})."
        )


def _is_own_dir(path: str) -> bool:
    try:
        info = os.stat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid()
