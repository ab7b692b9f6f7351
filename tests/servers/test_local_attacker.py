"""A second local user against a real server, as issue 20 found it: the server and the
operator's command run as one unprivileged user, the attacker as another (see
`tests.servers._two_users`), all on loopback.

The attacker can bind an address next to the server's on the same port, make the runtime
folder's usual name first, and point the variables the server reads at its own links. None
of it may get it the local token, a split drain, or a drain reported that did not happen;
and two services of one user on one port, on two addresses, stay apart.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers._process import free_port
from tests.servers._two_users import (
    Host,
    User,
    UserServer,
    owned,
    prepare_host,
    sticky,
    workspace,
)

pytestmark = [pytest.mark.server, pytest.mark.timeout(90)]

APP = "tests.servers.served:app"
APP_WITH_PID = "tests.servers.served:app_with_pid"
ADMIN_TOKEN = "s3cret-admin-token"


@pytest.fixture(scope="session")
def host() -> Iterator[Host]:
    """The two users and what they share, for the whole session (a copy of the checkout,
    if the users cannot read it, goes in a folder removed at the end)."""
    with workspace() as scratch:
        yield prepare_host(scratch)


class Space:
    """One test's folders: the server user's home, the attacker's, and a shared temporary
    folder (mode 1777, as /tmp) the server's ``TMPDIR`` names, so that nothing of ours
    lands in the real /tmp."""

    def __init__(self, host: Host, root: Path) -> None:
        self.host = host
        self.root = root
        self.server_home = owned(root / "server", host.server)
        self.other_home = owned(root / "other", host.other)
        self.tmp = sticky(root / "tmp")

    def env(self, **variables: str) -> dict[str, str]:
        """The server user's environment: its home, the shared temporary folder."""
        return {"HOME": str(self.server_home), "TMPDIR": str(self.tmp), **variables}

    def server(
        self,
        app: str = APP,
        *,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        address: str = "127.0.0.1",
        port: int | None = None,
    ) -> UserServer:
        """A uvicorn run by the server user, its files in its home."""
        return UserServer(
            app, host=self.host, user=self.host.server, tmp=self.server_home,
            env=env or self.env(), args=args, address=address, port=port,
        )  # fmt: skip

    def cli(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The operator's command, run as the server's user with its environment."""
        return self.host.cli(self.host.server, self.host.environment(env or self.env()), *args)

    def default_folders(self) -> list[Path]:
        """The server user's runtime folders in the shared temporary folder."""
        return sorted(self.tmp.glob(f"asgi-supervisor-{self.host.server.uid}*"))


@pytest.fixture
def space(host: Host) -> Iterator[Space]:
    """This test's folders, removed at the end."""
    with workspace() as root:
        yield Space(host, root)


class Attacker:
    """The second user's listener on *address*:*port* (`tests.servers.attacker`)."""

    def __init__(self, space: Space, address: str, port: int) -> None:
        self.record = space.other_home / "requests.jsonl"
        user: User = space.host.other
        self.process = subprocess.Popen(
            user.command([space.host.python, "-m", "tests.servers.attacker", address,
                          str(port), str(self.record)]),
            cwd=space.host.cwd, env=space.host.environment({"HOME": str(space.other_home)}),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], 10.0)
        line = self.process.stdout.readline() if ready else ""
        if line.strip() != "listening":
            self.stop()
            pytest.fail(f"the attacker could not listen on {address}:{port}: {line!r}")

    def requests(self) -> list[dict[str, object]]:
        """Every request it got."""
        if not self.record.exists():
            return []
        return [json.loads(line) for line in self.record.read_text().splitlines()]

    def stop(self) -> None:
        """Kill it (ours: we started it), bounded."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        if self.process.stdout is not None:
            self.process.stdout.close()


def wait_for_token(space: Space, within: float = 10.0) -> Path:
    """The server's local token file, once written (read as root: a test sees everything)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for folder in [*space.default_folders(), space.tmp]:
            found = sorted(folder.glob("listener-*/token"))
            if found:
                return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no token within {within} s in {space.default_folders()}")


def wait_for_members(folder: Path, count: int, within: float = 10.0) -> None:
    """Until *count* workers have joined the listener *folder* (one socket each): a drain
    begun while one is still joining reaches it only through its late hello, after the
    command has asked it how far it drained."""
    deadline = time.monotonic() + within
    while len(list(folder.glob("*.sock"))) < count:
        if time.monotonic() >= deadline:
            raise AssertionError(f"not {count} members of {folder} within {within} s")
        time.sleep(0.05)


def readiness(base_url: str, *, count: int = 20) -> list[tuple[int, int]]:
    """(status, pid) of readiness on *count* fresh connections (each may reach any worker)."""
    answers = []
    for _ in range(count):
        response = httpx.get(f"{base_url}/_supervisor/health/ready", timeout=5.0)
        answers.append((response.status_code, int(response.headers["x-pid"])))
    return answers


