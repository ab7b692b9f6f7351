"""Helpers the demo tests share: read the queue a server wrote, outside that server."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from app.jobs import Job, JobQueue, open_queue

T = TypeVar("T")


def read_queue(url: str, read: Callable[[JobQueue], Awaitable[T]]) -> T:
    """Open the queue at *url*, apply *read* to it, close it: for tests outside a loop."""

    async def main() -> T:
        queue = await open_queue(url)
        try:
            return await read(queue)
        finally:
            await queue.close()

    return asyncio.run(main())


def stored_job(url: str, job_id: int) -> Job:
    """The job as the queue at *url* holds it."""
    job = read_queue(url, lambda queue: queue.get(job_id))
    assert job is not None
    return job
