"""Durable jobs across restarts: each replica restarted twice with SIGTERM and once with
SIGKILL mid-job, on one shared queue (SQLite file, or one PostgreSQL), and no job is lost."""

from __future__ import annotations

import random
import signal
import time

import httpx
import pytest

from app.jobs import Job, JobQueue
from tests.servers._demo import read_queue, stored_job
from tests.servers._process import ServerProcess
from tests.servers.rig import SUPERVISED_APP, SUPERVISED_ENV, Rig

pytestmark = [pytest.mark.server, pytest.mark.timeout(150)]

JOBS = 40
LEASE_PERIOD = 6.0


def wait_until_mid_job(queue_url: str, replica: ServerProcess, ids: list[int]) -> int:
    """Wait (at most 15 s) until one of *replica*'s workers has at least 0.4 s of a job
    still to run; return that job's id.

    Worker ids read ``<host>-<pid>-<random>-<n>``, so the holder is known without asking
    it. With LEASE_PERIOD above three times every job's length a job is never renewed, so
    its lease tells when it was claimed; the queue and this test share the host's clock.
    """
    assert replica.process is not None
    marker = f"-{replica.process.pid}-"

    async def claimed(queue: JobQueue) -> list[Job]:
        jobs = [await queue.get(job_id) for job_id in ids]
        return [j for j in jobs if j and j.status == "claimed" and marker in (j.claimed_by or "")]

    deadline = time.monotonic() + 15
    while True:
        jobs = read_queue(queue_url, claimed)
        now = time.time()
        for job in jobs:
            assert job.lease_expires_at is not None
            if job.lease_expires_at - LEASE_PERIOD + job.seconds - now > 0.4:
                return job.id
        assert time.monotonic() < deadline, f"replica {replica.name} never was mid-job"
        time.sleep(0.02)


def test_jobs_survive_restarts_and_a_sigkill(queue_url: str) -> None:
    """1. 40 jobs are submitted through the balancer; 2. each replica is restarted with
    SIGTERM, then with SIGKILL while it holds a job, then with SIGTERM again; 3. every job
    is done in the end; 4. duplicates (at-least-once) are counted and reported, never lost
    jobs. Both replicas share one queue: a SQLite file, or one PostgreSQL database."""
    env = {
        **SUPERVISED_ENV,
        "APP_DATABASE_URL": queue_url,
        "APP_LEASE_PERIOD": str(LEASE_PERIOD),
        "APP_POLL_PERIOD": "0.1",
    }
    rng = random.Random(7)
    with Rig(SUPERVISED_APP, env) as rig, httpx.Client(base_url=rig.url, timeout=5) as http:
        ids = []
        for _ in range(JOBS):
            response = http.post("/jobs", json={"seconds": rng.uniform(0.6, 1.0)})
            assert response.status_code == 201
            ids.append(response.json()["id"])
        for replica in rig.replicas:
            assert rig.restart(replica).exit_status == -signal.SIGTERM
        killed_mid_job = []
        for replica in rig.replicas:
            killed_mid_job.append(wait_until_mid_job(queue_url, replica, ids))
            assert rig.restart(replica, signal.SIGKILL).exit_status == -signal.SIGKILL
        for replica in rig.replicas:
            assert rig.restart(replica).exit_status == -signal.SIGTERM
        deadline = time.monotonic() + 60
        while (summary := http.get("/jobs").json())["done"] < JOBS:
            assert time.monotonic() < deadline, summary
            time.sleep(0.2)
        completions = read_queue(queue_url, lambda queue: queue.completions())
        rerun = [stored_job(queue_url, job_id) for job_id in killed_mid_job]
    # The killed replicas' jobs ran again once their leases expired.
    assert [job.attempts >= 2 for job in rerun] == [True, True]
    assert sorted(completions) == sorted(ids)
    duplicates = {job: n for job, n in completions.items() if n > 1}
    print(f"{JOBS} jobs done; killed mid-job: {killed_mid_job}; duplicates: {duplicates}")
    # Only a SIGKILL can duplicate: a job whose completion was written cannot run again,
    # one whose lease expired can, and each kill interrupts at most its two workers' jobs.
    assert sum(n - 1 for n in duplicates.values()) <= 2 * len(rig.replicas)
