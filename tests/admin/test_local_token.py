"""The local admin token: the token in the listener folder with the record of the sockets
it is for, shared by its members and gone with the last, and how the command finds it for
the one address whose socket is the server's."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from asgi_supervisor import SupervisorMiddleware
from asgi_supervisor._admin import local_token as _local_token
from asgi_supervisor._admin.local_token import LocalTokens, find_token
from asgi_supervisor._admin.token_file import (
    join_token,
    read_record,
    read_token,
    record_listener,
)
from asgi_supervisor._host import listeners as _listeners
from asgi_supervisor._host.listener_folder import folder_name
from asgi_supervisor._host.runtime_dir import RuntimeDirError, open_private
from asgi_supervisor._host.tcp_table import Listener
from asgi_supervisor.testing import LifespanManager
from tests._inprocess import quiet_supervisor
from tests._siblings import Member, folder_of, joined, listener, listening, runtime, until

__all__ = ["listener", "runtime"]  # fixtures


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A path for the runtime directory, not yet created."""
    return tmp_path / "run"


@pytest.fixture
def dir_fd(run_dir: Path) -> Iterator[int]:
    """The runtime directory, created and opened."""
    fd = open_private(run_dir, create=True)
    yield fd
    os.close(fd)


def write_token(runtime: Path, sock: socket.socket, *, record: bool = True) -> str:
    """Write the token of *sock*'s listener folder in *runtime*, as its first member does."""
    os.close(open_private(runtime, create=True))
    folder = open_private(runtime / folder_name(sock.getsockname()[:2]), create=True)
    try:
        token = join_token(folder)
        if record:
            (found,) = listening(sock)
            record_listener(folder, found)
        return token
    finally:
        os.close(folder)


# -- the token file ---------------------------------------------------------------------------


def test_the_first_member_writes_the_token_and_the_others_read_it(dir_fd: int) -> None:
    """The token appears whole (a temporary file linked into place), mode 0600, and a
    second join reads it rather than writing another."""
    first = join_token(dir_fd)
    assert join_token(dir_fd) == first
    assert len(first) >= 40
    assert os.listdir(dir_fd) == ["token"]
    info = os.stat("token", dir_fd=dir_fd)
    assert stat.S_IMODE(info.st_mode) == 0o600
    assert read_token(dir_fd) == first


def test_a_token_file_others_can_read_is_refused(run_dir: Path, dir_fd: int) -> None:
    """A token file with mode 0644 is refused, naming the file and the fix."""
    token_path = run_dir / "token"
    token_path.write_text("t\n")
    token_path.chmod(0o644)
    with pytest.raises(RuntimeDirError, match=r"file 'token' has mode 0644.*chmod 600"):
        read_token(dir_fd)


def test_the_record_lists_each_members_socket_once(dir_fd: int) -> None:
    """Each member adds its listening socket to the record (granian's workers bind one
    each), once; a record of another address is replaced, not merged."""
    first = Listener("127.0.0.1", 8000, inode=11, uid=1000)
    second = Listener("127.0.0.1", 8000, inode=12, uid=1000)
    record_listener(dir_fd, first)
    record_listener(dir_fd, second)
    record_listener(dir_fd, first)
    record = read_record(dir_fd)
    assert record is not None
    assert (record.endpoint, record.sockets) == (
        ("127.0.0.1", 8000),
        frozenset({(11, 1000), (12, 1000)}),
    )
    assert record.lists(second)
    assert not record.lists(Listener("::1", 8000, inode=12, uid=1000))
    assert not record.lists(Listener("127.0.0.1", 8000, inode=12, uid=1001))
    record_listener(dir_fd, Listener("::1", 8000, inode=13, uid=1000))
    record = read_record(dir_fd)
    assert record is not None
    assert (record.endpoint, record.sockets) == (("::1", 8000), frozenset({(13, 1000)}))
    assert stat.S_IMODE(os.stat("listener", dir_fd=dir_fd).st_mode) == 0o600


async def test_members_share_one_token_and_the_last_removes_it(
    listener: socket.socket, runtime: Path
) -> None:
    """1. three members join one listener at once: one token for all; 2. the first leaves:
    the token stays; 3. the last leaves: nothing is left."""
    members = [Member(runtime, pid, group=False) for pid in (11, 12, 13)]
    tokens = [LocalTokens(member.presence) for member in members]
    await joined(*members)
    await asyncio.wait_for(until(lambda: all(local.tokens for local in tokens)), 2.0)
    assert len({local.tokens for local in tokens}) == 1
    token_path = folder_of(runtime, listener) / "token"
    assert token_path.read_text().strip().encode() == tokens[0].tokens[0]
    await members[0].close()
    assert token_path.exists()
    for member in members[1:]:
        await member.close()
    assert not runtime.exists()


