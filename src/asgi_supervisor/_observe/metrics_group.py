"""Metrics of a process group: each worker publishes its snapshot to a file; a scrape merges.

``uvicorn --workers N`` (gunicorn ``-w N``, granian ``--workers N``) runs one supervisor per
process, and a scrape reaches whichever process accepted it. When
``PROMETHEUS_MULTIPROC_DIR`` names a directory (prometheus_client's own multiprocess switch),
every process writes its snapshot there as ``asgi_supervisor_<pid>.json`` and a scrape of any
of them answers for all, each sample labelled with its ``pid``.

prometheus_client's own multiprocess files (``*.db``) hold values that code increments; ours
are computed from the supervisor's state, so each process publishes a whole snapshot instead:
when it starts, within a fraction of a second of each change of state or shutdown report,
every `PUBLISH_PERIOD` seconds, and whenever it is scraped itself. A process removes its file
when its lifespan ends; a reader removes the file of a process that died without doing so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from .metrics import Snapshot, take_snapshot

if TYPE_CHECKING:
    from asgi_supervisor._supervisor.supervisor import Supervisor

__all__ = ["SnapshotPublisher", "group_directory", "read_snapshots", "write_snapshot"]

logger = logging.getLogger("asgi_supervisor")

ENV = "PROMETHEUS_MULTIPROC_DIR"
PUBLISH_PERIOD = 5.0
# How often the publisher looks for a change of state: two attribute reads each time.
WATCH_PERIOD = 0.25
# A snapshot this old belongs to a process that stopped publishing (its loop is blocked, or
# its pid was reused by another program): it is left out rather than shown as current.
STALE_AFTER = 60.0
_PATTERN = "asgi_supervisor_*.json"


def group_directory(environ: Mapping[str, str] | None = None) -> Path | None:
    """The directory named by ``PROMETHEUS_MULTIPROC_DIR``, or None outside a process group.

    The one place that reads the variable; the endpoint and the publisher each ask once, when
    they are created.
    """
    value = (os.environ if environ is None else environ).get(ENV, "")
    return Path(value) if value else None


def write_snapshot(directory: Path, snapshot: Snapshot) -> None:
    """Replace this process's file in *directory* with *snapshot*, atomically.

    Raises:
        OSError: the directory cannot be created or written.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Written aside, then renamed: a reader sees the old snapshot or the new one, never half.
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=".asgi_supervisor_", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as file:
            file.write(snapshot.to_json())
        os.replace(temporary, directory / f"asgi_supervisor_{snapshot.pid}.json")
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def read_snapshots(directory: Path, *, skip_pid: int, now: float) -> list[Snapshot]:
    """The snapshots of the other live processes in *directory*, by pid.

    Removes the files of processes that have exited; skips stale and unreadable ones.
    """
    snapshots = []
    for path in sorted(directory.glob(_PATTERN)):
        try:
            snapshot = Snapshot.from_json(path.read_text())
        except (OSError, ValueError):
            continue  # removed meanwhile by a process whose lifespan ended, or not ours
        if snapshot.pid == skip_pid:
            continue
        if not _is_alive(snapshot.pid):
            with contextlib.suppress(OSError):
                path.unlink()
            continue
        if now - snapshot.taken_at <= STALE_AFTER:
            snapshots.append(snapshot)
    return sorted(snapshots, key=lambda snapshot: snapshot.pid)


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


class SnapshotPublisher:
    """Keeps this process's snapshot in the group directory fresh while its lifespan runs.

    Example::

        publisher = SnapshotPublisher.start(supervisor)   # does nothing outside a group
        try:
            ...                                           # the lifespan
        finally:
            await publisher.aclose()

    Args:
        supervisor: the supervisor to publish.
        directory: the group directory, or None to publish nothing.
    """

    def __init__(self, supervisor: Supervisor, directory: Path | None) -> None:
        self._sup = supervisor
        self.directory = directory
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def start(cls, supervisor: Supervisor) -> SnapshotPublisher:
        """A publisher for *supervisor*, publishing in the running loop if in a group."""
        publisher = cls(supervisor, group_directory())
        if publisher.directory is not None:
            publisher._task = asyncio.get_running_loop().create_task(
                publisher._run(), name="asgi-supervisor metrics publisher"
            )
        return publisher

    async def _run(self) -> None:
        sup = self._sup
        while True:
            try:
                await self.publish()
            except Exception:
                logger.exception("could not publish the metrics snapshot to %s", self.directory)
            state, report = sup.state, sup.last_report
            # The core has no event for a change of state to wait on: it is looked for.
            for _ in range(round(PUBLISH_PERIOD / WATCH_PERIOD)):
                await asyncio.sleep(WATCH_PERIOD)
                if sup.state is not state or sup.last_report is not report:
                    break

    async def publish(self) -> Snapshot:
        """Take a snapshot now and write it to the group directory; return it.

        Raises:
            OSError: the directory cannot be written.
        """
        snapshot = await take_snapshot(self._sup)
        if self.directory is not None:
            write_snapshot(self.directory, snapshot)
        return snapshot

    async def aclose(self) -> None:
        """Stop publishing and remove this process's file (the process is leaving the group).

        Waits at most a second for the publishing task to end.
        """
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=1.0)
            self._task = None
        if self.directory is not None:
            with contextlib.suppress(OSError):
                (self.directory / f"asgi_supervisor_{os.getpid()}.json").unlink()
