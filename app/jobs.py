"""The demo's durable job queue: what every backend promises, and how one is opened by URL.

A job is *claimed* with a lease (who holds it, until when), marked *done* only when its work
finished, and *released* when its worker is cancelled. A worker that dies without releasing
(SIGKILL, a crash of the host) leaves a lease that expires; the job is then claimable again.
So no job is ever lost, and a job may run twice: every completion is recorded, so duplicates
can be counted.

Two backends keep this promise, chosen by the URL's scheme:

- ``sqlite:///demo-queue.sqlite3`` (`app.queue_sqlite`): one file, embedded, no server; the
  replicas that share it must run on one host. ``sqlite:////data/q.sqlite3`` is absolute.
- ``postgresql://user@host:5432/db`` (`app.queue_postgres`): replicas on any number of hosts
  claim with ``FOR UPDATE SKIP LOCKED``; leases use the database server's clock.
"""

from __future__ import annotations

import asyncio
import importlib
import json
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Job", "JobQueue", "check_url", "encode_payload", "open_queue", "sqlite_path"]

SQLITE_PREFIX = "sqlite:///"
POSTGRES_PREFIXES = ("postgresql://", "postgres://")


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """One job as stored; ``lease_expires_at`` is a Unix time (seconds)."""

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


class JobQueue(Protocol):
    """The operations the workers and routes use; both backends implement all of them.

    Each call is one transaction. Cancelling a caller while a call runs may leave the call
    to finish on its own (a thread or the database completes it): the workers shield the
    writes that must land (claim, complete, release) and wait for them.
    """

    async def enqueue(self, seconds: float, payload: Any = None) -> int:
        """Add a job; return its id. Raises ValueError for a payload JSON cannot carry."""
        ...

    async def claim(self, worker_id: str, lease_period: float) -> Job | None:
        """Claim the oldest claimable job (queued, or claimed with an expired lease) for
        *lease_period* seconds, counting an attempt; None when there is none."""
        ...

    async def renew(self, job_id: int, worker_id: str, lease_period: float) -> bool:
        """Extend the lease by *lease_period* from now; False if *worker_id* lost the job."""
        ...

    async def complete(self, job_id: int, worker_id: str) -> None:
        """Mark the job done and record this completion (a second one is a duplicate)."""
        ...

    async def release(self, job_id: int, worker_id: str) -> bool:
        """Give the job back to the queue; False if *worker_id* did not hold it."""
        ...

    async def get(self, job_id: int) -> Job | None:
        """The job with *job_id*, or None."""
        ...

    async def counts(self) -> dict[str, int]:
        """How many jobs are queued, claimed and done."""
        ...

    async def completions(self) -> dict[int, int]:
        """How many times each completed job was completed (above 1: a duplicate)."""
        ...

    async def close(self) -> None:
        """Release the backend's connections; the queue is unusable afterwards."""
        ...


def encode_payload(payload: Any) -> str:
    """The payload as the JSON text both backends store.

    Raises:
        ValueError: NaN or an infinity (JSON has neither), or a lone surrogate (no UTF-8
            encoding exists, so the job could never be served back).
    """
    text = json.dumps(payload, allow_nan=False, ensure_ascii=False)
    text.encode("utf-8")  # raises UnicodeEncodeError, a ValueError, on a lone surrogate
    return text


def sqlite_path(url: str) -> str:
    """The file path in a ``sqlite:///`` URL (a fourth slash makes it absolute).

    Raises:
        ValueError: not a ``sqlite:///`` URL, or no path after it.
    """
    if not url.startswith(SQLITE_PREFIX) or url == SQLITE_PREFIX:
        raise ValueError(
            f"{url!r} is not a SQLite URL; write sqlite:///relative/file.sqlite3 "
            "or sqlite:////absolute/file.sqlite3."
        )
    return url.removeprefix(SQLITE_PREFIX)


def check_url(url: str) -> None:
    """Raise ValueError naming *url* unless a backend accepts its scheme."""
    if url.startswith(POSTGRES_PREFIXES):
        return
    if url.startswith("sqlite:"):
        sqlite_path(url)
        return
    raise ValueError(
        f"APP_DATABASE_URL={url!r} names no known backend; use sqlite:///file.sqlite3 "
        "or postgresql://user@host:5432/database."
    )


async def open_queue(url: str, *, max_connections: int = 10) -> JobQueue:
    """Open (and create if needed) the queue at *url*; close it with ``await queue.close()``.

    *max_connections* bounds PostgreSQL's pool; SQLite opens a connection per call.

    Raises:
        ValueError: the URL names no known backend.
        psycopg_pool.PoolTimeout: PostgreSQL did not accept a connection in time.
    """
    check_url(url)
    # Each backend is imported once it is chosen, so that a SQLite-only run never loads the
    # PostgreSQL driver, and in a thread: an import reads files, which must not hold the loop.
    if url.startswith(POSTGRES_PREFIXES):
        postgres = await asyncio.to_thread(importlib.import_module, ".queue_postgres", __package__)
        queue: JobQueue = await postgres.PostgresQueue.open(url, max_connections=max_connections)
    else:
        sqlite = await asyncio.to_thread(importlib.import_module, ".queue_sqlite", __package__)
        queue = await sqlite.SqliteQueue.open(sqlite_path(url))
    return queue
