"""The process group in one test process: members with their own pids, a real listener.

The members (`tests._siblings.Member`) share a temporary runtime folder and find the test's
listening socket through ``/proc``, as the workers of one server find theirs.
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import time
from pathlib import Path

import pytest

from asgi_supervisor import Supervisor
from asgi_supervisor._asgi.drain import process_outcomes
from asgi_supervisor._cli import commands as _cli
from asgi_supervisor._host.tcp_table import Listener
from asgi_supervisor.testing import LifespanManager
from tests._inprocess import bare_app, quiet_supervisor
from tests._siblings import (
    WITHIN,
    Member,
    folder_of,
    joined,
    listener,
    listening,
    runtime,
    settled,
    until,
)
from tests.apps import crash_loop

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux /proc")
__all__ = ["listener", "runtime"]  # fixtures


def sockets(runtime: Path) -> list[str]:
    """The member sockets in every listener folder of *runtime*, by name."""
    return sorted(path.name for path in runtime.rglob("*.sock"))


async def test_a_drain_reaches_every_sibling_with_the_same_deadline(
    listener: socket.socket, runtime: Path
) -> None:
    """1. three members join; 2. one announces; 3. the others hear it with the same
    deadline; 4. nobody re-broadcasts (each heard exactly one drain)."""
    a, b, c = Member(runtime, 101), Member(runtime, 102), Member(runtime, 103)
    await joined(a, b, c)
    deadline = time.monotonic() + 20.0
    assert a.group is not None
    a.group.announce("drain endpoint", deadline)
    for member in (b, c):
        trigger, heard_deadline = await member.wait_heard()
        assert trigger == "drain endpoint (from pid 101)"
        assert heard_deadline == deadline
    await settled(a, b, c)
    assert (a.heard, len(b.heard), len(c.heard)) == ([], 1, 1)
    assert (b.drains_said(), c.drains_said()) == ([], [])
    assert all(member.group is not None and member.group.is_shared() for member in (a, b, c))
    for member in (a, b, c):
        await member.close()


async def test_a_sibling_that_missed_the_drain_hears_it_with_the_status_question(
    listener: socket.socket, runtime: Path
) -> None:
    """A worker that joined while the drain was broadcast (or whose datagram was dropped)
    learns of the drain from the announcer's status question, before it answers: it never
    reports "ready, not drained" for a drain it could have joined."""
    a, b = Member(runtime, 1101), Member(runtime, 1102)
    await joined(a, b)
    assert a.group is not None
    a.presence.channel.broadcast_soon = lambda *messages: None  # type: ignore[method-assign]
    deadline = time.monotonic() + 20.0
    a.group.announce("drain endpoint", deadline)
    await a.group.ask_siblings(1.0)
    assert b.heard == [("drain endpoint (from pid 1101)", deadline)]
    for member in (a, b):
        await member.close()


async def test_concurrent_drains_keep_the_earliest_deadline(
    listener: socket.socket, runtime: Path
) -> None:
    """Two members announce at once: the one with the later deadline adopts the earlier
    one; the other ignores the later one."""
    a, b = Member(runtime, 201), Member(runtime, 202)
    await joined(a, b)
    assert a.group is not None
    assert b.group is not None
    now = time.monotonic()
    a.group.announce("api", now + 10.0)
    b.group.announce("critical worker failed", now + 5.0)
    assert await a.wait_heard() == ("critical worker failed (from pid 202)", now + 5.0)
    await settled(a, b)  # b has handled a's drain too
    assert b.heard == []
    for member in (a, b):
        await member.close()


async def test_a_newcomer_learns_of_a_drain_begun_before_it_joined(
    listener: socket.socket, runtime: Path
) -> None:
    """1. a member drains; 2. a worker started later (found its listener late) joins;
    3. it asks, and drains by the same deadline."""
    a = Member(runtime, 301)
    await joined(a)
    assert a.group is not None
    assert not a.group.is_shared()  # alone so far: it may end itself after a drain
    deadline = time.monotonic() + 8.0
    a.group.announce("api", deadline)
    found: set[Listener] = set()
    late = Member(runtime, 302, find=lambda: found)
    late.start()
    assert not late.presence.joined
    found.update(listening(listener))  # it listens after startup
    await asyncio.wait_for(until(lambda: late.presence.joined), WITHIN)
    assert await late.wait_heard() == ("api (from pid 301)", deadline)
    for member in (a, late):
        await member.close()


async def test_a_worker_listening_on_two_ports_is_in_both_groups(
    listener: socket.socket, runtime: Path
) -> None:
    """A worker that also listens on a port of its own (a metrics server, say) still hears
    its siblings on the shared port, and its drain reaches the members of both groups."""
    with socket.create_server(("127.0.0.1", 0)) as metrics:
        both = Member(runtime, 901, find=lambda: listening(listener, metrics))
        sibling = Member(runtime, 902, find=lambda: listening(listener))
        other = Member(runtime, 903, find=lambda: listening(metrics))
        await joined(both, sibling, other)
        assert len(list(runtime.iterdir())) == 2
        deadline = time.monotonic() + 5.0
        assert both.group is not None
        both.group.announce("api", deadline)
        assert await sibling.wait_heard() == ("api (from pid 901)", deadline)
        assert await other.wait_heard() == ("api (from pid 901)", deadline)
        for member in (both, sibling, other):
            await member.close()
    assert not runtime.exists()


async def test_siblings_report_their_outcome_and_silent_ones_are_named(
    listener: socket.socket, runtime: Path
) -> None:
    """The asker gets each sibling's status; one that never answers is 'unknown'."""
    a = Member(runtime, 401)
    b = Member(runtime, 402, status={"state": "stopped", "drained": True})
    c = Member(runtime, 404, group=False)  # process_group=False: a member, but no drains
    await joined(a, b, c)
    assert a.group is not None
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as silent:
        silent.bind(str(folder_of(runtime, listener) / "403.sock"))  # nobody reads it
        outcomes = await a.group.ask_siblings(0.2)
        os.unlink(folder_of(runtime, listener) / "403.sock")
    assert outcomes == [
        {"pid": 402, "state": "stopped", "drained": True},
        {"pid": 403, "state": "unknown", "drained": False, "error": "no answer in 0.7 s"},
        {
            "pid": 404,
            "state": "unknown",
            "drained": False,
            "error": "this process does not answer 'status'",
        },
    ]
    for member in (a, b, c):
        await member.close()


