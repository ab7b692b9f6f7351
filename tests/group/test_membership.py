"""The process group in one test process: members with their own pids, a real listener.

Each member is a `ProcessGroup` with a made-up pid (they share this process), a temporary
runtime folder, and the real discovery (its own `ListenerWatch`): the test holds a listening
TCP socket on loopback, which every member finds through ``/proc``, as the workers of one
server find theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asgi_supervisor import Supervisor
from asgi_supervisor._asgi.drain import process_outcomes
from asgi_supervisor._cli import commands as _cli
from asgi_supervisor._group.membership import ProcessGroup
from asgi_supervisor._host import proc as _listening
from asgi_supervisor._host.listeners import ListenerWatch
from asgi_supervisor._host.proc import listening_inodes, listening_ports, network_namespace
from asgi_supervisor._host.runtime_dir import RuntimeDirError, make_private
from asgi_supervisor.testing import LifespanManager
from tests.apps import crash_loop
from tests.conftest import bare_app, quiet_supervisor

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux /proc")


class Member:
    """A group member whose drain callback records what it heard."""

    def __init__(
        self,
        folder: Path,
        pid: int,
        *,
        status: dict[str, Any] | None = None,
        find_listeners: Any = listening_ports,
    ) -> None:
        self.heard: list[tuple[str, float]] = []
        self.drained = asyncio.Event()
        self.status = status or {"state": "ready", "drained": False}
        self.listeners = ListenerWatch(find_listeners)

        async def describe(drain_timeout: float) -> dict[str, Any]:
            return self.status

        self.group = ProcessGroup(
            asyncio.get_running_loop(),
            folder=folder,
            remove_folder=True,
            on_drain=self.on_drain,
            describe=describe,
            pid=pid,
        )

    def start(self) -> None:
        """Join once the member's watch finds a listener, as `Run.start` does."""
        self.group.start(self.listeners)
        self.listeners.start()

    async def close(self) -> None:
        """Leave the group and stop the watch, as the end of a lifespan does."""
        self.group.close()
        await self.listeners.aclose()

    def on_drain(self, trigger: str, deadline: float) -> None:
        self.heard.append((trigger, deadline))
        self.drained.set()
        # As the supervisor does: begin_drain announces, which must not re-broadcast.
        self.group.announce(trigger, deadline - 1.0)

    async def wait_heard(self, within: float = 1.0) -> tuple[str, float]:
        await asyncio.wait_for(self.drained.wait(), within)
        return self.heard[-1]


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A listening TCP socket on loopback, as a server's workers share one."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock


@pytest.fixture
def runtime() -> Iterator[Path]:
    """A short private runtime folder (unix socket paths are limited to 108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="pg-") as name:
        yield Path(name) / "rt"


async def joined(*members: Member) -> None:
    """Start each member; with the listener there, each joins as soon as the listener is
    found (the lookup runs off the loop)."""
    for member in members:
        member.start()
    for member in members:
        await asyncio.wait_for(_until(lambda member=member: member.group.joined), 2.0)


def test_listening_ports_and_inodes_name_our_listener(listener: socket.socket) -> None:
    """The listener's port and socket inode are found through /proc."""
    port = listener.getsockname()[1]
    assert port in listening_ports()
    assert os.fstat(listener.fileno()).st_ino in listening_inodes()
    assert listening_ports(pid=2**22 + 1) == set()  # no such process: empty, no error


async def test_a_drain_reaches_every_sibling_with_the_same_deadline(
    listener: socket.socket, runtime: Path
) -> None:
    """1. three members join; 2. one announces; 3. the others hear it within 100 ms with the
    same deadline; 4. nobody re-broadcasts (each heard exactly one drain)."""
    a, b, c = Member(runtime, 101), Member(runtime, 102), Member(runtime, 103)
    await joined(a, b, c)
    deadline = time.monotonic() + 20.0
    sent = time.monotonic()
    a.group.announce("drain endpoint", deadline)
    for member in (b, c):
        trigger, heard_deadline = await member.wait_heard(within=1.0)
        assert trigger == "drain endpoint (from pid 101)"
        assert heard_deadline == deadline
    assert time.monotonic() - sent < 0.1
    await asyncio.sleep(0.05)  # room for any echo to arrive, which must not
    assert (a.heard, len(b.heard), len(c.heard)) == ([], 1, 1)
    assert all(member.group.is_shared() for member in (a, b, c))
    for member in (a, b, c):
        await member.close()


async def test_concurrent_drains_keep_the_earliest_deadline(
    listener: socket.socket, runtime: Path
) -> None:
    """Two members announce at once: the one with the later deadline adopts the earlier
    one; the other ignores the later one."""
    a, b = Member(runtime, 201), Member(runtime, 202)
    await joined(a, b)
    now = time.monotonic()
    a.group.announce("api", now + 10.0)
    b.group.announce("critical worker failed", now + 5.0)
    assert await a.wait_heard() == ("critical worker failed (from pid 202)", now + 5.0)
    await asyncio.sleep(0.05)
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
    assert not a.group.is_shared()  # alone so far: it may end itself after a drain
    deadline = time.monotonic() + 8.0
    a.group.announce("api", deadline)
    found: set[int] = set()
    late = Member(runtime, 302, find_listeners=lambda: found)
    late.start()
    assert not late.group.joined
    found.update(listening_ports())  # the server listens after lifespan startup
    await asyncio.wait_for(_until(lambda: late.group.joined), 2.0)
    assert await late.wait_heard() == ("api (from pid 301)", deadline)
    for member in (a, late):
        await member.close()


