"""The demo's SQLite job queue: leases, release, expiry, and counted completions."""

from __future__ import annotations

import time
from pathlib import Path

from app.jobs import JobQueue


def test_enqueue_claim_complete(tmp_path: Path) -> None:
    """A job is claimed with a lease, then done, and its completion recorded once."""
    queue = JobQueue(tmp_path / "q.sqlite3")
    job_id = queue.enqueue(0.5, {"to": "a@example.com"})
    job = queue.claim("w1", lease_period=10)
    assert job is not None
    assert (job.id, job.status, job.claimed_by, job.attempts) == (job_id, "claimed", "w1", 1)
    assert job.payload == {"to": "a@example.com"}
    assert job.lease_expires_at is not None
    assert job.lease_expires_at > time.time() + 9
    queue.complete(job_id, "w1")
    done = queue.get(job_id)
    assert done is not None
    assert done.status == "done"
    assert queue.completions() == {job_id: 1}
    assert queue.counts() == {"queued": 0, "claimed": 0, "done": 1}


def test_no_double_claim_while_leased(tmp_path: Path) -> None:
    """A leased job is not handed to a second worker."""
    queue = JobQueue(tmp_path / "q.sqlite3")
    queue.enqueue(1)
    assert queue.claim("w1", lease_period=10) is not None
    assert queue.claim("w2", lease_period=10) is None


def test_release_makes_the_job_claimable_at_once(tmp_path: Path) -> None:
    """A cancelled worker's release hands the job to the next claim, attempts counted."""
    queue = JobQueue(tmp_path / "q.sqlite3")
    job_id = queue.enqueue(1)
    queue.claim("w1", lease_period=10)
    assert queue.release(job_id, "w1")
    assert not queue.release(job_id, "w1")  # no longer held
    again = queue.claim("w2", lease_period=10)
    assert again is not None
    assert (again.id, again.claimed_by, again.attempts) == (job_id, "w2", 2)


def test_expired_lease_makes_the_job_claimable_again(tmp_path: Path) -> None:
    """A worker that died without releasing loses the job when its lease expires."""
    queue = JobQueue(tmp_path / "q.sqlite3")
    job_id = queue.enqueue(1)
    queue.claim("dead", lease_period=0.05)
    assert queue.claim("w2", lease_period=10) is None
    time.sleep(0.1)
    job = queue.claim("w2", lease_period=10)
    assert job is not None
    assert job.id == job_id
    assert not queue.renew(job_id, "dead", 10)  # the dead worker's lease is gone
    assert queue.renew(job_id, "w2", 10)


def test_duplicate_completions_are_counted(tmp_path: Path) -> None:
    """A job completed twice (at-least-once) shows up as a duplicate."""
    queue = JobQueue(tmp_path / "q.sqlite3")
    job_id = queue.enqueue(1)
    queue.complete(job_id, "w1")
    queue.complete(job_id, "w2")
    assert queue.completions() == {job_id: 2}


def test_queue_survives_reopening(tmp_path: Path) -> None:
    """Jobs are durable: a new JobQueue on the same file sees them."""
    path = tmp_path / "q.sqlite3"
    job_id = JobQueue(path).enqueue(3, [1, 2])
    job = JobQueue(path).get(job_id)
    assert job is not None
    assert (job.seconds, job.payload, job.status) == (3.0, [1, 2], "queued")
