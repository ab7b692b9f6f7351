"""The TCP tables of ``/proc``: which sockets listen where, which would accept a connection,
and who owns the end that did."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from asgi_supervisor._host.tcp_table import (
    Listener,
    accepting_listeners,
    connection_owner,
    endpoint_text,
    listening_sockets,
    listening_table,
)

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/net"), reason="needs /proc")


def listen(family: socket.AddressFamily, address: str, port: int = 0) -> socket.socket:
    """A listening socket bound to *address* (IPv6 ones only on IPv6)."""
    sock = socket.socket(family)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        sock.bind((address, port))
    except OSError:
        sock.close()
        pytest.skip(f"cannot bind {address}")
    sock.listen()
    return sock


def found(sock: socket.socket) -> Listener:
    """The listener *sock* is, as the table must list it."""
    address, port = sock.getsockname()[:2]
    return Listener(address, port, os.fstat(sock.fileno()).st_ino, os.geteuid())


@pytest.fixture
def ipv4_and_ipv6() -> Iterator[tuple[socket.socket, socket.socket]]:
    """Two services on one port: 127.0.0.1 and [::1], as another user may put one of them."""
    ipv4 = listen(socket.AF_INET, "127.0.0.1")
    with ipv4, listen(socket.AF_INET6, "::1", ipv4.getsockname()[1]) as ipv6:
        yield ipv4, ipv6


def test_listening_sockets_are_found_with_address_inode_and_owner() -> None:
    """A listening socket is listed with its address, port, inode and owner, IPv4 and IPv6;
    a bound socket that does not listen is not; a closed one is gone; a process that does
    not exist has none."""
    with (
        listen(socket.AF_INET, "127.0.0.1") as ipv4,
        listen(socket.AF_INET6, "::1") as ipv6,
        socket.socket() as bound,
    ):
        bound.bind(("127.0.0.1", 0))
        mine = listening_sockets()
        assert {found(ipv4), found(ipv6)} <= mine
        assert bound.getsockname()[1] not in {listener.port for listener in mine}
        assert {found(ipv4), found(ipv6)} <= set(listening_table())
        gone = found(ipv4)
    assert gone not in listening_sockets()
    assert listening_sockets(2**31 - 1) == set()


def test_the_exact_address_wins_over_a_wildcard_and_other_addresses_are_apart(
    ipv4_and_ipv6: tuple[socket.socket, socket.socket],
) -> None:
    """On one port, a connection to 127.0.0.1 is the IPv4 socket's and one to ::1 is the
    IPv6 socket's; nothing accepts 127.0.0.2 there, and a wildcard socket on another port
    accepts every address of its family."""
    ipv4, ipv6 = ipv4_and_ipv6
    port = ipv4.getsockname()[1]
    assert accepting_listeners("127.0.0.1", port) == [found(ipv4)]
    assert accepting_listeners("::1", port) == [found(ipv6)]
    assert accepting_listeners("127.0.0.2", port) == []
    with listen(socket.AF_INET, "0.0.0.0") as wildcard:
        other = wildcard.getsockname()[1]
        assert accepting_listeners("127.0.0.2", other) == [found(wildcard)]
        assert accepting_listeners("::1", other) == []


def test_a_dual_stack_wildcard_accepts_ipv4_after_any_ipv4_socket() -> None:
    """An IPv6 wildcard may accept IPv4 too (unless IPV6_V6ONLY, which the table does not
    show), ranked after IPv4 sockets; an IPv4-mapped address is its IPv4 address."""
    with socket.create_server(("::", 0), family=socket.AF_INET6, dualstack_ipv6=True) as dual:
        port = dual.getsockname()[1]
        assert accepting_listeners("127.0.0.1", port) == [found(dual)]
        assert accepting_listeners("::ffff:127.0.0.1", port) == [found(dual)]


def test_the_owner_of_the_accepting_end_is_found_before_and_after_accept(
    ipv4_and_ipv6: tuple[socket.socket, socket.socket],
) -> None:
    """Once connected, the server's end of the connection (waiting to be accepted, then
    accepted) names the listening socket's owner; a connection that does not exist has
    none."""
    ipv4, _ = ipv4_and_ipv6
    server = ipv4.getsockname()[:2]
    with socket.create_connection(server) as client:
        assert connection_owner(server, client.getsockname()[:2]) == os.geteuid()
        accepted, _ = ipv4.accept()
        with accepted:
            assert connection_owner(server, client.getsockname()[:2]) == os.geteuid()
    assert connection_owner(server, ("127.0.0.1", 1)) is None


def test_endpoints_are_written_as_urls_write_them() -> None:
    """IPv6 addresses go in brackets, IPv4 ones do not."""
    assert endpoint_text(("127.0.0.1", 8000)) == "127.0.0.1:8000"
    assert endpoint_text(("::1", 8000)) == "[::1]:8000"
