"""The local admin token: the private directory, the shared file, and finding the port."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from asgi_supervisor import SupervisorMiddleware
from asgi_supervisor._admin.local_token import LocalTokens, find_token
from asgi_supervisor._admin.token_file import acquire, read_token, release
from asgi_supervisor._host.listeners import ListenerWatch
from asgi_supervisor._host.proc import listening_inodes, listening_ports
from asgi_supervisor._host.runtime_dir import RuntimeDirError, candidates, locate, open_private
from tests.conftest import quiet_supervisor

PORT = 8123


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


def test_workers_share_one_token_and_the_last_removes_it(run_dir: Path, dir_fd: int) -> None:
    """1. two users join one port: one token, mode 0600, two references; 2. the first leaves:
    the token stays; 3. the last leaves: nothing is left."""
    first = acquire(dir_fd, PORT, "a")
    assert acquire(dir_fd, PORT, "b") == first
    token_path = run_dir / f"port-{PORT}.token"
    assert token_path.read_text() == first + "\n"
    assert len(first) >= 40
    assert mode(token_path) == 0o600
    assert len(list(run_dir.glob("*.ref"))) == 2
    assert not list(run_dir.glob(".*.tmp"))
    release(dir_fd, PORT, "a")
    assert read_token(dir_fd, PORT) == first
    release(dir_fd, PORT, "b")
    assert os.listdir(run_dir) == []


def test_concurrent_creation_gives_every_user_the_same_token(run_dir: Path, dir_fd: int) -> None:
    """Sixteen users joining at once (separate locks, as separate processes have) all get
    the token the first one wrote."""
    with ThreadPoolExecutor(8) as pool:
        tokens = set(pool.map(lambda n: acquire(dir_fd, PORT, f"t{n}"), range(16)))
    assert len(tokens) == 1
    assert len(list(run_dir.glob("*.ref"))) == 16
    assert (run_dir / f"port-{PORT}.token").read_text().strip() in tokens


def test_a_dead_servers_token_is_replaced(run_dir: Path, dir_fd: int) -> None:
    """A token whose only user died (SIGKILL: no release) is pruned and replaced."""
    child = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(child.stdout)
    (run_dir / f"port-{PORT}.token").write_text("old-token\n")
    (run_dir / f"port-{PORT}.token").chmod(0o600)
    (run_dir / f"port-{PORT}.{dead_pid}.x.ref").write_text("1")
    token = acquire(dir_fd, PORT, "new")
    assert token != "old-token"
    assert [p.name for p in run_dir.glob("*.ref")] == [f"port-{PORT}.{os.getpid()}.new.ref"]


def test_a_token_file_others_can_read_is_refused(run_dir: Path, dir_fd: int) -> None:
    """A token file with mode 0644 is refused, naming the fix."""
    token_path = run_dir / f"port-{PORT}.token"
    token_path.write_text("t\n")
    token_path.chmod(0o644)
    with pytest.raises(RuntimeDirError, match=r"token file 'port-8123.token' has mode 0644"):
        read_token(dir_fd, PORT)


def test_find_token_looks_everywhere_and_names_problems(tmp_path: Path) -> None:
    """The command finds the token in the configured directory, skips an unsafe one and
    says why."""
    unsafe = tmp_path / "unsafe"
    unsafe.mkdir(mode=0o755)
    unsafe.chmod(0o755)
    found = find_token(PORT, {"ASGI_SUPERVISOR_RUNTIME_DIR": str(unsafe)})
    assert found.token is None
    assert any("has mode 0755" in problem for problem in found.problems)
    good = tmp_path / "good"
    fd = open_private(good, create=True)
    try:
        token = acquire(fd, PORT, "a")
        found = find_token(PORT, {"ASGI_SUPERVISOR_RUNTIME_DIR": str(good)})
        assert (found.token, found.path) == (token, good / f"port-{PORT}.token")
        release(fd, PORT, "a")
    finally:
        os.close(fd)


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


async def test_local_tokens_find_a_socket_bound_after_start(run_dir: Path) -> None:
    """1. started before any socket listens (single-process uvicorn, hypercorn): no token;
    2. a socket starts listening: the schedule finds it and writes the file; 3. closed: the
    file is gone."""
    watch = ListenerWatch()
    local = LocalTokens(environ={"ASGI_SUPERVISOR_RUNTIME_DIR": str(run_dir)}, listeners=watch)
    local.start()
    watch.start()  # as the run does once the app's startup is over
    with socket.socket() as sock:
        await asyncio.sleep(0.1)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        deadline = time.monotonic() + 10
        while not local.tokens:
            assert time.monotonic() < deadline, "no token within 10 s"
            await asyncio.sleep(0.02)
        token_path = run_dir / f"port-{port}.token"
        assert token_path.read_text().strip().encode() in local.tokens
        await local.aclose()
        await watch.aclose()
    assert not token_path.exists()
    assert local.tokens == ()
    assert run_dir.is_dir()  # named by the variable: not ours to remove


async def test_local_tokens_remove_a_default_directory_they_leave_empty(tmp_path: Path) -> None:
    """The default directory ($XDG_RUNTIME_DIR/asgi-supervisor here) goes with the last
    token file, as the process group's sockets leave it."""
    default = tmp_path / "asgi-supervisor"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        local = LocalTokens(environ={"XDG_RUNTIME_DIR": str(tmp_path)}, listeners=ListenerWatch())
        await local.refresh()
        assert local.tokens
        assert list(default.glob("*.token"))
        await local.aclose()
    assert not default.exists()


