"""A durable job queue in SQLite with at-least-once delivery.

A job is *claimed* with a lease (who holds it, until when), marked *done* only when its work
finished, and *released* when its worker is cancelled. A worker that dies without releasing
(SIGKILL, a crash of the host) leaves a lease that expires; the job is then claimable again.
So no job is ever lost, and a job may run twice: every completion is recorded, so duplicates
can be counted.

Each call opens its own connection: SQLite connections are cheap, and this lets the async
side run every call in a worker thread (`asyncio.to_thread`) without sharing connections
between threads. Wall-clock time is used for leases because several processes share them.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Job", "JobQueue"]

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


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """One job as stored."""

    id: int
    seconds: float
    payload: Any
    status: str
    claimed_by: str | None
    lease_expires_at: float | None
    attempts: int

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "id": self.id,
            "seconds": self.seconds,
            "payload": self.payload,
            "status": self.status,
            "claimed_by": self.claimed_by,
            "lease_expires_at": self.lease_expires_at,
            "attempts": self.attempts,
        }


class JobQueue:
    """The queue stored in the SQLite file at *path* (created if missing)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
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

    def enqueue(self, seconds: float, payload: Any = None) -> int:
        """Add a job; return its id."""
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO jobs (seconds, payload, created_at) VALUES (?, ?, ?)",
                (seconds, json.dumps(payload), time.time()),
            )
            job_id = cursor.lastrowid
        assert job_id is not None
        return job_id

    def claim(self, worker_id: str, lease_period: float) -> Job | None:
        """Claim the oldest claimable job for *worker_id*: queued, or claimed with a lease
        that has expired. Returns None when there is none."""
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
            return self._get(db, row["id"])

    def renew(self, job_id: int, worker_id: str, lease_period: float) -> bool:
        """Extend the lease; False if *worker_id* no longer holds the job."""
        with self._connect() as db:
            cursor = db.execute(
                "UPDATE jobs SET lease_expires_at = ? "
                "WHERE id = ? AND claimed_by = ? AND status = 'claimed'",
                (time.time() + lease_period, job_id, worker_id),
            )
            return cursor.rowcount == 1

    def complete(self, job_id: int, worker_id: str) -> None:
        """Mark the job done and record this completion (a second one is a duplicate)."""
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

    def release(self, job_id: int, worker_id: str) -> bool:
        """Give the job back to the queue; False if *worker_id* did not hold it."""
        with self._connect() as db:
            cursor = db.execute(
                "UPDATE jobs SET status = 'queued', claimed_by = NULL, lease_expires_at = NULL "
                "WHERE id = ? AND claimed_by = ? AND status = 'claimed'",
                (job_id, worker_id),
            )
            return cursor.rowcount == 1

    def get(self, job_id: int) -> Job | None:
        """The job with *job_id*, or None."""
        with self._connect() as db:
            return self._get(db, job_id)

    def counts(self) -> dict[str, int]:
        """How many jobs are in each status."""
        with self._connect() as db:
            rows = db.execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")
            counts = {"queued": 0, "claimed": 0, "done": 0}
            counts.update({row["status"]: row["n"] for row in rows})
            return counts

    def completions(self) -> dict[int, int]:
        """How many times each completed job was completed (above 1: a duplicate)."""
        with self._connect() as db:
            rows = db.execute("SELECT job_id, COUNT(*) AS n FROM completions GROUP BY job_id")
            return {row["job_id"]: row["n"] for row in rows}

    @staticmethod
    def _get(db: sqlite3.Connection, job_id: int) -> Job | None:
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
