"""Where the private runtime directory is: a place no other user can make first or swap.

In order (`locate`):

1. the ``runtime_dir`` setting, else ``$ASGI_SUPERVISOR_RUNTIME_DIR``: a *named* directory,
   used as named or refused (`runtime_dir.open_private` says why), never removed;
2. ``$XDG_RUNTIME_DIR/asgi-supervisor``, then ``/run/user/<uid>/asgi-supervisor``: the login
   manager makes those parents for this user alone, so nobody else can make our directory
   first. Either is skipped (the log says why) unless it is this user's and every directory
   above it is safe (`runtime_dir.check_ancestors`: a symlink of another user is refused);
3. ``asgi-supervisor-<uid>`` in ``$TMPDIR``, then in ``/tmp``, whose parent must have the
   sticky bit if others may write to it (a ``TMPDIR`` without it is skipped). Anyone can
   make that name first, though: if another user did (or it is not private), the directory
   is made under a random name instead, ``asgi-supervisor-<uid>.<16 hex digits>``, which
   nobody can guess and the command finds by listing the parent. Choosing it happens under
   a lock (``flock`` on the parent), so every worker of a server picks the same one.

A place that already holds a live folder of one of the listeners being joined wins over
the order: a worker that starts later (a restarted one, or after a login made
``/run/user/<uid>`` appear) joins its siblings where they are.

The ``asgi-supervisor`` command, another process, sees only the variables: it looks in every
candidate (`candidates`), so a directory set in code alone must also be given to it through
the variable. Every function here blocks (the file system): call it off the event loop.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
import time
from collections.abc import Collection, Mapping
from pathlib import Path

from . import listener_folder as folders
from .runtime_dir import (
    RUNTIME_DIR_VARIABLE,
    RuntimeDir,
    RuntimeDirError,
    check_ancestors,
    open_private,
)

try:
    import fcntl
except ImportError:  # Windows: no /proc either, so no listener is ever found
    fcntl = None  # type: ignore[assignment]

__all__ = ["candidates", "locate"]

_NAME = "asgi-supervisor"
_LOCK_TIMEOUT = 2.0
_LOCK_POLL_DELAY = 0.005
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def locate(
    configured: str | None,
    environ: Mapping[str, str],
    endpoints: Collection[tuple[str, int]] = (),
) -> RuntimeDir:
    """The runtime directory of a supervisor whose ``runtime_dir`` setting is *configured*,
    joining the listeners *endpoints*; a default one is made (mode 0700) if missing.

    Raises:
        RuntimeDirError: no default place is safe; the message gives each reason.
    """
    named = _named(configured, environ)
    if named is not None:
        return RuntimeDir(named, removable=False)
    skipped: list[str] = []
    places = [parent / _NAME for parent in _safe(_login_parents(environ), skipped, login=True)]
    temporary = _safe(_tmp_parents(environ), skipped, login=False)
    existing = places + [path for parent in temporary for path in _own_in_tmp(parent)]
    for path in existing:
        if _holds_live_folder(path, endpoints):
            return RuntimeDir(path, removable=True, skipped=tuple(skipped))
    if places:
        return RuntimeDir(_made(places[0]), removable=True, skipped=tuple(skipped))
    if temporary:
        path, squatted = _choose_in_tmp(temporary[0])
        return RuntimeDir(path, removable=True, skipped=(*skipped, *squatted))
    raise RuntimeDirError(
        "No safe place for the runtime directory: " + " ".join(skipped) + " Point "
        f"runtime_dir ({RUNTIME_DIR_VARIABLE}) at a directory of your own."
    )


def candidates(environ: Mapping[str, str]) -> list[Path]:
    """Every directory a server of this user may have used, the most specific first.

    Unsafe places are listed too: opening them (`runtime_dir.open_private`) says why they
    cannot be used, which the command reports.
    """
    named = _named(None, environ)
    if named is not None:
        return [named]
    found = [parent / _NAME for parent in _login_parents(environ)]
    for parent in _tmp_parents(environ):
        found.append(parent / _base_name())
        found.extend(path for path in _own_in_tmp(parent) if path not in found)
    return list(dict.fromkeys(found))


def _named(configured: str | None, environ: Mapping[str, str]) -> Path | None:
    if configured is not None and configured.strip():
        return Path(configured.strip())
    variable = environ.get(RUNTIME_DIR_VARIABLE, "").strip()
    return Path(variable) if variable else None


def _login_parents(environ: Mapping[str, str]) -> list[Path]:
    parents = []
    xdg = environ.get("XDG_RUNTIME_DIR", "").strip()
    if xdg:
        parents.append(Path(xdg))
    run_user = Path(f"/run/user/{os.geteuid()}")
    if run_user not in parents and run_user.is_dir():
        parents.append(run_user)
    return parents


def _safe(parents: list[Path], skipped: list[str], *, login: bool) -> list[Path]:
    """The *parents* our directory may go in; why each other one may not, into *skipped*."""
    safe = []
    for parent in parents:
        if login and not os.path.lexists(parent):
            continue  # an XDG_RUNTIME_DIR that is gone (its session ended) is no place
        try:
            check_ancestors(parent)
            if login:
                _check_login_parent(parent)
        except RuntimeDirError as exc:
            skipped.append(str(exc))
            continue
        safe.append(parent)
    return safe


def _check_login_parent(parent: Path) -> None:
    # The login manager makes it for this user alone (mode 0700): anything else is not it.
    try:
        info = os.stat(parent)  # the links on the way were checked by `check_ancestors`
    except OSError as exc:
        raise RuntimeDirError(f"{str(parent)!r} (XDG_RUNTIME_DIR): {exc.strerror}.") from None
    if info.st_uid != os.geteuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise RuntimeDirError(
            f"{str(parent)!r} (XDG_RUNTIME_DIR) belongs to uid {info.st_uid} with mode "
            f"{stat.S_IMODE(info.st_mode):04o}, not to this user alone, so it is not used."
        )


def _tmp_parents(environ: Mapping[str, str]) -> list[Path]:
    tmpdir = environ.get("TMPDIR", "").strip()
    return list(dict.fromkeys([*([Path(tmpdir)] if tmpdir else []), Path("/tmp")]))


def _base_name() -> str:
    return f"{_NAME}-{os.geteuid()}"


def _own_in_tmp(parent: Path) -> list[Path]:
    """Our private directories in *parent*, the plain name first, then the random ones."""
    pattern = re.compile(rf"{re.escape(_base_name())}(\.[0-9a-f]{{16}})?")
    try:
        names = sorted(name for name in os.listdir(parent) if pattern.fullmatch(name))
    except OSError:
        return []
    return [parent / name for name in names if _is_private_dir(parent / name)]


def _is_private_dir(path: Path) -> bool:
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.geteuid()
        and not stat.S_IMODE(info.st_mode) & 0o077
    )


def _holds_live_folder(path: Path, endpoints: Collection[tuple[str, int]]) -> bool:
    if not endpoints:
        return False
    try:
        base = open_private(path, create=False)
    except OSError:
        return False
    try:
        for endpoint in endpoints:
            try:
                fd = os.open(folders.folder_name(endpoint), _OPEN_DIR | os.O_NOFOLLOW, dir_fd=base)
            except OSError:
                continue
            try:
                if folders.live_members(fd, skip=0):
                    return True
            finally:
                os.close(fd)
        return False
    finally:
        os.close(base)


def _made(path: Path) -> Path:
    os.close(open_private(path, create=True))
    return path


def _choose_in_tmp(parent: Path) -> tuple[Path, list[str]]:
    """Our directory in the shared *parent*, made if needed: the plain name unless another
    user took it, then a random one; with the reason when the plain name was taken."""
    base = parent / _base_name()
    if _is_private_dir(base):
        return base, []
    fd = os.open(parent, _OPEN_DIR)
    try:
        _lock(fd, parent)
        # Under the lock, another worker of ours may have chosen already: take its choice.
        own = _own_in_tmp(parent)
        if own:
            return own[0], []
        with contextlib.suppress(FileExistsError):
            os.mkdir(base, 0o700)
            return base, []
        try:
            taken = str(_reason(base))
        except RuntimeDirError as exc:
            taken = str(exc)
        chosen = parent / f"{base.name}.{secrets.token_hex(8)}"
        os.mkdir(chosen, 0o700)
        return chosen, [f"{taken} Using {str(chosen)!r} instead."]
    except OSError as exc:
        if isinstance(exc, RuntimeDirError):
            raise
        raise RuntimeDirError(
            f"Cannot create the runtime directory in {str(parent)!r}: {exc.strerror}; point "
            f"runtime_dir ({RUNTIME_DIR_VARIABLE}) at a directory this user can create "
            "files in."
        ) from None
    finally:
        os.close(fd)


def _reason(base: Path) -> RuntimeDirError:
    """Why the existing *base* is not ours to use."""
    try:
        os.close(open_private(base, create=False))
    except RuntimeDirError as exc:
        return exc
    except OSError as exc:
        return RuntimeDirError(f"{str(base)!r} cannot be used: {exc.strerror}.")
    return RuntimeDirError(f"{str(base)!r} changed while it was being chosen.")


def _lock(fd: int, parent: Path) -> None:
    if fcntl is None:
        raise RuntimeDirError("file locks (fcntl) are not available on this platform")
    deadline = time.monotonic() + _LOCK_TIMEOUT
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return  # released when the descriptor is closed
        except BlockingIOError:
            # Our workers hold it for microseconds; a blocking flock could hang forever on
            # a stopped process (or another user's that holds it), so poll within a bound.
            if time.monotonic() >= deadline:
                raise RuntimeDirError(
                    f"The lock on {str(parent)!r} (taken to choose the runtime directory in "
                    f"it) was held for more than {_LOCK_TIMEOUT:.0f} s; point runtime_dir "
                    f"({RUNTIME_DIR_VARIABLE}) at a directory of your own."
                ) from None
            time.sleep(_LOCK_POLL_DELAY)