async def test_local_tokens_make_the_directory_again_if_a_leaver_removed_it(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another user of the directory (a worker, a process group member) leaves it empty and
    removes it between our open and our first file: the token is written all the same."""
    removed: list[Path] = []

    def open_then_lose(path: Path, *, create: bool) -> int:
        fd = open_private(path, create=create)
        if not removed:
            removed.append(path)
            path.rmdir()  # as `remove_if_empty` does in the process leaving
        return fd

    monkeypatch.setattr("asgi_supervisor._admin.local_token.open_private", open_then_lose)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        local = LocalTokens(
            environ={"ASGI_SUPERVISOR_RUNTIME_DIR": str(run_dir)}, listeners=ListenerWatch()
        )
        await local.refresh()
        port = sock.getsockname()[1]
        assert removed == [run_dir]
        assert (run_dir / f"port-{port}.token").read_text().strip().encode() in local.tokens
        await local.aclose()


async def test_local_tokens_refresh_on_demand_and_log_an_unsafe_directory(
    run_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`refresh` finds a listening socket at once; an unsafe directory is logged once and
    leaves no token."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        local = LocalTokens(
            environ={"ASGI_SUPERVISOR_RUNTIME_DIR": str(run_dir)}, listeners=ListenerWatch()
        )
        await local.refresh()
        assert len(local.tokens) >= 1
        await local.aclose()
        os.chmod(run_dir, 0o755)
        unsafe = LocalTokens(
            environ={"ASGI_SUPERVISOR_RUNTIME_DIR": str(run_dir)}, listeners=ListenerWatch()
        )
        await unsafe.refresh()
        await unsafe.refresh()
        await unsafe.aclose()
    assert unsafe.tokens == ()
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1
    assert "has mode 0755" in errors[0]
    assert "accept only the configured admin_token" in errors[0]


@pytest.mark.parametrize("in_code", [False, True], ids=["variable", "runtime_dir in code"])
async def test_an_admin_request_writes_the_token_the_command_then_reads(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, in_code: bool
) -> None:
    """No look has run yet (the server bound late): 1. a request without a token gets 401,
    and by then the file of the listening port exists; 2. the command's retry with the
    token from that file gets 200. ``runtime_dir=`` set in code wins over the variable (here
    naming another directory): the command finds the file once given it as the variable."""
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("ASGI_SUPERVISOR_RUNTIME_DIR", str(elsewhere if in_code else run_dir))
    settings = {"runtime_dir": str(run_dir)} if in_code else {}
    app = SupervisorMiddleware(
        Starlette(), supervisor=quiet_supervisor(local_token=True, **settings)
    )
    transport = httpx.ASGITransport(app)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/tasks")).status_code == 401
            assert (run_dir / f"port-{port}.token").exists()
            found = find_token(port, {"ASGI_SUPERVISOR_RUNTIME_DIR": str(run_dir)})
            assert found.token is not None
            headers = {"Authorization": f"Bearer {found.token}"}
            assert (await client.get("/tasks", headers=headers)).status_code == 200
        await app._endpoints.local_tokens.aclose()
    assert os.listdir(run_dir) == []
    assert not elsewhere.exists()
