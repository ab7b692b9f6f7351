"""Which sockets a process holds and which TCP ports it listens on, read from ``/proc``.

The worker processes of one server listen on the same port: uvicorn ``--workers`` and
gunicorn ``-w`` workers hold the very socket their parent bound (one socket inode in all of
them), granian's workers each open their own with ``SO_REUSEPORT`` (one inode each). Within
one network namespace, only processes of one user can share a port that way, and the kernel
spreads the connections over them: they are one server.

A process's descriptors are in ``/proc/PID/fd`` (links reading ``socket:[INODE]``) and the
TCP sockets of its network namespace, with their state, in ``/proc/PID/net/tcp`` and
``tcp6``. `socket_inodes` is the one scan of ``/proc/PID/fd`` in the package: the listener
lookups here and the gunicorn worker's "does the master still hold our socket" both use it.
Where ``/proc`` is missing (macOS, Linux only) or unreadable, every function returns an
empty set (or 0 for the namespace).
"""

from __future__ import annotations

import os

__all__ = ["listening_inodes", "listening_ports", "network_namespace", "socket_inodes"]

_LISTEN = "0A"  # TCP_LISTEN in the kernel's st column


def listening_inodes(pid: int | str = "self") -> set[int]:
    """The inodes of the listening TCP sockets (IPv4 and IPv6) that *pid* holds open.

    Never raises: a process that has exited, or a ``/proc`` that cannot be read, gives an
    empty set.
    """
    return set(_listening(pid))


def listening_ports(pid: int | str = "self") -> set[int]:
    """The TCP ports that *pid* listens on (IPv4 and IPv6), like ``{8000}``.

    Never raises; see `listening_inodes`.
    """
    return set(_listening(pid).values())


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
    folder = f"/proc/{pid}/fd"
    try:
        names = os.listdir(folder)
    except OSError:
        return set()
    inodes = set()
    for name in names:
        try:
            target = os.readlink(f"{folder}/{name}")  # like "socket:[123456]"
        except OSError:
            continue  # closed since the listing
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def _listening(pid: int | str) -> dict[int, int]:
    """Listening socket inode -> port, for the sockets *pid* holds."""
    held = socket_inodes(pid)
    if not held:
        return {}
    listening: dict[int, int] = {}
    for table in ("tcp", "tcp6"):
        for inode, port in _listening_in_table(f"/proc/{pid}/net/{table}"):
            if inode in held:
                listening[inode] = port
    return listening


def _listening_in_table(path: str) -> list[tuple[int, int]]:
    # Columns: sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid
    # timeout inode ...; local_address is HEX_IP:HEX_PORT.
    try:
        with open(path, encoding="ascii") as table:
            lines = table.readlines()[1:]
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) < 10 or fields[3] != _LISTEN:
            continue
        port = int(fields[1].rpartition(":")[2], 16)
        found.append((int(fields[9]), port))
    return found
