"""The demo's HTTP and websocket routes."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import PlainTextResponse, StreamingResponse

from asgi_supervisor import Supervisor

from .validation import MAX_JOB_ID, JobIn
from .workers import Broadcast, JobWorkers

__all__ = ["build_router"]

logger = logging.getLogger("app")


def build_router(supervisor: Supervisor, workers: JobWorkers, broadcast: Broadcast) -> APIRouter:
    """The routes, bound to this app's supervisor, workers and broadcast."""
    router = APIRouter()

    @router.get("/", response_class=PlainTextResponse)
    async def hello() -> str:
        return "hello"

    @router.post("/jobs", status_code=201)
    async def enqueue(job: JobIn, notify: bool = False) -> dict[str, Any]:
        job_id = await workers.require_queue().enqueue(job.seconds, job.payload)
        workers.new_job.set()
        if notify:
            supervisor.spawn(_notify, job_id, name=f"notify-job-{job_id}")
        return {"id": job_id, "status": "queued"}

    @router.get("/jobs")
    async def summary() -> dict[str, int]:
        return await workers.require_queue().counts()

    @router.get("/jobs/{job_id}")
    async def job(job_id: Annotated[int, Path(ge=1, le=MAX_JOB_ID)]) -> dict[str, Any]:
        found = await workers.require_queue().get(job_id)
        if found is None:
            raise HTTPException(status_code=404, detail=f"No job with id {job_id}.")
        return found.to_dict()

    @router.get("/slow", response_class=PlainTextResponse)
    async def slow(seconds: Annotated[float, Query(ge=0, le=30)] = 1.0) -> str:
        await asyncio.sleep(seconds)
        return f"slept {seconds}"

    @router.get("/stream")
    async def stream(
        request: Request, count: Annotated[int | None, Query(ge=1, le=10_000)] = None
    ) -> StreamingResponse:
        async def ticks() -> AsyncIterator[str]:
            n = 0
            while count is None or n < count:
                yield f"data: tick {n}\n\n"
                n += 1
                await asyncio.sleep(0.2)

        return StreamingResponse(ticks(), media_type="text/event-stream")

    @router.websocket("/ws")
    async def socket(websocket: WebSocket) -> None:
        await websocket.accept()
        ticks: asyncio.Queue[str] = asyncio.Queue()
        broadcast.queues.add(ticks)

        async def forward_ticks() -> None:
            while True:
                await websocket.send_text(await ticks.get())

        forwarder = asyncio.create_task(forward_ticks())
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                if text is None:
                    # Any client may send a binary frame: one line, not a traceback per
                    # connection, and the close code that says why (RFC 6455 7.4.1).
                    logger.info("closing a websocket that sent a binary frame (text only)")
                    await websocket.close(code=1003, reason="text frames only")
                    break
                # "whoami" names the replica: the load-balancer tests see where they landed.
                await websocket.send_text(f"pid {os.getpid()}" if text == "whoami" else text)
        except WebSocketDisconnect:
            pass
        finally:
            broadcast.queues.discard(ticks)
            forwarder.cancel()
            await asyncio.wait({forwarder})

    return router


async def _notify(job_id: int) -> None:
    # Stands for an e-mail or a webhook: tracked, so a failure is logged and not lost.
    await asyncio.sleep(0.01)
    logger.info("job %d queued (notification sent)", job_id)
