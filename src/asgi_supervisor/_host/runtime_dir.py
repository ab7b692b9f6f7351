"""The private runtime directory: one folder per listener, shared by its processes.

What is there proves something only if no other user can write to the directory or read what
is in it (a planted token or socket, a stolen token), so the directory is opened without
following symlinks and refused unless this user owns it and no group or other permission bit
is set; a directory that fails the check is refused, never repaired.

Where it is (`locate`): the ``runtime_dir`` setting, else ``$ASGI_SUPERVISOR_RUNTIME_DIR``,
else ``$XDG_RUNTIME_DIR/asgi-supervisor`` when that directory exists and is ours, else
``<tmp>/asgi-supervisor-<uid>``. It holds one folder per listener (see `listener_folder`).
The `asgi-supervisor` command, another process, sees only the variables: it looks in every
candidate (`candidates`), so a directory set in code alone must also be given to it through
the variable. A default directory is removed by whoever leaves it empty; a directory someone
named (the setting or the variable) is theirs and stays.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "RUNTIME_DIR_VARIABLE",
    "RuntimeDir",
    "RuntimeDirError",
    "candidates",
    "check_private",
    "locate",
    "make_private",
    "open_private",
    "publish",
    "remove_if_empty",
]

RUNTIME_DIR_VARIABLE = "ASGI_SUPERVISOR_RUNTIME_DIR"
_NAME = "asgi-supervisor"
# A leaving process may remove the directory, still empty, between our mkdir and our open.
_ATTEMPTS = 3


class RuntimeDirError(OSError):
    """The runtime directory is unsafe or cannot be created; the message says how to fix it.

    ``errno`` is that of the failure underneath, if any (ENOENT: a parent is missing).
    """


@dataclass(frozen=True, slots=True)
class RuntimeDir:
    """Where the runtime directory is, and whether the library may remove it once empty."""

    path: Path
    removable: bool


def locate(configured: str | None, environ: Mapping[str, str]) -> RuntimeDir:
    """The runtime directory of a supervisor whose ``runtime_dir`` setting is *configured*.

    A named directory (the setting, else the variable) belongs to whoever named it and is
    never removed; a default one is the library's, removed by the last user to leave it.
    """
    if configured is not None and configured.strip():
        return RuntimeDir(Path(configured.strip()), removable=False)
    named = bool(environ.get(RUNTIME_DIR_VARIABLE, "").strip())
    return RuntimeDir(candidates(environ)[0], removable=not named)


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
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    for attempt in range(1, _ATTEMPTS + 1):
        if create:
            _make(path)
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            if create and attempt < _ATTEMPTS:
                continue  # removed, still empty, by a process that left it: make it again
            raise
        except OSError as exc:
            raise _error(
                exc,
                f"The runtime directory {str(path)!r} cannot be opened as a directory "
                f"({exc.strerror}); it must be a real directory, not a symlink. Remove it or "
                f"point runtime_dir ({RUNTIME_DIR_VARIABLE}) elsewhere.",
            ) from None
        try:
            check_private(os.fstat(fd), str(path), is_dir=True)
        except BaseException:
            os.close(fd)
            raise
        return fd
    raise AssertionError("unreachable: the last attempt returns or raises")


def make_private(path: Path) -> Path:
    """Create the directory *path* (mode 0700) if missing, prove it private, and return it.

    For users that work by path (a unix socket is bound by its path). Blocking, and quick.

    Raises:
        RuntimeDirError: as `open_private`.
    """
    os.close(open_private(path, create=True))
    return path


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
            "user could plant or read a token or socket there; remove it, or point runtime_dir "
            f"({RUNTIME_DIR_VARIABLE}) at a directory of your own."
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        private = "700" if is_dir else "600"
        raise RuntimeDirError(
            f"{what} has mode {mode:04o}, so other users may read or change it; run "
            f"`chmod {private} {path}` or remove it (the library creates it with mode 0{private})."
        )


def publish(dir_fd: int, name: str, data: bytes) -> None:
    """Make the file *name* in the directory *dir_fd* appear with *data*, whole, mode 0600.

    Written to a temporary file that is then hard-linked to *name*: a reader that takes no
    lock (the command) sees the whole file or no file, never a part. An existing *name* is
    never replaced. Blocking, and quick.

    Raises:
        FileExistsError: *name* exists already.
        OSError: the directory cannot be written.
    """
    temporary = f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temporary, flags, 0o600, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(fd, 0o600)  # whatever the umask
            file.write(data)
        os.link(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    finally:
        os.unlink(temporary, dir_fd=dir_fd)


def remove_if_empty(path: Path) -> None:
    """Remove the directory *path* if nothing is left in it; never raises."""
    # Not empty (a sibling or a token is still there), or already gone: nothing to do.
    with contextlib.suppress(OSError):
        path.rmdir()


def _make(path: Path) -> None:
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise _error(
            exc,
            f"Cannot create the runtime directory {str(path)!r}: {exc.strerror}. Point "
            f"runtime_dir ({RUNTIME_DIR_VARIABLE}) at a directory this user can create "
            "files in.",
        ) from None


def _error(cause: OSError, message: str) -> RuntimeDirError:
    error = RuntimeDirError(message)
    error.errno = cause.errno  # callers may retry when a parent vanished (ENOENT)
    return error


def _is_own_dir(path: str) -> bool:
    try:
        info = os.stat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid()
