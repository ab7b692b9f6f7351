"""The demo app in-process: validation, job lifecycle, and its workers under the supervisor."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

from app.jobs import open_queue
from app.main import create_app
from app.settings import Settings
from asgi_supervisor import Supervisor
from asgi_supervisor.testing import LifespanManager
from tests._inprocess import quiet_supervisor


@pytest.fixture
def settings(queue_url: str) -> Settings:
    """Demo settings with a fresh queue (on each backend) and fast polling."""
    return Settings(database_url=queue_url, workers=2, poll_period=0.05)


async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for *app* with its lifespan running."""
    transport = httpx.ASGITransport(app, client=("127.0.0.1", 1))
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as http,
    ):
        yield http


@pytest.fixture
async def http(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the demo app with a quiet supervisor."""
    async for opened in client(create_app(settings, quiet_supervisor())):
        yield opened


async def wait_for_status(http: httpx.AsyncClient, job_id: int, status: str) -> None:
    """Poll the job until it has *status*, for at most 5 s."""
    for _ in range(250):
        job = (await http.get(f"/jobs/{job_id}")).json()
        if job["status"] == status:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"job {job_id} never {status}: {job}")


async def test_job_runs_to_done_and_bad_bodies_get_422(http: httpx.AsyncClient) -> None:
    """POST /jobs validates, a worker completes the job, GET /jobs/{id} shows it."""
    for bad in ({"seconds": -1}, {"seconds": 61}, {"payload": 1}, {"seconds": 1, "x": 2}):
        response = await http.post("/jobs", json=bad)
        assert response.status_code == 422, bad
    assert (await http.post("/jobs", content=b"not json")).status_code == 422
    created = await http.post(
        "/jobs", json={"seconds": 0.05, "payload": {"n": 1}}, params={"notify": 1}
    )
    assert created.status_code == 201
    job_id = created.json()["id"]
    await wait_for_status(http, job_id, "done")
    assert (await http.get("/jobs/999")).status_code == 404
    assert (await http.get("/jobs")).json() == {"queued": 0, "claimed": 0, "done": 1}
    assert (await http.get("/slow", params={"seconds": 31})).status_code == 422
    assert (await http.get("/stream", params={"count": 0})).status_code == 422
    stream = await http.get("/stream", params={"count": 2})
    assert stream.text == "data: tick 0\n\ndata: tick 1\n\n"
    ready = await http.get("/_supervisor/health/ready")
    assert ready.status_code == 200
    assert (await http.get("/_supervisor/health")).json()["checks"] == {
        "queue": {"ok": True, "critical": True}
    }


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"seconds": NaN}', "finite number"),
        (b'{"seconds": Infinity}', "finite number"),
        (b'{"seconds": -Infinity}', "finite number"),
        (b'{"seconds": 1e999}', "finite number"),
        (b'{"seconds": 1, "payload": NaN}', "nan is not a finite number"),
        (b'{"seconds": 1, "payload": {"a": [1e999]}}', "inf is not a finite number"),
        (b'{"seconds": 1, "payload": "\\ud800"}', "lone surrogate"),
        (b'{"seconds": 1, "payload": {"\\udfff": 1}}', "lone surrogate"),
    ],
)
async def test_unrepresentable_json_gets_a_clear_422_and_is_not_stored(
    http: httpx.AsyncClient, body: bytes, message: str
) -> None:
    """NaN, infinities and lone surrogates are refused with 422 naming why, never a 500,
    and nothing is stored."""
    response = await http.post("/jobs", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert message in response.text
    assert (await http.get("/jobs")).json() == {"queued": 0, "claimed": 0, "done": 0}


async def test_job_ids_beyond_64_bits_are_422(http: httpx.AsyncClient) -> None:
    """An id no backend can hold gets 422 (not a 500 from the database driver)."""
    for job_id in ("1" * 23, str(2**63), "0"):
        response = await http.get(f"/jobs/{job_id}")
        assert response.status_code == 422, (job_id, response.text)
    assert (await http.get(f"/jobs/{2**63 - 1}")).status_code == 404


async def test_body_over_the_limit_is_413_without_reading_it_all(settings: Settings) -> None:
    """1. a 100 MB body streams in 64 KiB chunks without a Content-Length; 2. the app
    answers 413 once 1 KiB has passed; 3. only the first chunk was ever pulled."""
    limited = Settings(database_url=settings.database_url, max_body_bytes=1024)
    pulled = 0

    async def hundred_megabytes() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(100 * 16):
            pulled += 1
            yield b"x" * 65536

    async for http in client(create_app(limited, quiet_supervisor())):
        response = await http.post("/jobs", content=hundred_megabytes())
        assert response.status_code == 413
        assert response.json() == {"detail": "The request body exceeds the limit of 1024 bytes."}
        declared = await http.post(
            "/jobs", content=b"{}", headers={"content-length": str(100 * 2**20)}
        )
        assert declared.status_code == 413
        small = await http.post("/jobs", json={"seconds": 0, "payload": "x" * 900})
        assert small.status_code == 201  # a body under the limit is read as usual
    assert pulled <= 2


async def test_job_in_progress_is_released_when_cancelled(settings: Settings) -> None:
    """1. a long job is claimed; 2. the supervisor drains; 3. the job is queued again, not lost."""
    supervisor: Supervisor = quiet_supervisor(grace_period=2.0, cancel_timeout=1.0)
    async for http in client(create_app(settings, supervisor)):
        job_id = (await http.post("/jobs", json={"seconds": 30})).json()["id"]
        await wait_for_status(http, job_id, "claimed")
        report = await supervisor.drain()
    assert report.tasks_cancelled_count >= 1
    assert not report.abandoned
    queue = await open_queue(settings.database_url)
    try:
        job = await queue.get(job_id)
    finally:
        await queue.close()
    assert job is not None
    assert (job.status, job.claimed_by, job.attempts) == ("queued", None, 1)


def test_settings_name_the_bad_variable_and_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    """The database URL and body limit come from the environment; a bad value, or the old
    APP_QUEUE_PATH, fails naming the variable and what to write instead."""
    monkeypatch.setenv("APP_DATABASE_URL", "postgresql://u@h:5432/d")
    monkeypatch.setenv("APP_MAX_BODY_BYTES", "2048")
    settings = Settings.from_env()
    assert (settings.database_url, settings.max_body_bytes) == ("postgresql://u@h:5432/d", 2048)
    monkeypatch.setenv("APP_DATABASE_URL", "redis://h")
    with pytest.raises(ValueError, match=r"APP_DATABASE_URL='redis://h' names no known backend"):
        Settings.from_env()
    monkeypatch.setenv("APP_DATABASE_URL", "sqlite:///q.sqlite3")
    monkeypatch.setenv("APP_MAX_BODY_BYTES", "0")
    with pytest.raises(ValueError, match=r"APP_MAX_BODY_BYTES=0 must be at least 1"):
        Settings.from_env()
    monkeypatch.setenv("APP_QUEUE_PATH", "/data/q.sqlite3")
    with pytest.raises(ValueError, match=r"set APP_DATABASE_URL=sqlite:////data/q.sqlite3"):
        Settings.from_env()


def closing_of(socket: WebSocketTestSession) -> WebSocketDisconnect:
    """How the server closed *socket*, reading (and dropping) what it sent before."""
    while True:
        try:
            socket.receive_text()
        except WebSocketDisconnect as closed:
            return closed


def test_a_binary_frame_on_the_websocket_closes_it_with_1003(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """1. the demo's /ws echoes text; 2. a binary frame closes the connection with 1003
    (unsupported data) and one log line, with no traceback; 3. the app serves on."""
    caplog.set_level("INFO", logger="app")
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'q.sqlite3'}", workers=1)
    app = create_app(settings, quiet_supervisor())
    with TestClient(app) as client:
        with client.websocket_connect("/ws") as socket:
            socket.send_text("hello")
            while (said := socket.receive_text()) != "hello":
                assert said.startswith("tick"), said  # the periodic worker's broadcast
            socket.send_bytes(b"\x00\x01")
            closed = closing_of(socket)
        assert (closed.code, closed.reason) == (1003, "text frames only")
        assert client.get("/").text == "hello"
    lines = [r for r in caplog.records if "binary frame" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].exc_info is None
    assert not [r for r in caplog.records if r.exc_info is not None]
