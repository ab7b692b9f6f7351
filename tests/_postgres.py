"""A throwaway PostgreSQL cluster for the tests: Debian's binaries, a temporary data folder.

`PostgresServer` runs ``initdb`` and ``pg_ctl`` as an unprivileged user (PostgreSQL refuses
to run as root: when the tests run as root, as in CI, it uses the ``postgres`` system user
that Debian's package creates), listens on 127.0.0.1 on a free port and on a unix socket in
its folder, and trusts local connections (loopback only, test data only). Every wait is
bounded. ``stop()`` ends only the server it started, by its pid.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from tests.servers._process import free_port

__all__ = ["PostgresNotInstalled", "PostgresServer", "find_bindir"]

# Durability off: a test cluster is thrown away, and fsyncs would only slow the tests.
_SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


class PostgresNotInstalled(RuntimeError):
    """No ``initdb`` was found; ``make test`` installs Debian's ``postgresql`` package."""


def find_bindir() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``: Debian's newest, else the PATH's.

    Raises:
        PostgresNotInstalled: neither has them.
    """
    debian = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda path: int(Path(path).parts[-3]),
    )
    if debian:
        return Path(debian[-1]).parent
    found = shutil.which("initdb")
    if found is None:
        raise PostgresNotInstalled(
            "PostgreSQL's initdb was found neither in /usr/lib/postgresql/*/bin nor on PATH; "
            "install Debian's postgresql package (make system-deps does)."
        )
    return Path(found).resolve().parent


class PostgresServer:
    """One PostgreSQL cluster in a temporary folder; `create_database` gives each test its own.

    Example::

        with PostgresServer() as server:
            url = server.create_database()   # postgresql://postgres@127.0.0.1:PORT/test_...
    """

    def __init__(self, *, start_timeout: float = 60.0) -> None:
        self.bindir = find_bindir()
        self.start_timeout = start_timeout
        self.port = free_port()
        self._tmp = tempfile.TemporaryDirectory(prefix="pg-")
        self.root = Path(self._tmp.name)
        self.datadir = self.root / "data"
        self.log = self.root / "server.log"
        self.user = "postgres"
        self._started = False

    def __enter__(self) -> PostgresServer:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def admin_url(self) -> str:
        """The URL of the cluster's default database, as its superuser."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        """The URL of *database* on this cluster."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """initdb, then start and wait until the server accepts connections."""
        owner = self._owner()
        if owner is not None:
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self._run(
            "initdb", "-D", str(self.datadir), "-U", self.user, "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        options = " ".join(f"-c {name}={value}" for name, value in _SETTINGS.items())
        options += f" -p {self.port} -k {self.root}"
        self._run(
            "pg_ctl", "start", "-D", str(self.datadir), "-l", str(self.log), "-o", options,
            "-w", "-t", str(int(self.start_timeout)),
        )  # fmt: skip
        self._started = True
        self._wait_accepting()

    def create_database(self) -> str:
        """A new empty database; return its URL."""
        name = f"test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=10) as db:
            db.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """pg_ctl stop -m fast; SIGKILL the postmaster (ours, by its pid) if that fails."""
        try:
            if self._started:
                self._started = False
                try:
                    self._run("pg_ctl", "stop", "-D", str(self.datadir), "-m", "fast", "-w",
                              "-t", "30")  # fmt: skip
                except (subprocess.SubprocessError, OSError):
                    self._kill_postmaster()
        finally:
            self._tmp.cleanup()

    def _kill_postmaster(self) -> None:
        pidfile = self.datadir / "postmaster.pid"
        if pidfile.exists():
            pid = int(pidfile.read_text().splitlines()[0])
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _wait_accepting(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                with psycopg.connect(self.admin_url, connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"PostgreSQL on port {self.port} refused connections for "
                        f"{self.start_timeout} s:\n{self._log_tail()}"
                    ) from None
                time.sleep(0.1)

    def _owner(self) -> pwd.struct_passwd | None:
        """The user to run the server as: the postgres system user when we are root."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam("postgres")
        except KeyError:
            raise PostgresNotInstalled(
                "Running as root, PostgreSQL needs an unprivileged user; the 'postgres' "
                "user is missing (Debian's postgresql package creates it)."
            ) from None

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self._owner() is not None:
            # runuser drops root for this one command; PostgreSQL refuses to run as root.
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=self.start_timeout, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"{tool} failed with status {result.returncode}:\n{result.stdout}"
                f"{result.stderr}\n{self._log_tail()}"
            )

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
