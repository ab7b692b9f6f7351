"""The gunicorn worker class, without gunicorn running (`servers/test_gunicorn.py` runs it)."""

from __future__ import annotations

import os
import socket

import pytest

from asgi_supervisor.gunicorn import UvicornWorker

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")


def worker(master: int, listeners: set[int]) -> UvicornWorker:
    """A worker whose master is *master*, holding the listening sockets *listeners* (no
    gunicorn arbiter: only what `_master_holds_listener` reads is set)."""
    made: UvicornWorker = UvicornWorker.__new__(UvicornWorker)
    made.ppid = master
    made._listener_inodes = frozenset(listeners)
    return made


def test_the_master_holds_the_listener_while_its_socket_is_open() -> None:
    """The master (here this process) holds the listener while it has the socket open, and
    no longer once it closed it; a master that is gone holds nothing."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        inode = os.fstat(listener.fileno()).st_ino
        assert worker(os.getpid(), {inode})._master_holds_listener()
        assert not worker(os.getpid(), set())._master_holds_listener()
    assert not worker(os.getpid(), {inode})._master_holds_listener()
    assert not worker(2**22 + 1, {inode})._master_holds_listener()