async def test_a_dead_servers_token_is_never_inherited(
    listener: socket.socket, runtime: Path
) -> None:
    """A server killed with SIGKILL left its token and its socket: the next one to join
    finds no live member and writes a new token."""
    folder = folder_of(runtime, listener)
    folder.mkdir(parents=True, mode=0o700)
    runtime.chmod(0o700)
    (folder / "token").write_text("old-token\n")
    (folder / "token").chmod(0o600)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dead.bind(str(folder / "99.sock"))
    dead.close()
    member = Member(runtime, 100, group=False)
    local = LocalTokens(member.presence)
    await joined(member)
    await asyncio.wait_for(until(lambda: local.tokens), 2.0)
    assert local.tokens != (b"old-token",)
    assert sorted(os.listdir(folder)) == ["100.sock", "listener", "token"]
    await member.close()


def test_find_token_looks_everywhere_and_names_problems(
    tmp_path: Path, listener: socket.socket
) -> None:
    """The command finds the token of the listener that would accept the connection, in
    the configured directory, skips an unsafe one and says why."""
    address, port = listener.getsockname()[:2]
    unsafe = tmp_path / "unsafe"
    unsafe.mkdir(mode=0o755)
    unsafe.chmod(0o755)
    found = find_token([address], port, {"ASGI_SUPERVISOR_RUNTIME_DIR": str(unsafe)})
    assert found.token is None
    assert any("has mode 0755" in problem for problem in found.problems)
    good = tmp_path / "good"
    token = write_token(good, listener)
    found = find_token([address], port, {"ASGI_SUPERVISOR_RUNTIME_DIR": str(good)})
    assert (found.token, found.path) == (token, good / folder_name((address, port)) / "token")
    assert (found.address, found.owners) == (address, frozenset({os.geteuid()}))


def test_the_token_goes_to_the_address_of_its_socket_only(tmp_path: Path) -> None:
    """Two services on one port, 127.0.0.1 and [::1] (as another user may put one next to
    a server): each address gets the token of its own socket, and a name resolving to both
    (localhost) gets the first address's; an address nothing listens on gets nothing."""
    environ = {"ASGI_SUPERVISOR_RUNTIME_DIR": str(tmp_path / "run")}
    with socket.create_server(("127.0.0.1", 0)) as ipv4:
        port = ipv4.getsockname()[1]
        try:
            ipv6 = socket.create_server(("::1", port), family=socket.AF_INET6)
        except OSError:
            pytest.skip("no IPv6 loopback")
        with ipv6:
            first, second = write_token(tmp_path / "run", ipv4), write_token(tmp_path / "run", ipv6)
            assert first != second
            assert find_token(["127.0.0.1"], port, environ).token == first
            assert find_token(["::1"], port, environ).token == second
            both = find_token(["::1", "127.0.0.1"], port, environ)
            assert (both.token, both.address) == (second, "::1")
        nobody = find_token(["::1"], port, environ)
        assert (nobody.token, nobody.address) == (None, None)
        assert nobody.problems == (f"nothing listens on [::1]:{port}",)


