"""One listener's folder in the runtime directory: its members, under its lock.

The processes that serve one listener (the workers of ``uvicorn --workers``, gunicorn ``-w``,
granian) meet in one folder of the private runtime directory (see `runtime_dir`)::

    <runtime>/listener-127.0.0.1:8000-net4026531840/   `folder_name`: the one place that
        1234.sock     each member's unix datagram socket, named after its pid (`presence`)
        token         the local admin token, while a member keeps one (`_admin.token_file`)
        listener      the listening sockets the token is for (`_admin.token_file`)

* **The key** is the listening socket's address and port, and the network namespace (ports
  are per namespace): what every worker of one server listens on, whether they share one
  socket (uvicorn, gunicorn: one inode) or bind one each with ``SO_REUSEPORT`` (granian,
  which the kernel allows only to processes of one user). Two services of one user on
  ``127.0.0.1:8000`` and ``[::1]:8000`` are two listeners, two folders, two tokens.

* **Alive** means the member's socket accepts a connect (`is_alive`): a killed process's
  socket file stays, but nobody is bound to it and a connect is refused. No pid is looked
  up, so a reused pid proves nothing either way.
* **The lock** is ``flock`` on the folder itself. Every join and every leave holds it, so a
  joiner sees every member that joined before it, and nobody joins a folder being removed.
* **The first and the last.** A joiner that finds no live member clears what dead members
  left (their sockets, their token) before it moves in; the last live member to leave
  removes everything and the folder. A reader that takes no lock (the command reading the
  token) relies on files appearing whole (`runtime_dir.publish`).

Paths given to the kernel go through ``/proc/self/fd/<folder>``: short enough for a unix
socket whatever the runtime directory's length, and they name the folder that was checked,
not whatever a path names later. Every function here blocks (the file system, a lock that
others hold for microseconds): call them in a thread, never on the event loop.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import time
from collections.abc import Iterator

from .proc import network_namespace
from .runtime_dir import RuntimeDirError, check_private
from .tcp_table import endpoint_text

try:
    import fcntl
except ImportError:  # Windows: no /proc either, so no listener is ever found
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "FOLDER_PREFIX",
    "clear",
    "folder_name",
    "is_alive",
    "live_members",
    "locked",
    "member_pids",
    "reopen",
    "socket_name",
    "socket_path",
]

FOLDER_PREFIX = "listener-"
_SUFFIX = ".sock"
_LOCK_TIMEOUT = 2.0
_LOCK_POLL_DELAY = 0.005
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def folder_name(endpoint: tuple[str, int]) -> str:
    """The folder of the listener bound to *endpoint* (address, port) in this process's
    network namespace, like ``listener-127.0.0.1:8000-net4026531840``.

    The one key of the cross-process protocol: members meet, and the command finds the
    token, under this name. Addresses and ports are per network namespace, so the namespace
    is part of it (read from ``/proc`` once per process: call it first off the event loop).
    """
    return f"{FOLDER_PREFIX}{endpoint_text(endpoint)}-net{_namespace()}"


@functools.cache
def _namespace() -> int:
    return network_namespace()


def socket_name(pid: int) -> str:
    """The name of member *pid*'s socket inside its folders."""
    return f"{pid}{_SUFFIX}"


def socket_path(folder_fd: int, pid: int) -> str:
    """A path to member *pid*'s socket in the folder open as *folder_fd* (see the module)."""
    return f"/proc/self/fd/{folder_fd}/{socket_name(pid)}"


def member_pids(folder_fd: int) -> set[int]:
    """The pids named by the sockets in the folder, alive or not; never raises."""
    try:
        names = os.listdir(folder_fd)
    except OSError:
        return set()
    pids = set()
    for name in names:
        stem, dot, suffix = name.partition(".")
        if dot and f".{suffix}" == _SUFFIX and stem.isdigit():
            pids.add(int(stem))
    return pids


def is_alive(folder_fd: int, pid: int) -> bool:
    """Whether member *pid*'s socket in the folder accepts a connect: its process runs.

    The one liveness check of the package. Connecting sends nothing, so the member sees
    nothing. An error other than a refusal or a missing file counts as alive: such a socket
    is not ours to judge, and never removed.
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(socket_path(folder_fd, pid))
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except OSError:
            return True
    return True


def live_members(folder_fd: int, *, skip: int) -> set[int]:
    """The pids of the live members of the folder, *skip* (ourselves) left out."""
    return {pid for pid in member_pids(folder_fd) if pid != skip and is_alive(folder_fd, pid)}


def clear(folder_fd: int) -> None:
    """Remove every file in the folder (what members that died left); never raises."""
    try:
        names = os.listdir(folder_fd)
    except OSError:
        return
    for name in names:
        with contextlib.suppress(OSError):  # gone already, or a folder nobody of ours made
            os.unlink(name, dir_fd=folder_fd)


@contextlib.contextmanager
def locked(
    base_fd: int, name: str, *, create: bool, timeout: float = _LOCK_TIMEOUT
) -> Iterator[int]:
    """Hold the lock of the folder *name* in the runtime directory *base_fd*; yield its fd.

    With *create*, a missing folder is made (mode 0700). The descriptor is closed when the
    block ends, which releases the lock; `reopen` it to go on using the folder (a ``dup``
    would share the lock, and hold it).

    Raises:
        FileNotFoundError: the folder does not exist (or its last member removed it while
            we waited) and *create* is false.
        RuntimeDirError: the folder is a symlink, or not ours alone.
        TimeoutError: another process held the lock for more than *timeout* seconds.
    """
    if fcntl is None:
        raise OSError("file locks (fcntl) are not available on this platform")
    deadline = time.monotonic() + timeout
    while True:
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o700, dir_fd=base_fd)
        try:
            fd = os.open(name, _OPEN_DIR, dir_fd=base_fd)
        except FileNotFoundError:
            if create and time.monotonic() < deadline:
                continue  # its last member removed it, empty, between our mkdir and open
            raise
        except OSError as exc:
            raise RuntimeDirError(
                f"The listener folder {name!r} cannot be opened ({exc.strerror}); it must be "
                "a real directory, not a symlink: remove it."
            ) from None
        try:
            check_private(os.fstat(fd), name, is_dir=True)
            _lock(fd, name, deadline)
            if _still_named(base_fd, name, fd):
                yield fd
                return
            if not create:
                raise FileNotFoundError(f"The listener folder {name!r} was removed.")
            # Its last member removed it while we waited for the lock: make it anew.
        finally:
            os.close(fd)


def reopen(folder_fd: int) -> int:
    """A descriptor of its own for the folder open as *folder_fd*, without its lock."""
    return os.open(".", _OPEN_DIR, dir_fd=folder_fd)


def _lock(fd: int, name: str, deadline: float) -> None:
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            # Others hold it for microseconds; a blocking flock could hang forever on a
            # stopped process, so poll within a bound instead.
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"The lock of the listener folder {name!r} was held for too long; a "
                    "process of this server may be stopped (SIGSTOP) or stuck."
                ) from None
            time.sleep(_LOCK_POLL_DELAY)


def _still_named(base_fd: int, name: str, fd: int) -> bool:
    held = os.fstat(fd)
    if held.st_nlink == 0:
        return False  # removed: a folder made anew may even have its inode number
    try:
        current = os.stat(name, dir_fd=base_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return (current.st_dev, current.st_ino) == (held.st_dev, held.st_ino)
