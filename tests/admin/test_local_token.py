"""The local admin token: the private directory, the token in the listener folder, shared
by its members and gone with the last, and how the command finds it."""

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
from asgi_supervisor._admin.local_token import LocalTokens, find_token
from asgi_supervisor._admin.token_file import join_token, read_token
from asgi_supervisor._host import listeners as _listeners
from asgi_supervisor._host.listener_folder import folder_name
from asgi_supervisor._host.proc import listening_inodes, listening_ports
from asgi_supervisor._host.runtime_dir import RuntimeDirError, candidates, locate, open_private
from asgi_supervisor.testing import LifespanManager
from tests._inprocess import quiet_supervisor
from tests._siblings import Member, folder_of, joined, listener, runtime, until

PORT = 8123
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


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


# -- the runtime directory --------------------------------------------------------------------


def test_directory_is_created_private(run_dir: Path) -> None:
    """A missing directory is created with mode 0700, whatever the umask."""
    old = os.umask(0)
    try:
        os.close(open_private(run_dir, create=True))
    finally:
        os.umask(old)
    assert mode(run_dir) == 0o700


@pytest.mark.parametrize("bits", [0o750, 0o705, 0o777])
def test_directory_others_can_reach_is_refused(run_dir: Path, bits: int) -> None:
    """A directory with any group or other bit is refused, naming its mode and the fix."""
    run_dir.mkdir()
    run_dir.chmod(bits)
    with pytest.raises(RuntimeDirError, match=rf"has mode {bits:04o}.*chmod 700"):
        open_private(run_dir, create=True)


def test_symlink_and_file_are_refused(run_dir: Path, tmp_path: Path) -> None:
    """A symlink (even to a private directory) or a plain file is refused."""
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o700)
    run_dir.symlink_to(target)
    with pytest.raises(RuntimeDirError, match="must be a real directory, not a symlink"):
        open_private(run_dir, create=True)
    plain = tmp_path / "plain"
    plain.write_text("")
    with pytest.raises(RuntimeDirError, match="cannot be opened as a directory"):
        open_private(plain, create=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a directory away needs root")
def test_directory_of_another_user_is_refused(run_dir: Path) -> None:
    """A directory owned by another user is refused even with mode 0700."""
    run_dir.mkdir(mode=0o700)
    os.chown(run_dir, 65534, -1)
    with pytest.raises(RuntimeDirError, match="belongs to uid 65534"):
        open_private(run_dir, create=True)


def test_missing_directory_without_create(run_dir: Path) -> None:
    """Looking (the command) never creates the directory."""
    with pytest.raises(FileNotFoundError):
        open_private(run_dir, create=False)
    assert not run_dir.exists()


def test_candidates_in_order(tmp_path: Path) -> None:
    """The variable first, then $XDG_RUNTIME_DIR if it is ours, then the temporary directory."""
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    found = candidates({"ASGI_SUPERVISOR_RUNTIME_DIR": "/x/y", "XDG_RUNTIME_DIR": str(xdg)})
    assert found[:2] == [Path("/x/y"), xdg / "asgi-supervisor"]
    assert found[-1] == Path(f"/tmp/asgi-supervisor-{os.geteuid()}")
    no_xdg = candidates({"XDG_RUNTIME_DIR": str(tmp_path / "missing")})
    assert all(path.name == f"asgi-supervisor-{os.geteuid()}" for path in no_xdg)


def test_locate_the_setting_first_and_only_a_default_is_removable(tmp_path: Path) -> None:
    """The ``runtime_dir`` setting wins over the variable; a directory named by either stays,
    the default one is the library's to remove."""
    environ = {"ASGI_SUPERVISOR_RUNTIME_DIR": "/x/y", "XDG_RUNTIME_DIR": str(tmp_path)}
    assert (locate("/set/in/code", environ).path, locate(" /p ", environ).path) == (
        Path("/set/in/code"),
        Path("/p"),
    )
    assert not locate("/set/in/code", environ).removable
    assert (locate(None, environ).path, locate(None, environ).removable) == (Path("/x/y"), False)
    default = locate(None, {"XDG_RUNTIME_DIR": str(tmp_path)})
    assert (default.path, default.removable) == (tmp_path / "asgi-supervisor", True)


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
    with pytest.raises(RuntimeDirError, match=r"token file 'token' has mode 0644.*chmod 600"):
        read_token(dir_fd)


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
    assert sorted(os.listdir(folder)) == ["100.sock", "token"]
    await member.close()


def test_find_token_looks_everywhere_and_names_problems(tmp_path: Path) -> None:
    """The command finds the token in the listener folder of the URL's port, in the
    configured directory, skips an unsafe one and says why."""
    unsafe = tmp_path / "unsafe"
    unsafe.mkdir(mode=0o755)
    unsafe.chmod(0o755)
    found = find_token(PORT, {"ASGI_SUPERVISOR_RUNTIME_DIR": str(unsafe)})
    assert found.token is None
    assert any("has mode 0755" in problem for problem in found.problems)
    good = tmp_path / "good"
    os.close(open_private(good, create=True))
    folder = open_private(good / folder_name(PORT), create=True)
    try:
        token = join_token(folder)
    finally:
        os.close(folder)
    found = find_token(PORT, {"ASGI_SUPERVISOR_RUNTIME_DIR": str(good)})
    assert (found.token, found.path) == (token, good / folder_name(PORT) / "token")
    assert find_token(PORT + 1, {"ASGI_SUPERVISOR_RUNTIME_DIR": str(good)}).token is None


# -- the listening ports ----------------------------------------------------------------------


def test_listening_ports_sees_listening_sockets_only() -> None:
    """A listening socket's port is found; a bound but not listening one is not; once closed
    it is gone."""
    with socket.socket() as listening, socket.socket() as bound:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        bound.bind(("127.0.0.1", 0))
        port = listening.getsockname()[1]
        assert port in listening_ports()
        assert bound.getsockname()[1] not in listening_ports()
        assert os.fstat(listening.fileno()).st_ino in listening_inodes()
    assert port not in listening_ports()
    assert listening_ports(2**31 - 1) == set()  # no such process


def test_listening_ports_of_ipv6() -> None:
    """An IPv6 listening socket is found too."""
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    with socket.socket(socket.AF_INET6) as sock:
        try:
            sock.bind(("::1", 0))
        except OSError:
            pytest.skip("no IPv6 loopback")
        sock.listen()
        assert sock.getsockname()[1] in listening_ports()


# -- the supervisor's side ------------------------------------------------------------------


async def found(port: int) -> str:
    """The token the command finds for *port*, once there is one (read off the loop)."""
    while True:
        token = (await asyncio.to_thread(find_token, port, os.environ)).token
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
                assert (await client.get("/tasks", headers=headers)).status_code == 200
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
            assert (default / folder_name(port) / "token").exists()
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
                assert (await client.get("/tasks")).status_code == 401
                variable = {"ASGI_SUPERVISOR_RUNTIME_DIR": str(run_dir)}
                token = (await asyncio.to_thread(find_token, port, variable)).token
                assert token is not None
                headers = {"Authorization": f"Bearer {token}"}
                assert (await client.get("/tasks", headers=headers)).status_code == 200
    assert os.listdir(run_dir) == []
    assert not elsewhere.exists()
