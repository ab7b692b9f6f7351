"""`/metrics` in a process group: snapshots published to files, merged by any scrape."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette

from asgi_supervisor import SupervisorMiddleware
from asgi_supervisor._observe.metrics import Snapshot
from asgi_supervisor._observe.metrics_group import ENV, PUBLISH_PERIOD, STALE_AFTER, write_snapshot
from asgi_supervisor.testing import LifespanManager
from tests._inprocess import client, named, parse
from tests.conftest import quiet_supervisor


@pytest.fixture
def live_pid() -> Iterator[int]:
    """The pid of a process of ours that stays alive during the test."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield process.pid
    finally:
        process.kill()
        process.wait(timeout=10)


def dead_pid() -> int:
    """The pid of a process of ours that has exited and been reaped."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait(timeout=10)
    return process.pid


def peer(pid: int, state: str, age: float = 0.0) -> Snapshot:
    """A peer's snapshot saying only its state."""
    sample = ("asgi_supervisor_state", (state,), 1.0)
    return Snapshot(pid=pid, taken_at=time.time() - age, samples=(sample,))


def pids_by_state(text: str) -> dict[str, str]:
    """pid -> current state, from an exposition."""
    return {
        dict(labels)["pid"]: dict(labels)["state"]
        for labels, v in named(parse(text), "state").items()
        if v == 1
    }


async def test_a_scrape_merges_live_peers_and_drops_dead_and_stale_ones(
    tmp_path: Path, live_pid: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1. peers: one live, one exited, one stale, one unreadable file; 2. a scrape shows this
    process and the live peer, each labelled with its pid and its snapshot's age; 3. the
    exited peer's file is removed."""
    monkeypatch.setenv(ENV, str(tmp_path))
    gone = dead_pid()
    write_snapshot(tmp_path, peer(live_pid, "draining", age=1.0))
    write_snapshot(tmp_path, peer(gone, "ready"))
    write_snapshot(tmp_path, peer(os.getppid(), "ready", age=STALE_AFTER + 5))
    (tmp_path / "asgi_supervisor_junk.json").write_text("{not json")
    app = SupervisorMiddleware(Starlette(), supervisor=quiet_supervisor())
    async with LifespanManager(app), client(app) as http:
        response = await http.get("/metrics")
    assert pids_by_state(response.text) == {str(os.getpid()): "ready", str(live_pid): "draining"}
    ages = named(parse(response.text), "snapshot_age_seconds")
    ages_by_pid = {dict(labels)["pid"]: age for labels, age in ages.items()}
    assert set(ages_by_pid) == {str(os.getpid()), str(live_pid)}
    assert 1.0 <= ages_by_pid[str(live_pid)] < 30
    assert not (tmp_path / f"asgi_supervisor_{gone}.json").exists()


async def test_the_publisher_follows_the_lifespan_and_changes_of_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1. at startup the process's file appears; 2. after a drain it says stopped well within
    the publish period; 3. when the lifespan ends the file is gone."""
    monkeypatch.setenv(ENV, str(tmp_path))
    own = tmp_path / f"asgi_supervisor_{os.getpid()}.json"

    def published_state() -> str | None:
        if not own.exists():
            return None
        samples = Snapshot.from_json(own.read_text()).samples
        return next(
            labels[0] for name, labels, v in samples if name == "asgi_supervisor_state" and v
        )

    supervisor = quiet_supervisor()
    async with LifespanManager(SupervisorMiddleware(Starlette(), supervisor=supervisor)):
        async with asyncio.timeout(5):
            while published_state() != "ready":
                await asyncio.sleep(0.02)
        await supervisor.drain()
        stopped_at = time.monotonic()
        async with asyncio.timeout(PUBLISH_PERIOD - 1):
            while published_state() != "stopped":
                await asyncio.sleep(0.02)
        assert time.monotonic() - stopped_at < PUBLISH_PERIOD - 1
    assert not own.exists()
