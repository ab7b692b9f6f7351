"""The job queue in PostgreSQL: replicas on any number of hosts share it.

A claim is one statement: the oldest claimable row is locked with ``FOR UPDATE SKIP LOCKED``
(two workers claiming at once take different rows, and neither waits for the other) and
leased in the same ``UPDATE``. Leases are compared with the database server's clock, so the
replicas' clocks need not agree. Connections come from a bounded pool (psycopg 3, async).
"""

from __future__ import annotations

import json
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from .jobs import Job, encode_payload

__all__ = ["PostgresQueue"]

# Payloads are stored as the JSON text `encode_payload` wrote, as SQLite stores them: jsonb
# would refuse "\u0000" inside strings, which JSON allows, and nothing queries inside them.
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS jobs (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        seconds DOUBLE PRECISION NOT NULL,
        payload TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'queued',
        claimed_by TEXT,
        lease_expires_at TIMESTAMPTZ,
        attempts INTEGER NOT NULL DEFAULT 0,
        created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
        done_at TIMESTAMPTZ
    )""",
    "CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, lease_expires_at)",
    """CREATE TABLE IF NOT EXISTS completions (
        job_id BIGINT NOT NULL,
        worker_id TEXT NOT NULL,
        at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
    )""",
)

# Replicas starting together would race on CREATE TABLE IF NOT EXISTS (it can fail with a
# unique violation in the catalog); this transaction-scoped advisory lock serialises them.
_SCHEMA_LOCK = 0x6A6F6273  # "jobs"

_JOB_COLUMNS = (
    "id, seconds, payload, status, claimed_by, "
    "extract(epoch FROM lease_expires_at)::float8 AS lease_expires_at, attempts"
)

_CLAIM = f"""
UPDATE jobs SET status = 'claimed', claimed_by = %(worker)s, attempts = attempts + 1,
    lease_expires_at = clock_timestamp() + make_interval(secs => %(lease)s)
WHERE id = (
    SELECT id FROM jobs
    WHERE status = 'queued' OR (status = 'claimed' AND lease_expires_at < clock_timestamp())
    ORDER BY id LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING {_JOB_COLUMNS}
"""

_CONNECT_TIMEOUT = 10.0


class PostgresQueue:
    """The `app.jobs.JobQueue` stored in the PostgreSQL database at a ``postgresql://`` URL
    (its methods are documented there).

    Example::

        queue = await PostgresQueue.open("postgresql://demo@127.0.0.1:5432/demo")
        job_id = await queue.enqueue(1.5, {"to": "a@example.com"})
        await queue.close()

    Each call borrows a pooled connection for one transaction, waiting at most 10 s for one.
    A call cancelled mid-query leaves the pool to discard or reset that connection.
    """

    def __init__(self, pool: AsyncConnectionPool[AsyncConnection[DictRow]]) -> None:
        self._pool = pool

    def __repr__(self) -> str:
        return f"<PostgresQueue pool={self._pool.name} {self._pool.get_stats()}>"

    @classmethod
    async def open(cls, url: str, *, max_connections: int = 10) -> PostgresQueue:
        """Connect a pool of up to *max_connections* to *url* and create the tables.

        Raises:
            psycopg_pool.PoolTimeout: no connection within 10 s (server down, bad URL).
        """
        pool: AsyncConnectionPool[AsyncConnection[DictRow]] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=max_connections,
            open=False,
            timeout=_CONNECT_TIMEOUT,
            connection_class=AsyncConnection[DictRow],
            kwargs={"row_factory": dict_row, "connect_timeout": int(_CONNECT_TIMEOUT)},
        )
        try:
            await pool.open(wait=True, timeout=_CONNECT_TIMEOUT)
            async with pool.connection() as db:
                await db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                for statement in _SCHEMA:
                    await db.execute(statement)
        except BaseException:
            await pool.close()
            raise
        return cls(pool)

    async def enqueue(self, seconds: float, payload: Any = None) -> int:
        text = encode_payload(payload)
        async with self._pool.connection() as db:
            cursor = await db.execute(
                "INSERT INTO jobs (seconds, payload) VALUES (%s, %s) RETURNING id",
                (seconds, text),
            )
            row = await cursor.fetchone()
        assert row is not None  # INSERT ... RETURNING always returns the new row
        return int(row["id"])

    async def claim(self, worker_id: str, lease_period: float) -> Job | None:
        async with self._pool.connection() as db:
            cursor = await db.execute(_CLAIM, {"worker": worker_id, "lease": lease_period})
            row = await cursor.fetchone()
        return None if row is None else _job(row)

    async def renew(self, job_id: int, worker_id: str, lease_period: float) -> bool:
        async with self._pool.connection() as db:
            cursor = await db.execute(
                "UPDATE jobs SET lease_expires_at = clock_timestamp() + make_interval(secs => %s)"
                " WHERE id = %s AND claimed_by = %s AND status = 'claimed'",
                (lease_period, job_id, worker_id),
            )
            return cursor.rowcount == 1

    async def complete(self, job_id: int, worker_id: str) -> None:
        # One transaction: the job is done exactly when its completion is recorded.
        async with self._pool.connection() as db:
            await db.execute(
                "UPDATE jobs SET status = 'done', claimed_by = NULL, lease_expires_at = NULL, "
                "done_at = clock_timestamp() WHERE id = %s",
                (job_id,),
            )
            await db.execute(
                "INSERT INTO completions (job_id, worker_id) VALUES (%s, %s)",
                (job_id, worker_id),
            )

    async def release(self, job_id: int, worker_id: str) -> bool:
        async with self._pool.connection() as db:
            cursor = await db.execute(
                "UPDATE jobs SET status = 'queued', claimed_by = NULL, lease_expires_at = NULL "
                "WHERE id = %s AND claimed_by = %s AND status = 'claimed'",
                (job_id, worker_id),
            )
            return cursor.rowcount == 1

    async def get(self, job_id: int) -> Job | None:
        async with self._pool.connection() as db:
            cursor = await db.execute(f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = %s", (job_id,))
            row = await cursor.fetchone()
        return None if row is None else _job(row)

    async def counts(self) -> dict[str, int]:
        async with self._pool.connection() as db:
            cursor = await db.execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")
            rows = await cursor.fetchall()
        counts = {"queued": 0, "claimed": 0, "done": 0}
        counts.update({row["status"]: int(row["n"]) for row in rows})
        return counts

    async def completions(self) -> dict[int, int]:
        async with self._pool.connection() as db:
            cursor = await db.execute(
                "SELECT job_id, COUNT(*) AS n FROM completions GROUP BY job_id"
            )
            rows = await cursor.fetchall()
        return {int(row["job_id"]): int(row["n"]) for row in rows}

    async def close(self) -> None:
        """Close the pool, waiting at most 5 s for borrowed connections to come back."""
        await self._pool.close(timeout=5.0)


def _job(row: DictRow) -> Job:
    return Job(
        id=int(row["id"]),
        seconds=float(row["seconds"]),
        payload=json.loads(row["payload"]),
        status=row["status"],
        claimed_by=row["claimed_by"],
        lease_expires_at=row["lease_expires_at"],
        attempts=int(row["attempts"]),
    )
