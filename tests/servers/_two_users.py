"""Two unprivileged users on this host: the server runs as one, a second local user attacks.

The attacks of a second local user (issue 20) are run as they were found: the server and
the operator's command as ``asgi-test-server``, the attacker as ``asgi-test-other``, both
system users made here if missing (``useradd``, idempotent, no home), on loopback. The
tests run as root, as ``make test`` does in CI, and drop to each user with ``setpriv``;
without root they skip.

What the unprivileged processes need must be readable by them. They run a Python of this
one's version that they can execute (this venv's, or the system's ``python3.X`` when the
venv's lives under an unreadable home such as ``/root/.pyenv``), with ``PYTHONPATH`` naming
the checkout's ``src`` and the checkout itself (for ``tests.servers.served``) and this
venv's site-packages: the extension modules there are built for this Python version, so
any interpreter of it loads them. If the checkout is not readable by the users, its
``src`` and ``tests`` are copied to a temporary folder they can read; if the site-packages
are not, the tests skip and say which path to open up. Everything the users write goes in
one temporary folder per test, removed at the end.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers._process import REPO, ServerProcess

SERVER_USER = "asgi-test-server"
OTHER_USER = "asgi-test-other"
_RUN_TIMEOUT = 30


@dataclass(frozen=True, slots=True)
class User:
    """A user of this host, and how to run a command as it."""

    name: str
    uid: int
    gid: int

    def command(self, argv: list[str]) -> list[str]:
        """*argv* run as this user alone: its uid and gid, no supplementary group, no
        capability (setpriv drops them with uid 0)."""
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", *argv]


@dataclass(frozen=True, slots=True)
class Host:
    """What the two users share: a Python they can run, the code they can read, and where
    each may write."""

    python: str
    pythonpath: str
    cwd: Path
    server: User
    other: User

    def environment(self, variables: dict[str, str]) -> dict[str, str]:
        """A clean environment with *variables* (``HOME`` among them): none of root's."""
        return {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "PYTHONPATH": self.pythonpath,
            "PYTHONDONTWRITEBYTECODE": "1",  # the checkout is not theirs to write
            "PYTHONUNBUFFERED": "1",
            **variables,
        }

    def run(
        self, user: User, argv: list[str], env: dict[str, str]
    ) -> subprocess.CompletedProcess[str]:
        """Run *argv* as *user* to its end, bounded."""
        return subprocess.run(
            user.command(argv), cwd=self.cwd, env=env, capture_output=True, text=True,
            timeout=_RUN_TIMEOUT, check=False,
        )  # fmt: skip

    def cli(self, user: User, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        """``python -m asgi_supervisor *args`` as *user*."""
        return self.run(user, [self.python, "-m", "asgi_supervisor", *args], env)


class UserServer(ServerProcess):
    """A `ServerProcess` run as *user* with a clean environment, bound to *address*.

    *tmp* is where it writes its events and what *env* names; its log is written by us.
    """

    def __init__(
        self,
        app: str,
        *,
        host: Host,
        user: User,
        tmp: Path,
        env: dict[str, str],
        args: tuple[str, ...] = (),
        address: str = "127.0.0.1",
        port: int | None = None,
    ) -> None:
        super().__init__(app, tmp_path=tmp, args=args, name=f"{user.name}@{address}")
        self.port = self.port if port is None else port
        self.host = address
        shown = f"[{address}]" if ":" in address else address
        self.base_url = f"http://{shown}:{self.port}"
        self.events_path = tmp / f"events-{address}-{self.port}.log"
        self.log_path = tmp / f"server-{address}-{self.port}.log"
        uvicorn = [host.python, "-m", "uvicorn", app, "--host", address]
        self.command = user.command([*uvicorn, "--port", str(self.port), *args])
        settings = {k: v for k, v in self.env.items() if k.startswith("ASGI_SUPERVISOR_")}
        settings.pop("ASGI_SUPERVISOR_RUNTIME_DIR")  # the default place, unless *env* names one
        events = {"TEST_EVENTS": str(self.events_path), "HOME": str(tmp)}
        self.env = host.environment({**events, **settings, **env})
        self.cwd = host.cwd


def ensure_user(name: str) -> User:
    """The system user *name*, made if missing (no home, no login shell)."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        # Another test session may make it at the same moment: then it exists, which is
        # all we want, whatever useradd said.
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir",
             "/nonexistent", "--shell", "/usr/sbin/nologin", name],
            capture_output=True, timeout=_RUN_TIMEOUT, check=False,
        )  # fmt: skip
        entry = pwd.getpwnam(name)
    return User(name, entry.pw_uid, entry.pw_gid)


def prepare_host(scratch: Path) -> Host:
    """The `Host` for this session (see the module); skips without root or a usable Python."""
    if os.geteuid() != 0:
        pytest.skip("the two-user tests make two users and run as each: they need root")
    if shutil.which("setpriv") is None or shutil.which("useradd") is None:
        pytest.skip("the two-user tests need setpriv and useradd (util-linux, passwd)")
    server, other = ensure_user(SERVER_USER), ensure_user(OTHER_USER)
    site = sysconfig.get_paths()["purelib"]
    python = _readable_python(server, site)
    cwd = REPO
    probe = [python, "-c", "import asgi_supervisor, tests.servers.served, uvicorn"]
    pythonpath = f"{REPO / 'src'}:{REPO}:{site}"
    environment = {"PATH": "/usr/bin:/bin", "HOME": "/", "PYTHONPATH": pythonpath}
    if _run_as(server, probe, environment, cwd="/").returncode != 0:
        # The checkout is not readable by other users (under /root, say): copy the code.
        cwd = scratch / "checkout"
        for part in ("src", "tests", "app"):
            shutil.copytree(REPO / part, cwd / part, ignore=shutil.ignore_patterns("__pycache__"))
        _open_up(scratch)
        pythonpath = f"{cwd / 'src'}:{cwd}:{site}"
        environment["PYTHONPATH"] = pythonpath
        failed = _run_as(server, probe, environment, cwd="/")
        if failed.returncode != 0:
            pytest.skip(f"{SERVER_USER} cannot load the test app: {failed.stderr[-500:]}")
    return Host(python, pythonpath, cwd, server, other)


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    """A folder both users can enter (mode 0755, ours), removed at the end."""
    path = Path(tempfile.mkdtemp(prefix="asgi-2u-", dir="/tmp"))
    try:
        path.chmod(0o755)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def owned(path: Path, user: User, mode: int = 0o700) -> Path:
    """Make the folder *path*, *user*'s with *mode*."""
    path.mkdir(mode=mode)
    path.chmod(mode)
    os.chown(path, user.uid, user.gid)
    return path


def sticky(path: Path) -> Path:
    """Make the folder *path* as /tmp is: root's, writable by all, sticky (mode 1777)."""
    path.mkdir()
    path.chmod(0o1777)
    return path


def _readable_python(user: User, site: str) -> str:
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    base = getattr(sys, "_base_executable", sys.executable)
    candidates = [
        sys.executable,
        base,
        f"/usr/bin/python{version}",
        f"/usr/local/bin/python{version}",
    ]
    check = ["-c", f"import sys, ssl, multiprocessing; assert sys.version.startswith('{version}.')"]
    for python in dict.fromkeys(candidates):
        if not os.path.exists(python):
            continue
        # The file itself, not only the link to it: a server's workers are started by path
        # (multiprocessing), and a venv's link may lead under an unreadable home.
        real = os.path.realpath(python)
        readable = ["test", "-r", real, "-a", "-x", real]
        if _run_as(user, readable, {}, cwd="/").returncode:
            continue
        if _run_as(user, ["env", "-i", python, *check], {}, cwd="/").returncode == 0:
            if not _run_as(user, ["test", "-r", site, "-a", "-x", site], {}, cwd="/").returncode:
                return python
            pytest.skip(f"{site} is not readable by other users: run `chmod -R o+rX` on it")
    pytest.skip(f"no Python {version} that {user.name} can run (tried {', '.join(candidates)})")


def _run_as(
    user: User, argv: list[str], env: dict[str, str], *, cwd: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        user.command(argv), cwd=cwd, env=env, capture_output=True, text=True,
        timeout=_RUN_TIMEOUT, check=False,
    )  # fmt: skip


def _open_up(path: Path) -> None:
    for folder, _, files in os.walk(path):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
