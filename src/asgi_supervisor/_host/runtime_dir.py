"""The private runtime directory: one folder per listener, shared by its processes.

What is there proves something only if no other user can write to the directory, read what
is in it (a planted token or socket, a stolen token), or swap it for another: so the
directory is opened without following symlinks and refused unless this user owns it and no
group or other permission bit is set, and every directory above it must be one that no
other user can rename it out of (`check_ancestors`). A directory that fails a check is
refused, never repaired. Where the directory is comes from `placement`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "RUNTIME_DIR_VARIABLE",
    "RuntimeDir",
    "RuntimeDirError",
    "check_ancestors",
    "check_private",
    "open_private",
    "publish",
    "remove_if_empty",
]

RUNTIME_DIR_VARIABLE = "ASGI_SUPERVISOR_RUNTIME_DIR"
# A leaving process may remove the directory, still empty, between our mkdir and our open.
_ATTEMPTS = 3
# Symlinks followed while checking the directories above; the kernel's own limit is 40.
_MAX_LINKS = 40
_FIX = f"point runtime_dir ({RUNTIME_DIR_VARIABLE}) at a directory of your own"


class RuntimeDirError(OSError):
    """The runtime directory is unsafe or cannot be created; the message says how to fix it.

    ``errno`` is that of the failure underneath, if any (ENOENT: a parent is missing).
    """


@dataclass(frozen=True, slots=True)
class RuntimeDir:
    """Where the runtime directory is, and whether the library may remove it once empty.

    Attributes:
        path: the directory.
        removable: a default directory, the library's: removed by the last user to leave.
        skipped: why each default place before it was not used, for the log.
    """

    path: Path
    removable: bool
    skipped: tuple[str, ...] = ()


def open_private(path: Path, *, create: bool) -> int:
    """Open the directory *path* and return its descriptor, once it is proven private.

    With *create*, a missing directory is made with mode 0700 (its parent must exist).
    Later file operations go through the descriptor (``dir_fd=``), so swapping the path for
    a symlink after the check changes nothing. Blocking, and quick.

    Raises:
        FileNotFoundError: it does not exist and *create* is false.
        RuntimeDirError: a directory above it is unsafe (`check_ancestors`), it is a symlink
            or not a directory, another user owns it, group or others may access it, or it
            cannot be created.
    """
    check_ancestors(path.parent)
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
            raise _error(exc, _not_a_directory(path, exc)) from None
        try:
            check_private(os.fstat(fd), str(path), is_dir=True)
        except BaseException:
            os.close(fd)
            raise
        return fd
    raise AssertionError("unreachable: the last attempt returns or raises")


def check_private(info: os.stat_result, path: str, *, is_dir: bool) -> None:
    """Refuse *info* (of *path*) unless this user owns it and no group or other bit is set.

    Raises:
        RuntimeDirError: naming *path*, its owner or mode, and the fix.
    """
    what = f"The runtime directory {path!r}" if is_dir else f"The file {path!r}"
    uid = os.geteuid()
    if info.st_uid != uid:
        raise RuntimeDirError(
            f"{what} belongs to uid {info.st_uid}, not to this process's uid {uid}, so another "
            f"user made it and could plant or read a token or socket there; remove it, or "
            f"{_FIX}."
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        private = "700" if is_dir else "600"
        raise RuntimeDirError(
            f"{what} has mode {mode:04o}, so other users may read or change it; run "
            f"`chmod {private} {path}` or remove it (the library creates it with mode 0{private})."
        )


def check_ancestors(path: Path) -> None:
    """Refuse *path* and every directory above it unless none can be swapped by another user.

    Each is looked at with ``lstat``: it must belong to root or to this user, and one that
    group or others may write to must have the sticky bit (as ``/tmp`` has), so that nobody
    else can rename or remove what we made in it. A symlink on the way must belong to root
    or to this user too; the directories it leads to are checked the same way. Blocking,
    and quick (one ``lstat`` per component).

    Raises:
        RuntimeDirError: naming the directory or link at fault, why, and the fix.
    """
    uid = os.geteuid()
    current = Path("/")
    _check_directory(current, os.lstat(current), uid)
    pending = list(Path(os.path.abspath(path)).parts[1:])
    links = 0
    while pending:
        part = pending.pop(0)
        if part in (".", ".."):
            # The directory we are in was checked and is no symlink: its ".." is its parent.
            current = current.parent if part == ".." else current
            continue
        candidate = current / part
        try:
            info = os.lstat(candidate)
        except FileNotFoundError:
            return  # nothing further exists to be swapped; making it will fail loudly
        except OSError as exc:
            raise _error(
                exc, f"Cannot look at {str(candidate)!r}: {exc.strerror}; {_FIX}."
            ) from None
        if stat.S_ISLNK(info.st_mode):
            _check_owner(candidate, info, uid, what="a symlink")
            links += 1
            if links > _MAX_LINKS:
                raise RuntimeDirError(f"Too many symlinks above {str(path)!r}; {_FIX}.")
            target = Path(os.readlink(candidate))
            if target.is_absolute():
                current, target = Path("/"), target.relative_to("/")
            pending[:0] = target.parts  # relative to the link's own directory
            continue
        _check_directory(candidate, info, uid)
        current = candidate


def publish(dir_fd: int, name: str, data: bytes, *, replace: bool = False) -> None:
    """Make the file *name* in the directory *dir_fd* appear with *data*, whole, mode 0600.

    Written to a temporary file that is then hard-linked to *name* (or, with *replace*,
    renamed over it): a reader that takes no lock (the command) sees the whole file or no
    file, never a part. Without *replace* an existing *name* is never replaced. Blocking,
    and quick.

    Raises:
        FileExistsError: *name* exists already, and not *replace*.
        OSError: the directory cannot be written.
    """
    temporary = f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(temporary, flags, 0o600, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(fd, 0o600)  # whatever the umask
            file.write(data)
        if replace:
            os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        else:
            os.link(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    finally:
        with contextlib.suppress(FileNotFoundError):  # renamed into place
            os.unlink(temporary, dir_fd=dir_fd)


def remove_if_empty(path: Path) -> None:
    """Remove the directory *path* if nothing is left in it; never raises."""
    # Not empty (a sibling or a token is still there), or already gone: nothing to do.
    with contextlib.suppress(OSError):
        path.rmdir()


def _check_directory(path: Path, info: os.stat_result, uid: int) -> None:
    if not stat.S_ISDIR(info.st_mode):
        raise RuntimeDirError(
            f"{str(path)!r}, on the way to the runtime directory, is not a directory; {_FIX}."
        )
    _check_owner(path, info, uid, what="a directory")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o022 and not mode & stat.S_ISVTX:
        raise RuntimeDirError(
            f"{str(path)!r}, on the way to the runtime directory, has mode {mode:04o}: other "
            "users may write to it, and without the sticky bit they may rename or replace "
            f"what this user made in it; run `chmod +t {path}` (as /tmp has it), or {_FIX}."
        )


def _check_owner(path: Path, info: os.stat_result, uid: int, *, what: str) -> None:
    if info.st_uid not in (0, uid):
        raise RuntimeDirError(
            f"{str(path)!r}, on the way to the runtime directory, is {what} that belongs to "
            f"uid {info.st_uid}, another user, who could point it or what is in it elsewhere "
            f"at any time; {_FIX}."
        )


def _not_a_directory(path: Path, exc: OSError) -> str:
    try:
        info = os.lstat(path)
    except OSError:
        info = None
    if info is not None and stat.S_ISLNK(info.st_mode):
        cause = f"it is a symlink (owned by uid {info.st_uid}), which is never followed"
    elif info is not None and not stat.S_ISDIR(info.st_mode):
        cause = "it is not a directory"
    elif info is not None and info.st_uid != os.geteuid():
        cause = f"it belongs to uid {info.st_uid}, another user, who made it first"
    else:
        cause = exc.strerror or str(exc)
    return f"The runtime directory {str(path)!r} cannot be opened: {cause}; remove it, or {_FIX}."


def _make(path: Path) -> None:
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise _error(
            exc,
            f"Cannot create the runtime directory {str(path)!r}: {exc.strerror}; {_FIX} "
            "that this user can create files in.",
        ) from None


def _error(cause: OSError, message: str) -> RuntimeDirError:
    error = RuntimeDirError(message)
    error.errno = cause.errno  # callers may retry when a parent vanished (ENOENT)
    return error