def test_another_users_socket_never_gets_the_token(
    tmp_path: Path, listener: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The socket that would accept the connection is another user's: no address is chosen
    (the command sends nothing), and the problem says so; where one address of a name is
    another user's and the next the server's, the server's is chosen and the other named."""
    address, port = listener.getsockname()[:2]
    environ = {"ASGI_SUPERVISOR_RUNTIME_DIR": str(tmp_path / "run")}
    token = write_token(tmp_path / "run", listener)
    (ours,) = listening(listener)
    stranger = Listener("::1", port, inode=ours.inode + 1, uid=os.geteuid() + 1)

    def accepting(target: str, port: int) -> list[Listener]:
        return [stranger] if target == "::1" else [ours]

    monkeypatch.setattr(_local_token, "accepting_listeners", accepting)
    refused = find_token(["::1"], port, environ)
    assert (refused.token, refused.address, refused.foreign) == (None, None, (f"[::1]:{port}",))
    assert refused.problems == (
        f"the socket listening on [::1]:{port} belongs to another user (uid {stranger.uid}), "
        "not to a server of yours: the local token is never sent to it",
    )
    chosen = find_token(["::1", address], port, environ)
    assert (chosen.token, chosen.address, chosen.foreign) == (token, address, (f"[::1]:{port}",))


def test_a_token_written_for_another_socket_is_not_sent(
    tmp_path: Path, listener: socket.socket
) -> None:
    """The folder's token was written for a socket that is gone (a server killed, its port
    taken by another service of ours): it is not sent there, and the problem says why; a
    folder with no record at all is not trusted either."""
    address, port = listener.getsockname()[:2]
    run = tmp_path / "run"
    environ = {"ASGI_SUPERVISOR_RUNTIME_DIR": str(run)}
    write_token(run, listener, record=False)
    folder = open_private(run / folder_name((address, port)), create=False)
    try:
        unrecorded = find_token([address], port, environ)
        record_listener(folder, Listener(address, port, inode=1, uid=os.geteuid()))
    finally:
        os.close(folder)
    stale = find_token([address], port, environ)
    for found in (unrecorded, stale):
        assert (found.token, found.address) == (None, address)  # ours: asked with no token
        assert any("is not the one the token in" in problem for problem in found.problems)


# -- the supervisor's side ------------------------------------------------------------------


async def found(port: int) -> str:
    """The token the command finds for 127.0.0.1:*port*, once there is one (off the loop)."""
    while True:
        token = (await asyncio.to_thread(find_token, ["127.0.0.1"], port, os.environ)).token
        if token is not None:
            return token
        await asyncio.sleep(0.02)


async def test_a_socket_bound_after_startup_gets_its_token_and_loses_it_at_the_end(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1. the lifespan starts before any socket listens (single-process uvicorn, hypercorn):
    no token; 2. a socket starts listening: the schedule finds it and writes the token;
    3. the lifespan ends: the file is gone, the directory named by the variable stays."""
    monkeypatch.setenv("ASGI_SUPERVISOR_RUNTIME_DIR", str(run_dir))
    app = SupervisorMiddleware(Starlette(), supervisor=quiet_supervisor(local_token=True))
    async with LifespanManager(app):
        with socket.create_server(("127.0.0.1", 0)) as sock:
            port = sock.getsockname()[1]
            token = await asyncio.wait_for(found(port), 10.0)
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app), base_url="http://t"
            ) as client:
                headers = {"Authorization": f"Bearer {token}"}
                assert (await client.get("/_supervisor/tasks", headers=headers)).status_code == 200
    assert os.listdir(run_dir) == []


async def test_a_default_runtime_directory_goes_with_the_last_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default directory ($XDG_RUNTIME_DIR/asgi-supervisor here) goes with the last
    listener folder."""
    monkeypatch.delenv("ASGI_SUPERVISOR_RUNTIME_DIR", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    default = tmp_path / "asgi-supervisor"
    app = SupervisorMiddleware(Starlette(), supervisor=quiet_supervisor(local_token=True))
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
        async with LifespanManager(app):
            await asyncio.wait_for(found(port), 10.0)
            assert (default / folder_name(("127.0.0.1", port)) / "token").exists()
    assert not default.exists()


@pytest.mark.parametrize("in_code", [False, True], ids=["variable", "runtime_dir in code"])
async def test_an_admin_request_writes_the_token_the_command_then_reads(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_code: bool
) -> None:
    """The server binds after its startup and no look has found it yet: 1. a request without
    a token gets 401, and by then the token of the listening port exists; 2. the command's
    retry with the token from that file gets 200. ``runtime_dir=`` set in code wins over the
    variable (here naming another directory): the command finds the file once given it as
    the variable."""
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("ASGI_SUPERVISOR_RUNTIME_DIR", str(elsewhere if in_code else run_dir))
    monkeypatch.setattr(_listeners, "_DELAYS", (60.0,))  # the schedule's first look is late
    settings = {"runtime_dir": str(run_dir)} if in_code else {}
    app = SupervisorMiddleware(
        Starlette(), supervisor=quiet_supervisor(local_token=True, **settings)
    )
    transport = httpx.ASGITransport(app)
    async with LifespanManager(app):
        with socket.create_server(("127.0.0.1", 0)) as sock:
            port = sock.getsockname()[1]
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                assert (await client.get("/_supervisor/tasks")).status_code == 401
                variable = {"ASGI_SUPERVISOR_RUNTIME_DIR": str(run_dir)}
                token = (await asyncio.to_thread(find_token, ["127.0.0.1"], port, variable)).token
                assert token is not None
                headers = {"Authorization": f"Bearer {token}"}
                assert (await client.get("/_supervisor/tasks", headers=headers)).status_code == 200
    assert os.listdir(run_dir) == []
    assert not elsewhere.exists()