def ready_workers(base_url: str, count: int, within: float = 30.0) -> set[int]:
    """The pids of *count* workers, once each has answered readiness with 200."""
    deadline = time.monotonic() + within
    ready: set[int] = set()
    while len(ready) < count:
        assert time.monotonic() < deadline, f"only workers {ready} were ready within {within} s"
        response = httpx.get(f"{base_url}/_supervisor/health/ready", timeout=5.0)
        if response.status_code == 200:
            ready.add(int(response.headers["x-pid"]))
    return ready


# A preStop hook runs `asgi-supervisor drain http://localhost:PORT`, and this host's resolver
# gives ::1 first (many do; this machine's /etc/hosts has no ::1 line): the command as that
# host would run it, its resolver answering as such a host's does.
LOCALHOST_AS_IPV6_FIRST = """
import socket, sys
real = socket.getaddrinfo
def getaddrinfo(host, port, *args, **kwargs):
    if host == "localhost":
        return [*real("::1", port, *args, **kwargs), *real("127.0.0.1", port, *args, **kwargs)]
    return real(host, port, *args, **kwargs)
socket.getaddrinfo = getaddrinfo
from asgi_supervisor.__main__ import main
sys.argv[0] = "asgi-supervisor"
sys.exit(main())
"""


def test_a_listener_of_another_user_next_to_the_server_gets_no_token(space: Space) -> None:
    """1. the server listens on 127.0.0.1:PORT (uvicorn's default) and has written its token;
    2. another user binds [::1]:PORT and answers every request as a drain that went well;
    3. `drain http://[::1]:PORT` exits 4, naming the other user's socket, and prints no
    drain; 4. `tasks` and `drain` of http://localhost:PORT, resolving to ::1 first, go to
    127.0.0.1 alone (a warning names [::1]), and really drain the server; 5. the attacker
    got no request at all."""
    with space.server() as server:
        wait_for_token(space)
        attacker = Attacker(space, "::1", server.port)
        try:
            fake = space.cli("drain", f"http://[::1]:{server.port}")
            assert fake.returncode == 4, fake.stdout + fake.stderr
            assert "drained" not in fake.stdout
            assert f"the socket listening on [::1]:{server.port} belongs to another user" in (
                fake.stderr
            )
            assert f"uid {space.host.other.uid}" in fake.stderr
            localhost = f"http://localhost:{server.port}"
            python = [space.host.python, "-c", LOCALHOST_AS_IPV6_FIRST]
            env = space.host.environment(space.env())
            tasks = space.host.run(space.host.server, [*python, "tasks", localhost], env)
            assert tasks.returncode == 0, tasks.stderr
            assert "cooperative" in tasks.stdout
            assert f"another user listens on [::1]:{server.port}" in tasks.stderr
            drain = space.host.run(space.host.server, [*python, "drain", localhost], env)
            assert drain.returncode == 0, drain.stderr
            assert "drained=True" in drain.stdout
            server.wait_exit(timeout=20)
            assert "draining: drain endpoint" in server.output()
            assert attacker.requests() == []
        finally:
            attacker.stop()


@pytest.mark.slow
def test_a_runtime_folder_another_user_made_first_splits_no_drain(space: Space) -> None:
    """1. another user makes the server user's usual runtime folder first (mode 0700, its
    own); 2. uvicorn --workers 2 starts: its workers meet in a folder of an unguessable name
    instead, and the log says why; 3. the command finds the local token there; 4. the
    finding's `drain --token` drains both workers: every readiness probe then fails, from
    each worker; 5. the squatted folder is left as it was."""
    squatted = owned(space.tmp / f"asgi-supervisor-{space.host.server.uid}", space.host.other)
    env = space.env(ASGI_SUPERVISOR_ADMIN_TOKEN=ADMIN_TOKEN)
    with space.server(APP_WITH_PID, env=env, args=("--workers", "2")) as server:
        workers = ready_workers(server.base_url, 2)
        token = wait_for_token(space)
        assert token.parent.parent != squatted
        assert token.parent.parent.name.startswith(f"{squatted.name}.")
        wait_for_members(token.parent, 2)
        assert f"{squatted}' cannot be opened: it belongs to uid {space.host.other.uid}" in (
            server.output()
        )
        local = space.cli("tasks", server.base_url, env=space.env())
        assert local.returncode == 0, local.stderr
        drain = space.cli("drain", "--token", ADMIN_TOKEN, server.base_url, env=env)
        assert drain.returncode == 0, drain.stdout + drain.stderr
        reported = {line.split()[0] for line in drain.stdout.splitlines()[1:]}
        assert reported == {f"pid={pid}" for pid in workers}, drain.stdout
        answers = readiness(server.base_url)
        assert {status for status, _ in answers} == {503}, answers
        server.signal(signal.SIGTERM)
        server.wait_exit(timeout=20)
    assert os.listdir(squatted) == []
    assert os.stat(squatted).st_uid == space.host.other.uid