async def test_begin_drain_with_an_earlier_deadline_brings_it_forward() -> None:
    """A sibling's earlier deadline wins; a later one never pushes ours back."""
    supervisor = quiet_supervisor(grace_period=10.0, cancel_timeout=1.0)
    async with LifespanManager(bare_app(supervisor)):
        supervisor.begin_drain("api", deadline=time.monotonic() + 4.0)
        first = supervisor.deadline_remaining()
        assert first is not None
        assert 3.5 < first <= 4.0
        supervisor.begin_drain("api", deadline=time.monotonic() + 9.0)
        later = supervisor.deadline_remaining()
        assert later is not None
        assert later <= first
        await supervisor.drain()


def deadline_of(supervisor: Supervisor) -> float:
    """The supervisor's shutdown deadline as a ``time.monotonic()`` value."""
    remaining = supervisor.deadline_remaining()
    assert remaining is not None
    return time.monotonic() + remaining


async def test_a_supervisor_drains_with_its_group_and_tells_it(
    listener: socket.socket, runtime: Path
) -> None:
    """1. a supervisor joins its group at startup; 2. a sibling's drain starts its drain,
    by the sibling's deadline; 3. /drain's outcomes list the sibling; 4. the end of the
    lifespan removes its socket."""
    supervisor = quiet_supervisor(grace_period=10.0, process_group=True, runtime_dir=str(runtime))
    sibling = Member(runtime, 701, status={"state": "closing", "drained": True})
    assert sibling.group is not None
    async with LifespanManager(bare_app(supervisor)):
        await joined(sibling)
        # The supervisor's hello reaches the sibling once it has joined.
        await asyncio.wait_for(until(sibling.presence.channel.is_shared), WITHIN)
        deadline = time.monotonic() + 3.0
        sibling.group.announce("drain endpoint", deadline)
        await asyncio.wait_for(until(lambda: supervisor.is_draining), WITHIN)
        assert supervisor.drain_progress()["trigger"] == "drain endpoint (from pid 701)"
        assert abs(deadline_of(supervisor) - deadline) < 0.01
        outcomes = await process_outcomes(supervisor)
        assert [o["pid"] for o in outcomes] == [os.getpid(), 701]
        assert outcomes[1] == {"pid": 701, "state": "closing", "drained": True}
        await supervisor.drain()
    assert sockets(runtime) == ["701.sock"]
    await sibling.close()
    assert not runtime.exists()