async def test_a_worker_listening_on_two_ports_is_in_both_groups(
    listener: socket.socket, runtime: Path
) -> None:
    """A worker that also listens on a port of its own (a metrics server, say) still hears
    its siblings on the shared port, and its drain reaches the members of both groups."""
    shared = listener.getsockname()[1]
    with socket.create_server(("127.0.0.1", 0)) as metrics:
        own = metrics.getsockname()[1]
        both = Member(runtime, 901, find_listeners=lambda: {shared, own})
        sibling = Member(runtime, 902, find_listeners=lambda: {shared})
        other = Member(runtime, 903, find_listeners=lambda: {own})
        await joined(both, sibling, other)
        assert len(list(runtime.iterdir())) == 2
        deadline = time.monotonic() + 5.0
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
    await joined(a, b)
    group_folder = next(runtime.iterdir())
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as silent:
        silent.bind(str(group_folder / "403.sock"))  # bound, but nobody reads it
        outcomes = await a.group.ask_siblings(0.2)
        os.unlink(group_folder / "403.sock")
    assert outcomes == [
        {"pid": 402, "state": "stopped", "drained": True},
        {"pid": 403, "state": "unknown", "drained": False, "error": "no answer in 0.2 s"},
    ]
    for member in (a, b):
        await member.close()


async def test_stale_sockets_are_removed_and_nothing_is_left_after_close(
    listener: socket.socket, runtime: Path
) -> None:
    """1. a killed worker left its socket; 2. the next drain finds it dead and removes it;
    3. once every member has closed, the runtime folder is gone."""
    a, b = Member(runtime, 501), Member(runtime, 502)
    await joined(a, b)
    group_folder = next(runtime.iterdir())
    stale = group_folder / "503.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(stale))
    dead.close()  # the file stays, as after SIGKILL
    assert stale.exists()
    a.group.announce("api", time.monotonic() + 5.0)
    await b.wait_heard()
    assert not stale.exists()
    await a.close()
    assert runtime.exists()  # b is still there
    await b.close()
    assert not runtime.exists()


async def test_joining_sweeps_the_sockets_of_killed_workers_of_other_groups(
    listener: socket.socket, runtime: Path
) -> None:
    """A server on another port was killed and left its socket: the next member to join
    anywhere in the runtime folder removes it and its folder, and leaves live ones alone."""
    a = Member(runtime, 1001)
    await joined(a)
    old_group = runtime / "port1-net1"
    old_group.mkdir(mode=0o700)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(old_group / "1002.sock"))
    dead.close()
    b = Member(runtime, 1003)
    await joined(b)
    assert not old_group.exists()
    assert sorted(p.name for p in runtime.rglob("*.sock")) == ["1001.sock", "1003.sock"]
    for member in (a, b):
        await member.close()


@pytest.mark.parametrize("bits", [0o777, 0o755])
async def test_an_unsafe_runtime_folder_is_refused(
    listener: socket.socket, runtime: Path, caplog: pytest.LogCaptureFixture, bits: int
) -> None:
    """A runtime folder others can write to, or only read, is not used: the member drains
    alone, and the log says why."""
    runtime.mkdir(mode=0o700)
    runtime.chmod(bits)
    a = Member(runtime, 601)
    a.start()
    await asyncio.wait_for(_until(lambda: "process group unavailable" in caplog.text), 2.0)
    assert not a.group.joined
    assert f"has mode {bits:04o}, so other users may read or change it" in caplog.text
    assert list(runtime.iterdir()) == []
    await a.close()


def test_private_folder_refuses_links_and_other_owners(runtime: Path) -> None:
    """Only a real folder of our own user, writable by nobody else, is used."""
    runtime.parent.joinpath("elsewhere").mkdir(mode=0o700)
    runtime.symlink_to(runtime.parent / "elsewhere")
    with pytest.raises(RuntimeDirError, match="must be a real directory, not a symlink"):
        make_private(runtime)
    runtime.unlink()
    if os.getuid() != 0:
        pytest.skip("changing a folder's owner needs root")
    runtime.mkdir(mode=0o700)
    os.chown(runtime, 65534, 65534)
    with pytest.raises(RuntimeDirError, match=r"belongs to uid 65534"):
        make_private(runtime)


