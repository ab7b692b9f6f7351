"""Which TCP ports a process listens on, read from Linux's ``/proc``.

ASGI servers do not tell the app where they listen, and several of them (single-process
uvicorn and hypercorn) bind only after the lifespan startup. A process can still learn its
listening sockets: each open socket is a ``socket:[inode]`` link in ``/proc/<pid>/fd``, and
``/proc/<pid>/net/tcp`` and ``tcp6`` list every socket of the network namespace with its
inode, local port and state. Matching the two finds the ports this process listens on,
including sockets inherited from a parent (uvicorn ``--workers``, gunicorn, granian).

Stdlib only and side-effect free; outside Linux (no ``/proc``) every answer is empty.
"""

from __future__ import annotations

import os

__all__ = ["listening_inodes", "listening_ports"]

_LISTEN = "0A"  # TCP_LISTEN in include/net/tcp_states.h, as /proc/net/tcp prints it
_SOCKET_LINK = "socket:["


def listening_ports(pid: int | str = "self") -> set[int]:
    """The TCP ports process *pid* listens on (IPv4 and IPv6), or an empty set.

    Reads ``/proc`` synchronously: a few hundred microseconds for a server with a few
    connections, more with tens of thousands (``/proc/net/tcp`` lists them all), so call it
    from a thread where that matters. Never raises for a process that is gone or not ours.
    """
    return set(_listening(pid).values())


def listening_inodes(pid: int | str = "self") -> set[int]:
    """The inodes of the listening TCP sockets process *pid* holds open, or an empty set.

    Two processes that hold the same inode share one listening socket (a server's workers).
    """
    return set(_listening(pid))


def _listening(pid: int | str) -> dict[int, int]:
    held = _socket_inodes(pid)
    if not held:
        return {}
    ports: dict[int, int] = {}
    for table in ("tcp", "tcp6"):
        for inode, port in _listen_table(f"/proc/{pid}/net/{table}").items():
            if inode in held:
                ports[inode] = port
    return ports


def _socket_inodes(pid: int | str) -> set[int]:
    directory = f"/proc/{pid}/fd"
    try:
        names = os.listdir(directory)
    except OSError:
        return set()
    inodes = set()
    for name in names:
        try:
            target = os.readlink(f"{directory}/{name}")
        except OSError:
            continue  # closed since the listing
        if target.startswith(_SOCKET_LINK) and target.endswith("]"):
            inodes.add(int(target[len(_SOCKET_LINK) : -1]))
    return inodes


def _listen_table(path: str) -> dict[int, int]:
    """Inode to local port of the LISTEN entries of one ``/proc/net/tcp*`` table."""
    try:
        with open(path, encoding="ascii") as table:
            lines = table.read().splitlines()[1:]  # the first line is the header
    except OSError:
        return {}  # no IPv6 in this kernel, or no /proc at all
    entries = {}
    for line in lines:
        # sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
        fields = line.split()
        if len(fields) < 10 or fields[3] != _LISTEN:
            continue
        _, _, port = fields[1].rpartition(":")
        entries[int(fields[9])] = int(port, 16)
    return entries
