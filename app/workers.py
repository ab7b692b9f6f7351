"""The demo's workers: job consumers with leases, and a periodic ticker.

A job consumer watches ``supervisor.stopping`` between jobs; a job in progress when the
stopping phase comes is cancelled, and its ``except CancelledError`` releases the job (an
await the supervisor gives time to finish) so another replica picks it up at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Awaitable
from typing import Any, TypeVar

from asgi_supervisor import Supervisor

from .jobs import Job, JobQueue
from .settings import Settings

__all__ = ["Broadcast", "JobWorkers"]

logger = logging.getLogger("app")

T = TypeVar("T")


class Broadcast:
    """The websockets that receive the periodic tick."""

    def __init__(self) -> None:
        self.queues: set[asyncio.Queue[str]] = set()

    def publish(self, text: str) -> None:
        """Offer *text* to every subscriber; a slow one misses ticks rather than blocking."""
        for queue in self.queues:
            if queue.qsize() < 100:
                queue.put_nowait(text)


class JobWorkers:
    """Runs ``settings.workers`` job consumers and the ticker under *supervisor*."""

    def __init__(self, supervisor: Supervisor, settings: Settings, broadcast: Broadcast) -> None:
        self.supervisor = supervisor
        self.settings = settings
        self.broadcast = broadcast
        self.queue: JobQueue | None = None
        self.new_job = asyncio.Event()
        self.ticks = 0
        # Unique per process even where host name and pid repeat (containers on the host's
        # network all share its name, and each is PID 1): a lease belongs to one worker.
        identity = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        for n in range(1, settings.workers + 1):
            supervisor.add_worker(
                self.consume, f"{identity}-{n}", name=f"job-worker-{n}", critical=True
            )
        supervisor.add_worker(self.tick, name="ticker", restart="always")

    async def consume(self, worker_id: str) -> None:
        """Claim, run and complete jobs until the supervisor is stopping."""
        while not self.supervisor.stopping.is_set():
            job = await self._claim(worker_id)
            if job is None:
                await self._wait_for_work()
                continue
            try:
                await self._run(job, worker_id)
            except asyncio.CancelledError:
                released = await _landing(self.require_queue().release(job.id, worker_id))
                logger.info("job %d released by %s (cancelled): %s", job.id, worker_id, released)
                raise
            await _landing(self.require_queue().complete(job.id, worker_id))

    async def tick(self) -> None:
        """Count a tick and broadcast it every ``tick_period`` seconds."""
        while not self.supervisor.stopping.is_set():
            await asyncio.sleep(self.settings.tick_period)
            self.ticks += 1
            self.broadcast.publish(f"tick {self.ticks}")

    def require_queue(self) -> JobQueue:
        """The open queue.

        Raises:
            RuntimeError: the app's lifespan has not opened it (or has closed it).
        """
        if self.queue is None:
            raise RuntimeError("The job queue is not open; the app's lifespan opens it.")
        return self.queue

    async def _claim(self, worker_id: str) -> Job | None:
        claim = asyncio.ensure_future(
            self.require_queue().claim(worker_id, self.settings.lease_period)
        )
        try:
            return await asyncio.shield(claim)
        except asyncio.CancelledError:
            # Scenario: cancelled while the claim was in flight. The claim still lands;
            # give the job back, or it would wait for its lease to expire.
            await asyncio.wait({claim})  # unlike `await claim`, a cancel here spares the claim
            job = claim.result()
            if job is not None:
                await _landing(self.require_queue().release(job.id, worker_id))
            raise

    async def _wait_for_work(self) -> None:
        # A POST in this process wakes us at once; jobs enqueued by other replicas are
        # found by the bounded poll.
        self.new_job.clear()
        waiters: Any = {
            asyncio.ensure_future(self.new_job.wait()),
            asyncio.ensure_future(self.supervisor.stopping.wait()),
        }
        try:
            await asyncio.wait(
                waiters, timeout=self.settings.poll_period, return_when="FIRST_COMPLETED"
            )
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.wait(waiters)

    async def _run(self, job: Job, worker_id: str) -> None:
        remaining = job.seconds
        step = max(0.05, min(1.0, self.settings.lease_period / 3))
        while remaining > 0:
            await asyncio.sleep(min(step, remaining))
            remaining -= step
            if remaining > 0:
                await self.require_queue().renew(job.id, worker_id, self.settings.lease_period)


async def _landing(write: Awaitable[T]) -> T:
    """Await a queue write that must land even when the caller is cancelled meanwhile.

    Scenario: the worker is cancelled while its completion is in flight. Without the shield
    the write would be interrupted half-way; with it, the write finishes and we wait for it
    (the backend bounds it) before the cancellation goes on. A second cancellation during
    that wait (the supervisor re-cancels once) stops the waiting, never the write.
    """
    task = asyncio.ensure_future(write)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait({task})  # unlike `await task`, a cancel here spares the write
        raise
