"""One port's local admin token file: made once, shared by every worker, removed by the last.

The files of port N, in the private runtime directory (see `runtime_dir`), all mode 0600::

    port-N.token              the token, one line: what `asgi-supervisor` reads
    port-N.lock               held (flock) around every change below
    port-N.<pid>.<tag>.ref    one per supervisor using the token; holds its process's start time

Workers of one server (uvicorn ``--workers``, gunicorn ``-w``, granian) share the listening
socket, so a request lands on any of them: they must accept one token. The first to take the
lock writes it, the others read it. Each keeps a reference file; the last to leave deletes the
token and the lock. References of processes that died without leaving (SIGKILL, the
watchdog's ``os._exit``) are pruned by the next process to take the lock, and a token nobody
alive refers to is replaced, so a new server never inherits a dead one's token.

The token appears atomically: it is written to a temporary file that is then hard-linked to
its name, so a reader that takes no lock (the command) sees the whole token or no file.
Every function here blocks briefly (file I/O, a lock held for microseconds by others).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterator

from asgi_supervisor._host.runtime_dir import check_private

try:
    import fcntl
except ImportError:  # Windows: no local token (there is no /proc to find the port either)
    fcntl = None  # type: ignore[assignment]

__all__ = ["acquire", "read_token", "release", "token_name"]

_LOCK_TIMEOUT = 2.0
_LOCK_POLL_DELAY = 0.005
_TOKEN_BYTES = 32
_MAX_TOKEN_FILE = 4096
_OPEN = os.O_NOFOLLOW | os.O_CLOEXEC


def token_name(port: int) -> str:
    """The token file's name for *port*, inside the runtime directory."""
    return f"port-{port}.token"


def acquire(dir_fd: int, port: int, ref: str) -> str:
    """Join the token of *port*, creating it if no live process uses one, and return it.

    *ref* names this user of the token (unique per supervisor in the process).

    Raises:
        TimeoutError: another process held the lock for more than 2 s.
        RuntimeDirError: an existing token file is not private.
        OSError: the directory cannot be written.
    """
    with _locked(dir_fd, port):
        name = token_name(port)
        if not _live_refs(dir_fd, port):
            # Whatever token is there belongs to servers that died: never reuse it.
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=dir_fd)
        token = read_token(dir_fd, port)
        if token is None:
            token = _create(dir_fd, port)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | _OPEN
        fd = os.open(_ref_name(port, ref), flags, 0o600, dir_fd=dir_fd)
        with os.fdopen(fd, "w") as file:
            file.write(_start_time(os.getpid()) or "")
    return token


def release(dir_fd: int, port: int, ref: str) -> None:
    """Drop *ref*'s use of *port*'s token; the last live user deletes the token and the lock.

    Raises:
        TimeoutError: another process held the lock for more than 2 s.
    """
    with _locked(dir_fd, port):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(_ref_name(port, ref), dir_fd=dir_fd)
        if _live_refs(dir_fd, port):
            return
        with contextlib.suppress(FileNotFoundError):
            os.unlink(token_name(port), dir_fd=dir_fd)
        # Unlinked while we hold it: a process waiting on this lock file sees that its path
        # now names nothing (or a newer file) and starts over (see `_locked`).
        with contextlib.suppress(FileNotFoundError):
            os.unlink(_lock_name(port), dir_fd=dir_fd)


def read_token(dir_fd: int, port: int) -> str | None:
    """The token of *port*, or None when there is no token file.

    Raises:
        RuntimeDirError: the file is not private to this user.
    """
    try:
        fd = os.open(token_name(port), os.O_RDONLY | _OPEN, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    with os.fdopen(fd, "rb") as file:
        check_private(os.fstat(fd), token_name(port), is_dir=False)
        text = file.read(_MAX_TOKEN_FILE).decode("ascii", "replace").strip()
    return text or None


def _create(dir_fd: int, port: int) -> str:
    name = token_name(port)
    token = secrets.token_urlsafe(_TOKEN_BYTES)
    temporary = f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _OPEN, 0o600, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "w") as file:
            os.fchmod(fd, 0o600)  # whatever the umask
            file.write(token + "\n")
        try:
            os.link(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except FileExistsError:
            # Another process won (possible only without the lock, for example two
            # runtime-directory paths that name one directory): use its token.
            return read_token(dir_fd, port) or token
    finally:
        os.unlink(temporary, dir_fd=dir_fd)
    return token


def _live_refs(dir_fd: int, port: int) -> int:
    """How many references of *port* belong to running processes; prunes the others."""
    prefix = f"port-{port}."
    live = 0
    for entry in os.listdir(dir_fd):
        if not (entry.startswith(prefix) and entry.endswith(".ref")):
            continue
        pid_text = entry[len(prefix) :].split(".", 1)[0]
        try:
            fd = os.open(entry, os.O_RDONLY | _OPEN, dir_fd=dir_fd)
        except FileNotFoundError:
            continue
        with os.fdopen(fd, "rb") as file:
            started = file.read(64).decode("ascii", "replace").strip()
        if pid_text.isdigit() and _is_running(int(pid_text), started):
            live += 1
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry, dir_fd=dir_fd)
    return live


def _is_running(pid: int, started: str) -> bool:
    now = _start_time(pid)
    if now is not None:
        # A pid is reused; the start time (clock ticks since boot) tells the processes apart.
        return not started or now == started
    if os.path.isdir("/proc/self"):
        return False  # /proc is there and has no such process
    try:
        os.kill(pid, 0)  # no /proc (macOS): whether the pid exists is all we can know
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _start_time(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as file:
            stat = file.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat.rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 else None


@contextlib.contextmanager
def _locked(dir_fd: int, port: int) -> Iterator[None]:
    if fcntl is None:
        raise OSError("file locks (fcntl) are not available on this platform")
    deadline = time.monotonic() + _LOCK_TIMEOUT
    name = _lock_name(port)
    while True:
        fd = os.open(name, os.O_RDWR | os.O_CREAT | _OPEN, 0o600, dir_fd=dir_fd)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    # Others hold it for microseconds; a blocking flock could hang forever
                    # on a stopped process, so poll within a bound instead.
                    if time.monotonic() > deadline:
                        raise TimeoutError(
                            f"The lock file {name!r} was held for more than {_LOCK_TIMEOUT:g} s; "
                            "a process using it may be stopped."
                        ) from None
                    time.sleep(_LOCK_POLL_DELAY)
            try:
                current = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # the last user removed it while we waited: start over
            held = os.fstat(fd)
            if (current.st_dev, current.st_ino) != (held.st_dev, held.st_ino):
                continue  # removed and made anew while we waited: lock the new one
            yield
            return
        finally:
            os.close(fd)


def _lock_name(port: int) -> str:
    return f"port-{port}.lock"


def _ref_name(port: int, ref: str) -> str:
    return f"port-{port}.{os.getpid()}.{ref}.ref"
