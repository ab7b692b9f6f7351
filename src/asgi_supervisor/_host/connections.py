"""The client connections this process still holds on its listening ports, and ending them.

After the stopping phase every request handler has ended, yet the server may still wait for
a connection before it shuts down: one whose client stopped reading keeps unsent data queued
in the kernel, which a graceful close waits to flush, forever. uvicorn's "Waiting for
connections to close" then never ends by itself, nor does granian's wait, nor hypercorn's
``server.wait_closed()`` on Python 3.12+; the watchdog ends the process at the deadline and
the app's own lifespan shutdown never runs.

The kernel knows which clients stopped reading: a connection with data queued and the
zero-window probe timer running (``tr`` 4 in ``/proc/net/tcp``) has a peer whose receive
window is closed. `end_connections` shuts such sockets down (``shutdown(SHUT_RDWR)`` on a
duplicate of the server's own descriptor, which acts on the socket itself): the server's
next write fails, and it closes the connection and goes on with its shutdown. Only
connections accepted on our listening ports are touched (their local port is one of them),
never the app's own outgoing connections.

Everything here reads ``/proc`` and makes system calls: run it in a thread, never on the loop.
Where ``/proc`` is missing, nothing is found and nothing is ended.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Collection
from dataclasses import dataclass

from .proc import socket_descriptors
from .tcp_table import Address, endpoint_text, rows

__all__ = ["Connection", "client_connections", "end_connections"]

_ESTABLISHED = 0x01  # TCP_ESTABLISHED in the kernel's st column
# The timer column (``tr:tm->when``): 4 is ICSK_TIME_PROBE0, the zero-window probe.
_ZERO_WINDOW_PROBE = 4


@dataclass(frozen=True, slots=True)
class Connection:
    """One established connection a client made to one of our listening ports.

    ``peer`` is the client's address as the kernel has it (``127.0.0.1:55436``,
    ``[::1]:55436``), never the one a proxy header claims; ``unsent`` counts the bytes
    queued for it; ``stalled`` says the client has stopped reading.
    """

    inode: int
    peer: str
    unsent: int
    stalled: bool


def client_connections(ports: Collection[int]) -> list[Connection]:
    """The established TCP connections this process holds whose local port is in *ports*.

    Never raises: without ``/proc``, or for a table that cannot be read, nothing is found.
    """
    if not ports:
        return []
    held = socket_descriptors()
    found = []
    for row in rows("self"):
        if row.state != _ESTABLISHED or row.inode not in held or row.local[1] not in ports:
            continue
        stalled = row.unsent > 0 and row.timer == _ZERO_WINDOW_PROBE
        found.append(Connection(row.inode, _peer(row.remote), row.unsent, stalled))
    return found


def end_connections(ports: Collection[int], *, stalled_only: bool) -> list[Connection]:
    """Shut down the client connections on *ports*: those whose client stopped reading, or
    every one (not *stalled_only*). Return the ones ended.

    A descriptor closed meanwhile, or reused for another socket, is left alone.
    """
    ended = []
    descriptors = socket_descriptors()
    for connection in client_connections(ports):
        if stalled_only and not connection.stalled:
            continue
        descriptor = descriptors.get(connection.inode)
        if descriptor is not None and _shut_down(descriptor, connection.inode):
            ended.append(connection)
    return ended


def _shut_down(descriptor: int, inode: int) -> bool:
    try:
        duplicate = os.dup(descriptor)
    except OSError:
        return False  # closed since we looked
    try:
        if os.fstat(duplicate).st_ino != inode:
            return False  # the number now names another file
        sock = socket.socket(fileno=duplicate)
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            return False  # already shut down, or no longer connected
        finally:
            sock.detach()
        return True
    finally:
        os.close(duplicate)


def _peer(remote: tuple[Address, int]) -> str:
    # A dual-stack listener's IPv4 client shows as ::ffff:127.0.0.1: name it as IPv4.
    address, port = remote
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return endpoint_text((str(address), port))
