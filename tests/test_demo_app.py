"""The demo app in-process: validation, job lifecycle, and its workers under the supervisor."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from asgi_supervisor.testing import LifespanManager
from tests.conftest import quiet_supervisor


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Demo settings with the queue in a temporary folder and fast polling."""
    return Settings(queue_path=str(tmp_path / "q.sqlite3"), workers=2, poll_period=0.05)


async def test_job_runs_to_done_and_bad_bodies_get_422(settings: Settings) -> None:
    """POST /jobs validates, a worker completes the job, GET /jobs/{id} shows it."""
    supervisor = quiet_supervisor()
    app = create_app(settings, supervisor)
    transport = httpx.ASGITransport(app, client=("127.0.0.1", 1))
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as http,
    ):
        for bad in ({"seconds": -1}, {"seconds": 61}, {"payload": 1}, {"seconds": 1, "x": 2}):
            response = await http.post("/jobs", json=bad)
            assert response.status_code == 422, bad
        assert (await http.post("/jobs", content=b"not json")).status_code == 422
        created = await http.post(
            "/jobs", json={"seconds": 0.05, "payload": {"n": 1}}, params={"notify": 1}
        )
        assert created.status_code == 201
        job_id = created.json()["id"]
        for _ in range(100):
            job = (await http.get(f"/jobs/{job_id}")).json()
            if job["status"] == "done":
                break
            await asyncio.sleep(0.02)
        assert job["status"] == "done"
        assert (await http.get("/jobs/999")).status_code == 404
        assert (await http.get("/jobs")).json() == {"queued": 0, "claimed": 0, "done": 1}
        assert (await http.get("/slow", params={"seconds": 31})).status_code == 422
        assert (await http.get("/stream", params={"count": 0})).status_code == 422
        stream = await http.get("/stream", params={"count": 2})
        assert stream.text == "data: tick 0\n\ndata: tick 1\n\n"
        ready = await http.get("/health/ready")
        assert ready.status_code == 200
        assert (await http.get("/health")).json()["checks"] == {
            "queue": {"ok": True, "critical": True}
        }


async def test_job_in_progress_is_released_when_cancelled(settings: Settings) -> None:
    """1. a long job is claimed; 2. the supervisor drains; 3. the job is queued again, not lost."""
    supervisor = quiet_supervisor(grace_period=2.0, cancel_timeout=1.0)
    app = create_app(settings, supervisor)
    transport = httpx.ASGITransport(app, client=("127.0.0.1", 1))
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as http,
    ):
        job_id = (await http.post("/jobs", json={"seconds": 30})).json()["id"]
        for _ in range(100):
            if (await http.get(f"/jobs/{job_id}")).json()["status"] == "claimed":
                break
            await asyncio.sleep(0.02)
        report = await supervisor.drain()
    assert report.tasks_cancelled_count >= 1
    assert not report.abandoned
    from app.jobs import JobQueue

    job = JobQueue(settings.queue_path).get(job_id)
    assert job is not None
    assert (job.status, job.claimed_by, job.attempts) == ("queued", None, 1)
