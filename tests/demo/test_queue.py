"""The demo's job queue, the same suite on both backends: leases, release, expiry, and
counted completions."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator

import pytest

from app.jobs import JobQueue, check_url, open_queue, sqlite_path


@pytest.fixture
async def queue(queue_url: str) -> AsyncIterator[JobQueue]:
    """The queue at *queue_url*, closed after the test."""
    opened = await open_queue(queue_url)
    try:
        yield opened
    finally:
        await opened.close()


async def test_enqueue_claim_complete(queue: JobQueue) -> None:
    """A job is claimed with a lease, then done, and its completion recorded once."""
    job_id = await queue.enqueue(0.5, {"to": "a@example.com", "nul": "\u0000"})
    job = await queue.claim("w1", lease_period=10)
    assert job is not None
    assert (job.id, job.status, job.claimed_by, job.attempts) == (job_id, "claimed", "w1", 1)
    assert job.payload == {"to": "a@example.com", "nul": "\u0000"}
    assert job.lease_expires_at is not None
    assert time.time() + 8 < job.lease_expires_at < time.time() + 11
    await queue.complete(job_id, "w1")
    done = await queue.get(job_id)
    assert done is not None
    assert (done.status, done.claimed_by, done.lease_expires_at) == ("done", None, None)
    assert await queue.completions() == {job_id: 1}
    assert await queue.counts() == {"queued": 0, "claimed": 0, "done": 1}


async def test_jobs_are_claimed_oldest_first_and_unknown_ids_are_none(queue: JobQueue) -> None:
    """Claims follow the order of enqueueing; `get` of an unknown id is None."""
    first = await queue.enqueue(1)
    second = await queue.enqueue(2)
    claimed = [await queue.claim(w, lease_period=10) for w in ("w1", "w2")]
    assert [job.id if job else None for job in claimed] == [first, second]
    assert await queue.get(second + 1000) is None


async def test_no_double_claim_while_leased(queue: JobQueue) -> None:
    """A leased job is not handed to a second worker."""
    await queue.enqueue(1)
    assert await queue.claim("w1", lease_period=10) is not None
    assert await queue.claim("w2", lease_period=10) is None


async def test_concurrent_claims_take_different_jobs(queue: JobQueue) -> None:
    """Twenty workers claiming at once get twenty different jobs, never one twice (three
    rounds, as a race shows only sometimes)."""
    for round_ in range(3):
        ids = {await queue.enqueue(0.1) for _ in range(20)}
        claims = (queue.claim(f"w{round_}-{n}", lease_period=10) for n in range(20))
        jobs = await asyncio.gather(*claims)
        assert sorted(job.id for job in jobs if job is not None) == sorted(ids)
    assert await queue.counts() == {"queued": 0, "claimed": 60, "done": 0}


async def test_release_makes_the_job_claimable_at_once(queue: JobQueue) -> None:
    """A cancelled worker's release hands the job to the next claim, attempts counted."""
    job_id = await queue.enqueue(1)
    await queue.claim("w1", lease_period=10)
    assert not await queue.release(job_id, "w2")  # never held it
    assert await queue.release(job_id, "w1")
    assert not await queue.release(job_id, "w1")  # no longer held
    again = await queue.claim("w2", lease_period=10)
    assert again is not None
    assert (again.id, again.claimed_by, again.attempts) == (job_id, "w2", 2)


async def test_expired_lease_makes_the_job_claimable_again(queue: JobQueue) -> None:
    """A worker that died without releasing loses the job when its lease expires."""
    job_id = await queue.enqueue(1)
    await queue.claim("dead", lease_period=0.2)
    assert await queue.claim("w2", lease_period=10) is None
    await asyncio.sleep(0.3)
    job = await queue.claim("w2", lease_period=10)
    assert job is not None
    assert (job.id, job.attempts) == (job_id, 2)
    assert not await queue.renew(job_id, "dead", 10)  # the dead worker's lease is gone
    assert await queue.renew(job_id, "w2", 10)


async def test_renewal_keeps_the_lease_alive(queue: JobQueue) -> None:
    """A lease renewed before it expires keeps other workers away past its first term."""
    job_id = await queue.enqueue(1)
    await queue.claim("w1", lease_period=0.4)
    for _ in range(3):
        await asyncio.sleep(0.2)
        assert await queue.renew(job_id, "w1", 0.4)
        assert await queue.claim("w2", lease_period=10) is None


async def test_duplicate_completions_are_counted(queue: JobQueue) -> None:
    """A job completed twice (at-least-once) shows up as a duplicate."""
    job_id = await queue.enqueue(1)
    await queue.complete(job_id, "w1")
    await queue.complete(job_id, "w2")
    assert await queue.completions() == {job_id: 2}


@pytest.mark.parametrize("payload", [math.nan, [math.inf], {"s": "\ud800"}])
async def test_unstorable_payloads_are_refused(queue: JobQueue, payload: object) -> None:
    """NaN, infinities and lone surrogates raise ValueError and store nothing."""
    with pytest.raises(ValueError, match=r"Out of range float|surrogate"):
        await queue.enqueue(1, payload)
    assert await queue.counts() == {"queued": 0, "claimed": 0, "done": 0}


async def test_queue_survives_reopening(queue_url: str) -> None:
    """Jobs are durable: the queue opened again at the same URL sees them."""
    first = await open_queue(queue_url)
    job_id = await first.enqueue(3, [1, 2])
    await first.close()
    second = await open_queue(queue_url)
    try:
        job = await second.get(job_id)
    finally:
        await second.close()
    assert job is not None
    assert (job.seconds, job.payload, job.status) == (3.0, [1, 2], "queued")


def test_urls_name_their_backend() -> None:
    """sqlite:/// takes a relative path, a fourth slash an absolute one; others are refused."""
    assert sqlite_path("sqlite:///q.sqlite3") == "q.sqlite3"
    assert sqlite_path("sqlite:////data/q.sqlite3") == "/data/q.sqlite3"
    check_url("postgresql://u@h:5432/d")
    check_url("postgres://u@h/d")
    with pytest.raises(ValueError, match=r"'mysql://h/d' names no known backend"):
        check_url("mysql://h/d")
    with pytest.raises(ValueError, match=r"'sqlite://q' is not a SQLite URL"):
        check_url("sqlite://q")
