"""The listener folder and this process's presence in it: one folder per listener, one
liveness check (the socket accepts a connect), one lock, and nothing left behind."""

from __future__ import annotations

import asyncio
import errno
import json
import os
import socket
import threading
from pathlib import Path

import pytest

from asgi_supervisor._host import listener_folder as _listener_folder
from asgi_supervisor._host import listeners as _listeners
from asgi_supervisor._host import presence as _presence
from asgi_supervisor._host.channel import MAX_MESSAGE, Channel, MessageTooLargeError, encode
from asgi_supervisor._host.listener_folder import folder_name, is_alive, locked
from asgi_supervisor._host.proc import network_namespace
from asgi_supervisor._host.runtime_dir import open_private
from asgi_supervisor._host.tcp_table import Listener
from tests._siblings import Member, folder_of, joined, listener, listening, runtime, until

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux /proc")
__all__ = ["listener", "runtime"]  # fixtures


def dead_socket(path: Path) -> None:
    """Leave a socket file nobody is bound to, as a SIGKILLed member does."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.close()


def test_the_folder_is_keyed_by_address_port_and_network_namespace() -> None:
    """One function names a listener's folder: by its address and port (IPv6 in brackets,
    as in a URL) and this network namespace."""
    net = network_namespace()
    assert folder_name(("127.0.0.1", 8000)) == f"listener-127.0.0.1:8000-net{net}"
    assert folder_name(("::1", 8000)) == f"listener-[::1]:8000-net{net}"


def test_alive_means_the_socket_accepts_a_connect(tmp_path: Path) -> None:
    """A bound socket is alive; once its process is gone (closed, the file left) it is not,
    even under the pid of a process that runs (ours): no pid is looked up."""
    fd = open_private(tmp_path / "f", create=True)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as live:
            live.bind(str(tmp_path / "f" / "1.sock"))
            assert is_alive(fd, 1)
        dead_socket(tmp_path / "f" / f"{os.getpid()}.sock")
        assert not is_alive(fd, os.getpid())
        assert not is_alive(fd, 2)  # no such file
    finally:
        os.close(fd)


async def test_a_joiner_that_finds_nobody_alive_clears_what_the_dead_left(
    listener: socket.socket, runtime: Path
) -> None:
    """1. a killed server left its socket and token in the folder; 2. a newcomer finds no
    live member there and clears it before moving in; 3. once it leaves, the folder and the
    default runtime folder are gone."""
    folder = folder_of(runtime, listener)
    folder.mkdir(parents=True, mode=0o700)
    runtime.chmod(0o700)
    dead_socket(folder / "503.sock")
    (folder / "token").write_text("old\n")
    member = Member(runtime, 504)
    await joined(member)
    assert os.listdir(folder) == ["504.sock"]
    await member.close()
    assert not runtime.exists()


async def test_the_last_member_out_removes_the_folder(
    listener: socket.socket, runtime: Path
) -> None:
    """1. two members; a third was killed and left its socket; 2. the first leaves: the
    folder stays for the second; 3. the second, now the last live one, removes it all."""
    a, b = Member(runtime, 501), Member(runtime, 502)
    await joined(a, b)
    folder = folder_of(runtime, listener)
    dead_socket(folder / "503.sock")
    await a.close()
    assert sorted(os.listdir(folder)) == ["502.sock", "503.sock"]
    await b.close()
    assert not runtime.exists()


async def test_joining_sweeps_the_folders_of_dead_listeners_only(
    listener: socket.socket, runtime: Path
) -> None:
    """A server on another port was killed and left its folder: the next member to join
    anywhere in the runtime folder removes it, and leaves live folders and folders that are
    not listener folders alone."""
    a = Member(runtime, 1001)
    await joined(a)
    old = runtime / folder_name(("127.0.0.1", 1))
    old.mkdir(mode=0o700)
    dead_socket(old / "1002.sock")
    other = runtime / "not-a-listener"
    other.mkdir(mode=0o700)
    dead_socket(other / "1004.sock")
    with socket.create_server(("127.0.0.1", 0)) as second:
        b = Member(runtime, 1003, find=lambda: listening(second))
        await joined(b)
        assert not old.exists()
        assert sorted(p.name for p in runtime.rglob("*.sock")) == [
            "1001.sock",
            "1003.sock",
            "1004.sock",
        ]
        for member in (a, b):
            await member.close()
    assert os.listdir(runtime) == ["not-a-listener"]


@pytest.mark.parametrize("bits", [0o777, 0o755])
async def test_an_unsafe_runtime_folder_is_refused_once(
    listener: socket.socket, runtime: Path, caplog: pytest.LogCaptureFixture, bits: int
) -> None:
    """A runtime folder others can write to, or only read, is not used: the member stays
    alone, the log says why and what follows, and it does not try again."""
    runtime.mkdir(mode=0o700)
    runtime.chmod(bits)
    member = Member(runtime, 601)
    member.start()
    await asyncio.wait_for(until(lambda: "cannot join" in caplog.text), 2.0)
    await asyncio.shield(member.presence.refresh())  # an endpoint asks again: no new attempt
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1
    assert f"has mode {bits:04o}, so other users may read or change it" in errors[0]
    assert "drains alone" in errors[0]
    assert "accept only the configured admin_token" in errors[0]
    assert not member.presence.joined
    assert list(runtime.iterdir()) == []
    await member.close()


async def test_a_symlinked_listener_folder_is_refused(
    listener: socket.socket, runtime: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A listener folder that is a symlink (even to a private folder) is refused."""
    runtime.mkdir(mode=0o700)
    elsewhere = runtime.parent / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    folder_of(runtime, listener).symlink_to(elsewhere)
    member = Member(runtime, 602)
    member.start()
    await asyncio.wait_for(until(lambda: "cannot join" in caplog.text), 2.0)
    assert "must be a real directory, not a symlink" in caplog.text
    assert os.listdir(elsewhere) == []
    await member.close()


