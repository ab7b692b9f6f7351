"""The TCP sockets of this network namespace, as ``/proc/net/tcp`` and ``tcp6`` list them.

Each row says where a socket is bound, its state, the uid that made it and its inode, and
for a connection what is still queued for its peer. Three users of the package read it:

* the listener watch (`listeners`), for the listening sockets this process holds
  (`listening_sockets`): their address and port name the listener's folder;
* the ``asgi-supervisor`` command, before it sends a local token: which socket would accept
  a connection to the address it is about to connect to (`accepting_listeners`), and,
  once connected, who owns the socket that did (`connection_owner`);
* the shutdown's end of stalled connections (`connections`), for the clients this process
  still holds on its listening ports (`rows`).

Addresses are given as the kernel bound them, in ``ipaddress``'s text form (``127.0.0.1``,
``::1``, ``0.0.0.0``, ``::``); an IPv6 socket bound to an IPv4-mapped address keeps its
mapped form. Where ``/proc`` is missing (macOS) or unreadable, every function finds nothing.
Each call reads the tables afresh: milliseconds on a host with many sockets, so call them
off the event loop.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from .proc import socket_inodes

__all__ = [
    "Listener",
    "Row",
    "accepting_listeners",
    "connection_owner",
    "endpoint_text",
    "listening_sockets",
    "listening_table",
    "rows",
]

_LISTEN = 0x0A  # TCP_LISTEN in the kernel's st column
_TABLES = ("tcp", "tcp6")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Listener:
    """One listening TCP socket: where it is bound, which socket it is, and who made it.

    Attributes:
        address: the address it is bound to, as text (``"127.0.0.1"``, ``"::"``).
        port: its TCP port.
        inode: the socket's inode, the same in every process that holds it.
        uid: the user that created it (the kernel's ``sk_uid``).
    """

    address: str
    port: int
    inode: int
    uid: int

    @property
    def endpoint(self) -> tuple[str, int]:
        """``(address, port)``: what every worker of one server listens on."""
        return (self.address, self.port)


@dataclass(frozen=True, slots=True)
class Row:
    """One socket of the tables: its two ends, the kernel's state number (``0x0A`` listens,
    ``0x01`` is established), the bytes queued for the peer (``unsent``), the timer running
    (``timer``: 4 is the zero-window probe), the uid that made it and its inode."""

    local: tuple[Address, int]
    remote: tuple[Address, int]
    state: int
    unsent: int
    timer: int
    uid: int
    inode: int


def endpoint_text(endpoint: tuple[str, int]) -> str:
    """``127.0.0.1:8000`` or ``[::1]:8000``: an address and port as a URL writes them."""
    address, port = endpoint
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def listening_table(pid: int | str = "self") -> list[Listener]:
    """Every listening TCP socket of *pid*'s network namespace, whoever holds it."""
    return [
        Listener(str(row.local[0]), row.local[1], row.inode, row.uid)
        for row in rows(pid)
        if row.state == _LISTEN
    ]


def listening_sockets(pid: int | str = "self") -> set[Listener]:
    """The listening TCP sockets (IPv4 and IPv6) that *pid* holds open."""
    held = socket_inodes(pid)
    if not held:
        return set()
    return {listener for listener in listening_table(pid) if listener.inode in held}


def accepting_listeners(address: str, port: int) -> list[Listener]:
    """The listening sockets that would accept a connection to *address*:*port* now.

    As the kernel chooses: sockets bound to exactly that address win over wildcards
    (``0.0.0.0``, ``::``), and for an IPv4 address an IPv4 wildcard wins over a dual-stack
    IPv6 one. Several sockets of one rank share the port (``SO_REUSEPORT``): the kernel
    spreads connections over all of them, so all are returned. Empty if none listens.
    Whether an IPv6 wildcard also accepts IPv4 (``IPV6_V6ONLY``) is not in the table: the
    caller checks who accepted, once connected (`connection_owner`).
    """
    target = _unmapped(ipaddress.ip_address(address))
    ranked: dict[int, list[Listener]] = {}
    for listener in listening_table():
        if listener.port != port:
            continue
        rank = _rank(target, ipaddress.ip_address(listener.address))
        if rank is not None:
            ranked.setdefault(rank, []).append(listener)
    return ranked[min(ranked)] if ranked else []


def connection_owner(server: tuple[str, int], client: tuple[str, int]) -> int | None:
    """The uid owning the server's end of the TCP connection from *client* to *server*.

    A connection accepted by a listening socket belongs to that socket's user until it is
    accepted and after (the kernel copies the owner), so this names who is answering. None
    when no such connection is listed.
    """
    local = (_unmapped(ipaddress.ip_address(server[0])), server[1])
    remote = (_unmapped(ipaddress.ip_address(client[0])), client[1])
    for row in rows("self"):
        if row.state == _LISTEN:
            continue
        if (_unmapped(row.local[0]), row.local[1]) == local and (
            _unmapped(row.remote[0]),
            row.remote[1],
        ) == remote:
            return row.uid
    return None


def _rank(target: Address, bound: Address) -> int | None:
    """How well a socket bound to *bound* matches a connection to *target* (0 best), or
    None if it would not accept it."""
    bound = _unmapped(bound)
    if bound == target:
        return 0
    if not bound.is_unspecified:
        return None
    if bound.version == target.version:
        return 1
    # An IPv6 wildcard accepts IPv4 too unless IPV6_V6ONLY; an IPv4 one never takes IPv6.
    return 2 if bound.version == 6 else None


def _unmapped(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def rows(pid: int | str = "self") -> list[Row]:
    """Every row of *pid*'s network namespace's tables (IPv4, then IPv6); none without
    ``/proc``. A row the kernel wrote in a form this does not know is skipped."""
    found = []
    for table in _TABLES:
        try:
            with open(f"/proc/{pid}/net/{table}", encoding="ascii") as file:
                lines = file.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            # sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid
            # timeout inode ...; addresses are HEX_IP:HEX_PORT.
            fields = line.split()
            if len(fields) < 10:
                continue
            try:
                found.append(
                    Row(
                        local=_endpoint(fields[1]),
                        remote=_endpoint(fields[2]),
                        state=int(fields[3], 16),
                        unsent=int(fields[4].partition(":")[0], 16),
                        timer=int(fields[5].partition(":")[0], 16),
                        uid=int(fields[7]),
                        inode=int(fields[9]),
                    )
                )
            except ValueError:
                continue
    return found


def _endpoint(text: str) -> tuple[Address, int]:
    # The kernel prints each 32-bit word of the address as a number in this host's byte
    # order: packing the numbers natively gives the address's bytes back.
    hex_address, _, hex_port = text.partition(":")
    words = [int(hex_address[i : i + 8], 16) for i in range(0, len(hex_address), 8)]
    packed = struct.pack(f"={len(words)}I", *words)
    return ipaddress.ip_address(packed), int(hex_port, 16)
