"""`/metrics` on real uvicorn: scraped by a real Prometheus, and answered for all `--workers`."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from tests._inprocess import named, parse
from tests.servers._process import PrometheusProcess, ServerProcess

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.timeout(90)]

PHASES = {"draining", "closing", "stopping"}


def test_prometheus_scrapes_the_demo_state_and_last_shutdown(tmp_path: Path) -> None:
    """1. Prometheus scrapes the demo every second; 2. PromQL finds it ready; 3. /drain (with
    signal handling off nothing ends the process: it lives on, failing liveness); 4. PromQL
    finds it stopped, with the shutdown's phase durations equal to what the demo itself
    exposes."""
    env = {
        "APP_DATABASE_URL": f"sqlite:///{tmp_path / 'queue.sqlite3'}",
        "APP_POLL_PERIOD": "0.1",
        "ASGI_SUPERVISOR_HANDLE_SIGNALS": "false",
    }
    with (
        ServerProcess("app.main:app", tmp_path=tmp_path, env=env) as demo,
        PrometheusProcess([f"127.0.0.1:{demo.port}"], tmp_path=tmp_path) as prometheus,
    ):
        ready = prometheus.wait_for('asgi_supervisor_state{state="ready"} == 1', within=30)
        assert ready[0]["metric"]["instance"] == f"127.0.0.1:{demo.port}"
        assert not prometheus.query("asgi_supervisor_last_shutdown_phase_duration_seconds")

        drain = httpx.post(
            f"{demo.base_url}/_supervisor/drain", headers=demo.admin_headers(), timeout=15
        )
        assert drain.status_code == 200
        prometheus.wait_for('asgi_supervisor_state{state="stopped"} == 1', within=20)
        phases = prometheus.wait_for(
            "asgi_supervisor_last_shutdown_phase_duration_seconds", within=10, count=len(PHASES)
        )
        exposed = parse(httpx.get(f"{demo.base_url}/_supervisor/metrics", timeout=5).text)
        own = named(exposed, "last_shutdown_phase_duration_seconds")
        assert demo.process is not None
        assert demo.process.poll() is None  # the drain did not end the process
    queried = {series["metric"]["phase"]: float(series["value"][1]) for series in phases}
    assert set(queried) == PHASES
    assert queried == {dict(labels)["phase"]: duration for labels, duration in own.items()}


def test_any_worker_of_a_process_group_answers_for_all(tmp_path: Path) -> None:
    """1. uvicorn --workers 2, with no setting at all (the workers ask each other over their
    listener folder); 2. every scrape shows both pids ready, each answering; 3. /drain
    reaches a worker; 4. every later scrape shows the drained one stopped, with its report,
    next to the other, whichever worker answers; 5. nothing is written for the metrics."""
    server = ServerProcess("tests.servers.served:app", tmp_path=tmp_path, args=("--workers", "2"))

    def scrape_states() -> dict[str, str]:
        # A new connection per scrape, so the kernel may hand it to either worker.
        text = httpx.get(f"{server.base_url}/_supervisor/metrics", timeout=5).text
        states = named(parse(text), "state")
        # No pid label yet: the worker answering has not met its sibling (the first moments).
        return {dict(k).get("pid", "?"): dict(k)["state"] for k, v in states.items() if v == 1}

    with server:
        deadline = time.monotonic() + 30
        states = scrape_states()
        while list(states.values()) != ["ready", "ready"] and time.monotonic() < deadline:
            time.sleep(0.1)
            states = scrape_states()
        assert list(states.values()) == ["ready", "ready"], states
        assert [scrape_states() for _ in range(6)] == [states] * 6

        drain = httpx.post(
            f"{server.base_url}/_supervisor/drain", headers=server.admin_headers(), timeout=15
        )
        assert drain.status_code == 200
        deadline = time.monotonic() + 15
        while "stopped" not in scrape_states().values() and time.monotonic() < deadline:
            time.sleep(0.1)
        scrapes = []
        for _ in range(6):
            text = httpx.get(f"{server.base_url}/_supervisor/metrics", timeout=5).text
            samples = parse(text)
            pids = {
                dict(k)["pid"]: dict(k)["state"] for k, v in named(samples, "state").items() if v
            }
            reported = {dict(k)["pid"] for k in named(samples, "last_shutdown_duration_seconds")}
            answered = {dict(k)["pid"]: v for k, v in named(samples, "group_answered").items()}
            scrapes.append((pids, reported, answered))
        # The listener folder holds the two sockets, the token and its record, nothing for
        # metrics.
        assert len(os.listdir(server.listener_folder)) == 4
    for pids, reported, answered in scrapes:
        assert set(pids) == set(states), scrapes
        assert answered == dict.fromkeys(states, 1.0), scrapes
        # The drain reaches every worker of the process group.
        stopped = {pid for pid, state in pids.items() if state == "stopped"}
        assert stopped, scrapes
        assert reported == stopped, scrapes
