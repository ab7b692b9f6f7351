"""What ``/proc`` says about a process: the sockets it holds, the ones it listens on."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from asgi_supervisor._host.proc import listening_inodes, listening_ports, socket_inodes

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")


def test_socket_inodes_lists_every_socket_a_process_holds_and_forgets_closed_ones() -> None:
    """A socket this process opens is among its socket inodes until it is closed, listening
    or not; the other process's view of ours is the same."""
    with socket.socket() as listener, socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as other:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        held = {os.fstat(listener.fileno()).st_ino, os.fstat(other.fileno()).st_ino}
        assert held <= socket_inodes()
        assert held <= socket_inodes(os.getpid())
        assert os.fstat(listener.fileno()).st_ino in listening_inodes()
        assert listener.getsockname()[1] in listening_ports()
    assert not held & socket_inodes()


def test_socket_inodes_of_a_process_that_is_gone_is_empty() -> None:
    """A pid that has exited (its /proc folder is gone) gives an empty set, not an error."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True, timeout=30)  # fmt: skip
    assert socket_inodes(int(child.stdout)) == set()
