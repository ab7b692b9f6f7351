"""What ``/proc`` says about a process: the sockets it holds, and its sibling workers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from asgi_supervisor._host.proc import sibling_workers, socket_inodes

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
    assert not held & socket_inodes()


def test_socket_inodes_of_a_process_that_is_gone_is_empty() -> None:
    """A pid that has exited (its /proc folder is gone) gives an empty set, not an error."""
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                           capture_output=True, text=True, check=True, timeout=30)  # fmt: skip
    assert socket_inodes(int(child.stdout)) == set()


# A parent that binds a socket and forks two workers holding it (as uvicorn --workers and
# gunicorn do), and a third child that holds no socket; each worker reports its siblings.
# Pipes order it, not sleeps: a child looks once the parent has forked every child ("go"),
# and stays alive until the parent has every report ("done" reaches its end).
FORKING_SERVER = """
import json, os, socket
from asgi_supervisor._host.proc import sibling_workers
listener = socket.create_server(("127.0.0.1", 0))
inode = os.fstat(listener.fileno()).st_ino
go_reader, go_writer = os.pipe()
done_reader, done_writer = os.pipe()
reader, writer = os.pipe()
children = []
for role in ("worker", "worker", "bystander"):
    pid = os.fork()
    if pid == 0:
        for fd in (go_writer, done_writer, reader):
            os.close(fd)
        if role == "bystander":
            listener.close()
        os.read(go_reader, 1)
        if role == "worker":
            report = json.dumps([os.getpid(), sorted(sibling_workers({inode}))])
            os.write(writer, report.encode() + b"\\n")
        os.close(writer)
        os.read(done_reader, 1)
        os._exit(0)
    children.append(pid)
listener.close()
for fd in (go_reader, done_reader, writer):
    os.close(fd)
os.write(go_writer, b"x" * len(children))
with os.fdopen(reader) as lines:
    reports = dict(json.loads(line) for line in lines)
os.close(done_writer)
for pid in children:
    os.waitpid(pid, 0)
print(json.dumps({"children": children, "reports": reports}))
"""


def test_sibling_workers_are_the_parents_other_children_holding_the_socket() -> None:
    """Two workers forked by one parent hold its listening socket: each finds the other as
    its sibling, not itself, not the parent, and not a child holding no such socket."""
    run = subprocess.run([sys.executable, "-c", FORKING_SERVER], capture_output=True,
                         text=True, check=True, timeout=30)  # fmt: skip
    found = json.loads(run.stdout)
    a, b, _ = found["children"]
    assert found["reports"] == {str(a): [b], str(b): [a]}
    assert sibling_workers(set()) == set()
