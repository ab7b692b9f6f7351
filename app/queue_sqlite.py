"""The job queue in one SQLite file: embedded, no server, for replicas on one host.

Each call opens its own connection in a worker thread (`asyncio.to_thread`): SQLite
connections are cheap, and no connection is ever shared between threads. A call whose awaiting
task is cancelled still runs to the end in its thread. Leases use wall-clock time because
several processes share them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

from .jobs import Job, encode_payload

__all__ = ["SqliteQueue"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    seconds REAL NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued',
    claimed_by TEXT,
    lease_expires_at REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    done_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, lease_expires_at);
CREATE TABLE IF NOT EXISTS completions (
    job_id INTEGER NOT NULL,
    worker_id TEXT NOT NULL,
    at REAL NOT NULL
);
"""


class SqliteQueue:
    """The `app.jobs.JobQueue` stored in the SQLite file at *path* (its methods are
    documented there).

    Example::

        queue = await SqliteQueue.open("demo-queue.sqlite3")
        job_id = await queue.enqueue(1.5, {"to": "a@example.com"})
    """

    def __init__(self, path: str) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"<SqliteQueue {self.path!r}>"

    @classmethod
    async def open(cls, path: str) -> SqliteQueue:
        """The queue in *path*, its file and tables created if missing."""
        queue = cls(path)
        await asyncio.to_thread(queue._create)
        return queue

    def _create(self) -> None:
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # Autocommit mode; writes take the lock up front with BEGIN IMMEDIATE, so two
        # processes claiming at once serialise instead of failing on lock upgrade.
        db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()

    async def enqueue(self, seconds: float, payload: Any = None) -> int:
        return await asyncio.to_thread(self._enqueue, seconds, encode_payload(payload))

    def _enqueue(self, seconds: float, payload: str) -> int:
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO jobs (seconds, payload, created_at) VALUES (?, ?, ?)",
                (seconds, payload, time.time()),
            )
            job_id = cursor.lastrowid
        assert job_id is not None
        return job_id

    async def claim(self, worker_id: str, lease_period: float) -> Job | None:
        return await asyncio.to_thread(self._claim, worker_id, lease_period)

    def _claim(self, worker_id: str, lease_period: float) -> Job | None:
        now = time.time()
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    "SELECT id FROM jobs WHERE status = 'queued' "
                    "OR (status = 'claimed' AND lease_expires_at < ?) ORDER BY id LIMIT 1",
                    (now,),
                ).fetchone()
                if row is None:
                    db.execute("COMMIT")
                    return None
                db.execute(
                    "UPDATE jobs SET status = 'claimed', claimed_by = ?, lease_expires_at = ?, "
                    "attempts = attempts + 1 WHERE id = ?",
                    (worker_id, now + lease_period, row["id"]),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return self._get_in(db, row["id"])

    async def renew(self, job_id: int, worker_id: str, lease_period: float) -> bool:
        return await asyncio.to_thread(self._renew, job_id, worker_id, lease_period)

    def _renew(self, job_id: int, worker_id: str, lease_period: float) -> bool:
        with self._connect() as db:
            cursor = db.execute(
                "UPDATE jobs SET lease_expires_at = ? "
                "WHERE id = ? AND claimed_by = ? AND status = 'claimed'",
                (time.time() + lease_period, job_id, worker_id),
            )
            return cursor.rowcount == 1

    async def complete(self, job_id: int, worker_id: str) -> None:
        await asyncio.to_thread(self._complete, job_id, worker_id)

    def _complete(self, job_id: int, worker_id: str) -> None:
        now = time.time()
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "UPDATE jobs SET status = 'done', claimed_by = NULL, lease_expires_at = NULL, "
                "done_at = ? WHERE id = ?",
                (now, job_id),
            )
            db.execute(
                "INSERT INTO completions (job_id, worker_id, at) VALUES (?, ?, ?)",
                (job_id, worker_id, now),
            )
            db.execute("COMMIT")

    async def release(self, job_id: int, worker_id: str) -> bool:
        return await asyncio.to_thread(self._release, job_id, worker_id)

    def _release(self, job_id: int, worker_id: str) -> bool:
        with self._connect() as db:
            cursor = db.execute(
                "UPDATE jobs SET status = 'queued', claimed_by = NULL, lease_expires_at = NULL "
                "WHERE id = ? AND claimed_by = ? AND status = 'claimed'",
                (job_id, worker_id),
            )
            return cursor.rowcount == 1

    async def get(self, job_id: int) -> Job | None:
        return await asyncio.to_thread(self._get, job_id)

    def _get(self, job_id: int) -> Job | None:
        with self._connect() as db:
            return self._get_in(db, job_id)

    async def counts(self) -> dict[str, int]:
        return await asyncio.to_thread(self._counts)

    def _counts(self) -> dict[str, int]:
        with self._connect() as db:
            rows = db.execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")
            counts = {"queued": 0, "claimed": 0, "done": 0}
            counts.update({row["status"]: row["n"] for row in rows})
            return counts

    async def completions(self) -> dict[int, int]:
        return await asyncio.to_thread(self._completions)

    def _completions(self) -> dict[int, int]:
        with self._connect() as db:
            rows = db.execute("SELECT job_id, COUNT(*) AS n FROM completions GROUP BY job_id")
            return {row["job_id"]: row["n"] for row in rows}

    async def close(self) -> None:
        """Nothing to release: every call closes its own connection."""

    @staticmethod
    def _get_in(db: sqlite3.Connection, job_id: int) -> Job | None:
        row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            return None
        return Job(
            id=row["id"],
            seconds=row["seconds"],
            payload=json.loads(row["payload"]),
            status=row["status"],
            claimed_by=row["claimed_by"],
            lease_expires_at=row["lease_expires_at"],
            attempts=row["attempts"],
        )