@pytest.mark.slow
def test_a_worker_outside_its_group_refuses_to_drain_alone(space: Space) -> None:
    """1. the runtime folder the server is told to use is another user's: every worker
    refuses it, with one ERROR each however many requests come; 2. `/health` says the
    process group is unavailable; 3. `drain --token` exits 1 with the worker's reason and
    drains nothing: every worker stays ready, none drains alone."""
    squatted = owned(space.tmp / "named", space.host.other)
    env = space.env(
        ASGI_SUPERVISOR_ADMIN_TOKEN=ADMIN_TOKEN, ASGI_SUPERVISOR_RUNTIME_DIR=str(squatted)
    )
    with space.server(APP_WITH_PID, env=env, args=("--workers", "2")) as server:
        ready_workers(server.base_url, 2)
        for _ in range(6):  # unauthenticated admin requests ask for the token again
            assert httpx.get(f"{server.base_url}/_supervisor/tasks", timeout=5.0).status_code == 401
        health = httpx.get(f"{server.base_url}/_supervisor/health", timeout=5.0).json()
        assert health["process_group"] == "unavailable", health
        drain = space.cli("drain", "--token", ADMIN_TOKEN, server.base_url, env=env)
        assert drain.returncode == 1, drain.stdout + drain.stderr
        assert "drain refused: this worker" in drain.stderr
        assert "is one of several of its server" in drain.stderr
        assert "nothing was drained" in drain.stderr
        answers = readiness(server.base_url)
        assert {status for status, _ in answers} == {200}, answers
        errors = [line for line in server.output().splitlines() if "cannot join" in line]
        assert len(errors) == 2, errors
        assert all(f"belongs to uid {space.host.other.uid}" in line for line in errors)
        server.signal(signal.SIGTERM)
        server.wait_exit(timeout=20)


def test_an_xdg_runtime_dir_that_is_another_users_symlink_is_refused(space: Space) -> None:
    """1. another user points a symlink of its own at a folder of the server user's, and
    the server's XDG_RUNTIME_DIR names the link; 2. the server skips it, saying why, and
    keeps its runtime folder in the temporary folder; 3. nothing lands behind the link;
    4. the command, with the same environment, finds the token."""
    target = owned(space.server_home / "run", space.host.server)
    link = space.tmp / "xdg"
    subprocess.run(
        space.host.other.command(["ln", "-s", str(target), str(link)]),
        check=True, timeout=10,
    )  # fmt: skip
    assert os.lstat(link).st_uid == space.host.other.uid
    env = space.env(XDG_RUNTIME_DIR=str(link))
    with space.server(env=env) as server:
        token = wait_for_token(space)
        assert token.parent.parent.parent == space.tmp
        assert os.listdir(target) == []
        assert f"'{link}', on the way to the runtime directory, is a symlink" in server.output()
        tasks = space.cli("tasks", server.base_url, env=env)
        assert tasks.returncode == 0, tasks.stderr


def test_a_tmpdir_without_the_sticky_bit_is_refused(space: Space) -> None:
    """1. the server's TMPDIR may be written by every user and has no sticky bit (another
    user could rename its folder away and put one of its own in place); 2. the server
    does not use it, saying why, and keeps its folder in /tmp; 3. the command finds the
    token there."""
    shared = space.root / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    env = space.env(TMPDIR=str(shared))
    with space.server(env=env) as server:
        deadline = time.monotonic() + 10
        usual = Path(f"/tmp/asgi-supervisor-{space.host.server.uid}")
        while not list(usual.glob("listener-*/token")):
            assert time.monotonic() < deadline, server.output()
            time.sleep(0.05)
        assert os.listdir(shared) == []
        assert f"'{shared}', on the way to the runtime directory, has mode 0777" in (
            server.output()
        )
        tasks = space.cli("tasks", server.base_url, env=env)
        assert tasks.returncode == 0, tasks.stderr
        server.signal(signal.SIGTERM)
        server.wait_exit(timeout=20)
    assert not usual.exists()


def test_two_services_on_one_port_and_two_addresses_stay_apart(space: Space) -> None:
    """1. two services of one user on 127.0.0.1:PORT and [::1]:PORT; 2. each has its own
    token; 3. draining the one on [::1] drains it alone: the other stays ready and never
    hears of it."""
    port = free_port()
    with space.server(address="127.0.0.1", port=port) as ipv4:
        with space.server(address="::1", port=port) as ipv6:
            deadline = time.monotonic() + 10
            while len(tokens := sorted(space.tmp.glob("asgi-supervisor-*/listener-*/token"))) < 2:
                assert time.monotonic() < deadline, tokens
                time.sleep(0.05)
            assert tokens[0].read_text() != tokens[1].read_text()
            drain = space.cli("drain", ipv6.base_url)
            assert drain.returncode == 0, drain.stdout + drain.stderr
            ipv6.wait_exit(timeout=20)
        assert (
            httpx.get(f"{ipv4.base_url}/_supervisor/health/ready", timeout=5.0).status_code == 200
        )
        assert "draining" not in ipv4.output()
