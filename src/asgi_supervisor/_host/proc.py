"""What ``/proc`` says about a process: the sockets it holds, its siblings, its namespace.

The worker processes of one server listen on the same address and port: uvicorn
``--workers`` and gunicorn ``-w`` workers hold the very socket their parent bound (one
socket inode in all of them), granian's workers each open their own with ``SO_REUSEPORT``
(one inode each, which the kernel allows only to processes of one user). Either way they are
children of one parent that hold a listening socket of the same address and port: that is
how a worker knows it is one of several even when the process group cannot meet
(`sibling_workers`).

A process's descriptors are in ``/proc/PID/fd`` (links reading ``socket:[INODE]``);
`socket_descriptors` is the one scan of them in the package (`socket_inodes` gives its
inodes): the listening sockets (`tcp_table.listening_sockets`), the siblings, the shutdown's
ending of stalled connections, and the gunicorn worker's "does the master
still hold our socket" all use it. Where ``/proc`` is missing (macOS, Linux only) or
unreadable, every function returns an empty set (or 0 for the namespace).
"""

from __future__ import annotations

import os

__all__ = ["network_namespace", "sibling_workers", "socket_descriptors", "socket_inodes"]


def network_namespace(pid: int | str = "self") -> int:
    """The inode of *pid*'s network namespace (ports are per namespace), or 0 if unknown."""
    try:
        link = os.readlink(f"/proc/{pid}/ns/net")  # like "net:[4026531840]"
    except OSError:
        return 0
    return int(link.partition("[")[2].rstrip("]") or 0)


def socket_inodes(pid: int | str = "self") -> set[int]:
    """The inodes of every socket *pid* holds open, of any family, listening or not.

    Never raises: a process that has exited, or a ``/proc`` that cannot be read (another
    user's process), gives an empty set.
    """
    return set(socket_descriptors(pid))


def socket_descriptors(pid: int | str = "self") -> dict[int, int]:
    """Every socket *pid* holds open, as its inode and one descriptor number holding it.

    Never raises; see `socket_inodes`. A descriptor may be closed, and its number reused,
    as soon as this returns: check the inode of what it names before acting on it (the
    shutdown's `connections` does).
    """
    folder = f"/proc/{pid}/fd"
    try:
        names = os.listdir(folder)
    except OSError:
        return {}
    descriptors = {}
    for name in names:
        try:
            target = os.readlink(f"{folder}/{name}")  # like "socket:[123456]"
        except OSError:
            continue  # closed since the listing
        if target.startswith("socket:["):
            descriptors[int(target[8:-1])] = int(name)
    return descriptors


def sibling_workers(inodes: set[int]) -> set[int]:
    """The pids of the other children of our parent that hold one of the sockets *inodes*.

    Give it the inodes of every listening socket on this process's addresses and ports: the
    workers of a server share one (uvicorn, gunicorn) or bind one each (granian), and the
    parent that holds the socket too is not its own sibling. Reads ``/proc/*/stat`` (one
    small read per process) and the descriptors of our parent's children: call it off the
    event loop. Processes of other users cannot be read and are not found.
    """
    if not inodes:
        return set()
    me, parent = os.getpid(), os.getppid()
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return set()
    return {
        pid
        for pid in pids
        if pid != me and _parent_of(pid) == parent and socket_inodes(pid) & inodes
    }


def _parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as file:
            stat = file.read()
    except OSError:
        return None
    # "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses, so split after
    # the last one.
    fields = stat.rpartition(")")[2].split()
    return int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else None
