"""`/metrics` in a process group: a scrape asks the siblings over the listener folder's
channel and answers for all of them, each sample labelled with its pid."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest
from starlette.applications import Starlette

from asgi_supervisor import SupervisorMiddleware
from asgi_supervisor._host.channel import MAX_MESSAGE, encode
from asgi_supervisor._observe.metrics import Snapshot, take_snapshot
from asgi_supervisor._observe.metrics_group import serve_snapshots
from asgi_supervisor.testing import LifespanManager
from tests._inprocess import client, named, parse, quiet_supervisor
from tests._siblings import Member, folder_of, joined, listener, runtime, until
from tests.apps import cooperative_worker

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux /proc")
__all__ = ["listener", "runtime"]  # fixtures


def pids_by_state(text: str) -> dict[str, str]:
    """pid -> current state, from an exposition."""
    return {
        dict(labels)["pid"]: dict(labels)["state"]
        for labels, v in named(parse(text), "state").items()
        if v == 1
    }


async def test_a_scrape_answers_for_every_sibling_and_names_the_silent_ones(
    listener: socket.socket, runtime: Path
) -> None:
    """1. a supervisor and a sibling that answers, one whose loop never reads (a socket
    nobody reads), and one that was killed (its socket refuses); 2. a scrape shows this
    process and the answering sibling, each sample labelled with its pid; 3. the silent one
    is shown as not answered, with no old values; the dead one is not shown at all."""
    supervisor = quiet_supervisor(process_group=True, runtime_dir=str(runtime))
    app = SupervisorMiddleware(Starlette(), supervisor=supervisor)
    sibling = Member(runtime, 2001)
    serve_snapshots(sibling.presence.channel, quiet_supervisor())  # never started: "starting"
    folder = folder_of(runtime, listener)
    async with LifespanManager(app), client(app) as http:
        await joined(sibling)
        await asyncio.wait_for(until(sibling.presence.channel.is_shared), 2.0)
        dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        dead.bind(str(folder / "2003.sock"))
        dead.close()
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as silent:
            silent.bind(str(folder / "2002.sock"))
            response = await http.get("/_supervisor/metrics")
        os.unlink(folder / "2002.sock")
        await supervisor.drain()
    await sibling.close()
    own = str(os.getpid())
    assert pids_by_state(response.text) == {own: "ready", "2001": "starting"}
    answered = named(parse(response.text), "group_answered")
    assert {dict(labels)["pid"]: value for labels, value in answered.items()} == {
        own: 1.0,
        "2001": 1.0,
        "2002": 0.0,
    }


async def test_a_process_alone_labels_nothing_with_a_pid(
    listener: socket.socket, runtime: Path
) -> None:
    """A single process (no sibling in its listener folder) exposes its samples as a process
    outside any group does: no pid label, no answered gauge."""
    supervisor = quiet_supervisor(process_group=True, runtime_dir=str(runtime))
    app = SupervisorMiddleware(Starlette(), supervisor=supervisor)
    async with LifespanManager(app), client(app) as http:
        await asyncio.wait_for(until(lambda: folder_of(runtime, listener).exists()), 2.0)
        text = (await http.get("/_supervisor/metrics")).text
        await supervisor.drain()
    assert list(named(parse(text), "state")) != []
    assert all("pid" not in dict(labels) for labels in named(parse(text), "state"))
    assert named(parse(text), "group_answered") == {}


async def test_a_large_apps_snapshot_fits_in_one_message() -> None:
    """The answer of an app with 200 workers of long names, 50 readiness checks and a
    finished shutdown's report fits in one datagram of the channel, with room to spare: if
    this fails, snapshots must be split or the limit raised. The scrape reads back every
    sample it was sent (grouped by family on the way)."""
    supervisor = quiet_supervisor()
    for n in range(200):
        supervisor.add_worker(
            cooperative_worker, supervisor, name=f"consume-jobs-from-queue-{n:04d}"
        )

    async def ok() -> bool:
        return True

    for n in range(50):
        supervisor.add_check(f"database-replica-{n:04d}-reachable", ok)
    async with LifespanManager(SupervisorMiddleware(Starlette(), supervisor=supervisor)):
        await supervisor.drain()
    snapshot = await take_snapshot(supervisor)
    answer = {"type": "answer", "id": "0" * 16, "pid": 4194304, "body": snapshot.to_dict()}
    size = len(encode(answer))  # raises if it does not fit
    assert size < 0.75 * MAX_MESSAGE, f"a large app's snapshot is {size} bytes"
    read_back = Snapshot.from_dict(snapshot.to_dict())
    assert sorted(read_back.samples) == sorted(snapshot.samples)
    assert (read_back.pid, read_back.taken_at) == (snapshot.pid, snapshot.taken_at)