async def test_the_token_and_the_group_share_one_listener_folder_set_in_code(
    listener: socket.socket, runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``runtime_dir=`` in code decides the one listener folder of both the local token and
    the group's socket, whatever the variable says; the lifespan's end leaves it empty."""
    monkeypatch.setenv("ASGI_SUPERVISOR_RUNTIME_DIR", str(runtime.parent / "elsewhere"))
    supervisor = quiet_supervisor(process_group=True, local_token=True, runtime_dir=str(runtime))
    folder = folder_of(runtime, listener)
    async with LifespanManager(bare_app(supervisor)):
        await asyncio.wait_for(until(lambda: (folder / "token").exists()), WITHIN)
        assert sorted(os.listdir(folder)) == [f"{os.getpid()}.sock", "listener", "token"]
        await supervisor.drain()
    assert os.listdir(runtime) == []
    assert not (runtime.parent / "elsewhere").exists()


async def test_a_supervisor_drain_reaches_its_siblings(
    listener: socket.socket, runtime: Path
) -> None:
    """begin_drain (the API, the drain endpoint) tells the siblings, with the supervisor's
    own deadline."""
    supervisor = quiet_supervisor(grace_period=10.0, process_group=True, runtime_dir=str(runtime))
    sibling = Member(runtime, 801)
    async with LifespanManager(bare_app(supervisor)):
        await joined(sibling)
        await asyncio.wait_for(until(sibling.presence.channel.is_shared), WITHIN)
        supervisor.begin_drain("api")
        trigger, deadline = await sibling.wait_heard()
        assert trigger == f"api (from pid {os.getpid()})"
        assert abs(deadline_of(supervisor) - deadline) < 0.01
        await supervisor.drain()
    await sibling.close()


async def test_a_critical_failure_drains_the_siblings_too(
    listener: socket.socket, runtime: Path
) -> None:
    """With on_critical_failure='shutdown', a critical worker giving up in one process
    drains its siblings as well."""
    sibling = Member(runtime, 1101)
    await joined(sibling)
    supervisor = quiet_supervisor(
        on_critical_failure="shutdown", process_group=True, runtime_dir=str(runtime)
    )
    supervisor.add_worker(crash_loop, restart="never", critical=True)
    async with LifespanManager(bare_app(supervisor)):
        trigger, _ = await sibling.wait_heard()
        assert trigger == f"critical worker failed (from pid {os.getpid()})"
        await supervisor.drain()
    await sibling.close()


@pytest.mark.parametrize(("second_drained", "status"), [(True, 0), (False, 1)])
def test_cli_drain_prints_every_worker_and_fails_if_one_did_not_drain(
    monkeypatch: pytest.MonkeyPatch, second_drained: bool, status: int
) -> None:
    """`asgi-supervisor drain` prints a line per worker process and exits 1 unless all
    drained."""
    body = {
        "state": "stopped",
        "drained": True,
        "report": {"requests": {"drained": 3, "rejected": 0}},
        "processes": [
            {"pid": 7, "state": "stopped", "drained": True},
            {"pid": 8, "state": "unknown", "drained": second_drained, "error": "no answer"},
        ],
    }
    monkeypatch.setattr(_cli, "_request", lambda args, path, **_: (200, body))
    out = io.StringIO()
    assert _cli.main(["drain", "http://127.0.0.1:1"], out=out) == status
    assert out.getvalue().splitlines()[1:] == [
        "  pid=7 state=stopped drained=True",
        f"  pid=8 state=unknown drained={second_drained} (no answer)",
    ]


async def test_with_process_group_off_a_member_hears_no_drain(
    listener: socket.socket, runtime: Path
) -> None:
    """``process_group=False`` with the local token on: the supervisor is a member of its
    listener folder (it keeps the token there), but a sibling's drain does not drain it."""
    supervisor = quiet_supervisor(process_group=False, local_token=True, runtime_dir=str(runtime))
    sibling = Member(runtime, 1501)
    assert sibling.group is not None
    async with LifespanManager(bare_app(supervisor)):
        await asyncio.wait_for(
            until(lambda: (folder_of(runtime, listener) / "token").exists()), WITHIN
        )
        await joined(sibling)
        sibling.group.announce("drain endpoint", time.monotonic() + 3.0)
        await sibling.flush()
        # Its answer comes after the drain it was sent: by then the drain was handled.
        replies = await sibling.presence.channel.ask("status", {"timeout": 0.0}, 1.0)
        assert replies[os.getpid()].error == "this process does not answer 'status'"
        assert not supervisor.is_draining
    await sibling.close()


async def test_a_worker_outside_its_group_refuses_a_drain_that_would_reach_it_alone(
    listener: socket.socket, runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1. a worker could not join (its runtime folder is unsafe) and others of its server
    share its listener (found through /proc, played here): a drain there would reach it
    alone, so `reach_problem` says why, naming the siblings and the cause; the state is
    'unavailable'; 2. alone on its listener, nothing is refused; 3. a member of the group
    reaches every member: nothing is refused, and an asker lists a worker of the server
    that is not a member as not drained."""
    runtime.mkdir(mode=0o700)
    runtime.chmod(0o755)
    outside = Member(runtime, 1601)
    assert outside.group is not None
    outside.start()
    await asyncio.wait_for(until(lambda: outside.presence.problem is not None), WITHIN)
    assert outside.group.state == "unavailable"
    monkeypatch.setattr(type(outside.presence), "sibling_workers", lambda self: {1602, 1603})
    problem = await outside.group.reach_problem()
    assert problem is not None
    assert problem.startswith("this worker (pid 1601) is one of several of its server (also ")
    assert "pid 1602, 1603) but is not in their process group (" in problem
    assert "has mode 0755" in problem
    monkeypatch.setattr(type(outside.presence), "sibling_workers", lambda self: set())
    assert await outside.group.reach_problem() is None
    await outside.close()
    runtime.chmod(0o700)
    a, b = Member(runtime, 1611), Member(runtime, 1612)
    await joined(a, b)
    assert a.group is not None
    assert a.group.state == "joined"
    monkeypatch.setattr(type(a.presence), "sibling_workers", lambda self: {1612, 1613})
    assert await a.group.reach_problem() is None
    outcomes = await a.group.ask_siblings(0.5)
    assert outcomes == [
        {"state": "ready", "drained": False, "pid": 1612},
        {
            "pid": 1613,
            "state": "unknown",
            "drained": False,
            "error": "a worker of this server outside this one's process group: it heard no drain",
        },
    ]
    for member in (a, b):
        await member.close()