async def test_joining_makes_the_runtime_folder_again_if_a_leaver_removed_it(
    listener: socket.socket, runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The last member of another listener removes the default runtime folder, empty, just
    as a newcomer has opened it: the newcomer makes it again and joins."""
    removed: list[Path] = []

    def open_then_lose(path: Path, *, create: bool) -> int:
        fd = open_private(path, create=create)
        if not removed:
            removed.append(path)
            path.rmdir()  # as `remove_if_empty` does in the process leaving
        return fd

    monkeypatch.setattr(_presence, "open_private", open_then_lose)
    member = Member(runtime, 1201)
    await joined(member)
    assert removed == [runtime]
    assert os.listdir(folder_of(runtime, listener)) == ["1201.sock"]
    await member.close()
    assert not runtime.exists()


def test_the_lock_bounds_its_wait_and_follows_a_folder_made_anew(tmp_path: Path) -> None:
    """1. while one holder keeps the folder's lock, another gives up after its timeout,
    naming the folder; 2. a holder that removes the folder as it leaves sends a waiter to
    make it anew: the waiter locks the new folder, not the removed one."""
    base = open_private(tmp_path / "rt", create=True)
    holding, release = threading.Event(), threading.Event()

    def hold(remove: bool) -> None:
        with locked(base, "f", create=True):
            holding.set()
            release.wait(5.0)
            if remove:
                os.rmdir("f", dir_fd=base)

    try:
        holder = threading.Thread(target=hold, args=(False,))
        holder.start()
        holding.wait(5.0)
        with (
            pytest.raises(TimeoutError, match="listener folder 'f' was held for too long"),
            locked(base, "f", create=False, timeout=0.05),
        ):
            pass
        release.set()
        holder.join(5.0)
        holding.clear()
        release.clear()
        remover = threading.Thread(target=hold, args=(True,))
        remover.start()
        holding.wait(5.0)
        threading.Timer(0.05, release.set).start()
        with locked(base, "f", create=True) as fd:
            # The folder locked is the one the path names now (a new one may even reuse
            # the removed one's inode number).
            os.close(os.open("probe", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd))
            assert (tmp_path / "rt" / "f" / "probe").exists()
        remover.join(5.0)
    finally:
        release.set()
        os.close(base)


async def test_an_endpoints_look_joins_the_look_under_way(
    listener: socket.socket, runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A look at the listening ports is slow on a busy host: a refresh asked while the
    schedule's look is under way joins it rather than starting another."""
    monkeypatch.setattr(_listeners, "_DELAYS", (0.0,))  # the schedule looks once
    calls: list[int] = []
    looking, go_on = threading.Event(), threading.Event()
    found = listening(listener)

    def slow_find() -> set[Listener]:
        calls.append(1)
        looking.set()
        go_on.wait(5.0)
        return found

    member = Member(runtime, 1301, find=slow_find)
    member.start()
    try:
        await asyncio.wait_for(until(looking.is_set), 2.0)
        asked = member.presence.refresh()
    finally:
        go_on.set()
    await asyncio.wait_for(asyncio.shield(asked), 2.0)
    await asyncio.wait_for(until(lambda: "idle" in repr(member.presence.watch)), 2.0)
    assert member.presence.joined
    assert calls == [1]
    await member.close()


async def test_a_message_fits_the_channel_or_is_refused_loudly(tmp_path: Path) -> None:
    """A message up to `MAX_MESSAGE` bytes goes through a datagram socket of this host in
    one piece (its send buffer allows it); a longer one is refused before sending."""
    channel = Channel(asyncio.get_running_loop(), 1)
    with channel.socket() as sender, socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
        receiver.bind(str(tmp_path / "2.sock"))
        filler = "x" * (MAX_MESSAGE - len(encode({"type": "t", "data": ""})))
        data = encode({"type": "t", "data": filler})
        assert len(data) == MAX_MESSAGE
        sender.sendto(data, str(tmp_path / "2.sock"))
        assert json.loads(receiver.recv(MAX_MESSAGE + 1))["data"] == filler
    with pytest.raises(
        MessageTooLargeError, match=rf"exceeds the channel's limit of {MAX_MESSAGE}"
    ):
        encode({"type": "t", "data": filler + "x"})


async def test_a_malformed_or_oversized_datagram_is_dropped_and_logged(
    listener: socket.socket, runtime: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Datagrams that are not messages (not JSON, no sender, too long) are logged and
    dropped; the member goes on hearing well-formed ones."""
    member = Member(runtime, 1401)
    await joined(member)
    path = str(folder_of(runtime, listener) / "1401.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as stranger:
        stranger.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 * MAX_MESSAGE)
        for data in (b"{not json", b'{"type": "drain"}', b"[" * (MAX_MESSAGE + 1)):
            stranger.sendto(data, path)
        drain = {"type": "drain", "trigger": "api", "deadline": 1e9, "origin": 7, "pid": 7}
        stranger.sendto(json.dumps(drain).encode(), path)
    assert await member.wait_heard() == ("api (from pid 7)", 1e9)
    malformed = [r for r in caplog.records if "malformed message" in r.getMessage()]
    assert len(malformed) == 3
    await member.close()


async def test_a_failure_that_may_pass_is_an_error_once_then_debug(
    listener: socket.socket,
    runtime: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A runtime folder that cannot be written (a read-only file system) may be fixed, so
    every endpoint call tries again, at most once a second: the first failure is an ERROR,
    the next ones DEBUG lines, whatever the number of requests."""
    caplog.set_level("DEBUG", logger="asgi_supervisor")

    def read_only(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(_listener_folder, "locked", read_only)
    member = Member(runtime, 1701)
    member.start()
    await asyncio.wait_for(until(lambda: member.presence.problem is not None), 2.0)
    for _ in range(3):
        await asyncio.shield(member.presence.refresh())
    failures = [r for r in caplog.records if "join the listener folder" in r.getMessage()]
    # A refresh may join the schedule's own attempt: three or four attempts in all.
    levels = [r.levelname for r in failures]
    assert levels[0] == "ERROR"
    assert set(levels[1:]) == {"DEBUG"}
    assert len(levels) >= 3
    assert "Read-only file system" in failures[0].getMessage()
    assert "this process drains alone" in failures[0].getMessage()
    await member.close()