async def test_joining_makes_the_runtime_folder_again_if_a_leaver_removed_it(
    listener: socket.socket, runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last user of the runtime folder (a member, a local token) removes it, empty, as
    a newcomer has just made it: the newcomer makes it again and joins."""
    removed: list[Path] = []

    def make_then_lose_the_parent(path: Path) -> Path:
        if path.parent == runtime and not removed:
            removed.append(runtime)
            runtime.rmdir()  # as `remove_if_empty` does in the process leaving
        return make_private(path)

    monkeypatch.setattr("asgi_supervisor._group.channel.make_private", make_then_lose_the_parent)
    a = Member(runtime, 1201)
    await joined(a)
    assert removed == [runtime]
    assert [p.name for p in runtime.rglob("*.sock")] == ["1201.sock"]
    await a.close()
    assert not runtime.exists()


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
    async with LifespanManager(bare_app(supervisor)):
        group = supervisor._group
        assert group is not None
        await asyncio.wait_for(_until(lambda: group.joined), 2.0)
        await joined(sibling)
        deadline = time.monotonic() + 3.0
        sibling.group.announce("drain endpoint", deadline)
        await asyncio.wait_for(_until(lambda: supervisor.is_draining), 1.0)
        assert supervisor.drain_progress()["trigger"] == "drain endpoint (from pid 701)"
        assert abs(deadline_of(supervisor) - deadline) < 0.01
        outcomes = await process_outcomes(supervisor)
        assert [o["pid"] for o in outcomes] == [os.getpid(), 701]
        assert outcomes[1] == {"pid": 701, "state": "closing", "drained": True}
        await supervisor.drain()
    assert [p.name for p in runtime.rglob("*.sock")] == ["701.sock"]
    await sibling.close()
    assert not runtime.exists()


async def test_token_files_and_group_sockets_share_the_runtime_dir_set_in_code(
    listener: socket.socket, runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``runtime_dir=`` in code decides the folder of both the local token file and the
    group's socket, whatever the variable says; the lifespan's end leaves it empty."""
    monkeypatch.setenv("ASGI_SUPERVISOR_RUNTIME_DIR", str(runtime.parent / "elsewhere"))
    supervisor = quiet_supervisor(process_group=True, local_token=True, runtime_dir=str(runtime))
    app = bare_app(supervisor)
    port = listener.getsockname()[1]
    async with LifespanManager(app):
        group = supervisor._group
        assert group is not None
        await asyncio.wait_for(_until(lambda: group.joined), 2.0)
        await app._endpoints.local_tokens.refresh()
        assert (runtime / f"port-{port}.token").exists()
        group_folders = {p.parent.name for p in runtime.rglob("*.sock")}
        assert f"port{port}-net{network_namespace()}" in group_folders
        await supervisor.drain()
    assert os.listdir(runtime) == []
    assert not (runtime.parent / "elsewhere").exists()


async def test_one_look_at_the_listening_ports_serves_the_token_and_the_group(
    listener: socket.socket, runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the local token and the process group both on, the ports are looked up once per
    try: 1. while a look is under way (slow on a busy host) no other starts, neither the
    schedule's next try nor an endpoint's call for one; 2. its answer serves both."""
    looks = 0
    counting = threading.Lock()
    first_look, go_on = threading.Event(), threading.Event()
    read = _listening._listening

    def slow_read(pid: int | str) -> dict[int, int]:
        nonlocal looks
        with counting:
            looks += 1
            first = looks == 1
        if first:
            first_look.set()
            go_on.wait(5.0)
        return read(pid)

    # Every look at the ports goes through here, whoever imported `listening_ports`.
    monkeypatch.setattr(_listening, "_listening", slow_read)
    supervisor = quiet_supervisor(process_group=True, local_token=True, runtime_dir=str(runtime))
    app = bare_app(supervisor)
    local = app._endpoints.local_tokens
    async with LifespanManager(app):
        group = supervisor._group
        assert group is not None
        try:
            await asyncio.wait_for(_until(first_look.is_set), 2.0)
            asked = local.refresh_soon()  # an admin endpoint called without a token
            # The token's own schedule looked 0.05 s in, and its refresh at once: give a
            # second look the time it took, and some.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_until(lambda: looks > 1), 0.5)
            assert looks == 1
        finally:
            go_on.set()
        if asked is not None:
            await asyncio.wait_for(asyncio.shield(asked), 2.0)
        await asyncio.wait_for(_until(lambda: group.joined and bool(local.tokens)), 2.0)
        port = listener.getsockname()[1]
        assert (runtime / f"port-{port}.token").exists()
        await supervisor.drain()
    assert os.listdir(runtime) == []


async def test_a_supervisor_drain_reaches_its_siblings(
    listener: socket.socket, runtime: Path
) -> None:
    """begin_drain (the API, the drain endpoint) tells the siblings, with the supervisor's
    own deadline."""
    supervisor = quiet_supervisor(grace_period=10.0, process_group=True, runtime_dir=str(runtime))
    sibling = Member(runtime, 801)
    async with LifespanManager(bare_app(supervisor)):
        await joined(sibling)
        supervisor.begin_drain("api")
        trigger, deadline = await sibling.wait_heard(within=0.5)
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
        trigger, _ = await sibling.wait_heard(within=2.0)
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


async def _until(condition: Any) -> None:
    while not condition():
        await asyncio.sleep(0.01)
