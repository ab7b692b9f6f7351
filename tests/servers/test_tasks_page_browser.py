"""The /tasks page in a real headless Chromium, served by a real uvicorn.

Set ``TASKS_PAGE_SCREENSHOT`` to a path to keep the screenshot (the docs'
``docs/tasks-page.png`` is made so).
"""

from __future__ import annotations

import os
import struct
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers._browser import Browser
from tests.servers._process import ServerProcess

pytestmark = [pytest.mark.server, pytest.mark.slow, pytest.mark.timeout(90)]

TOKEN = "page-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EVIL = "<script>alert(1)</script> \"'&"
FAILING = "<img src=x onerror=alert(2)>"
TITLE = "tasks · asgi-supervisor"
# What the test reads of the page, in one round trip.
DOM = """(() => {
  const rows = (id) => [...document.querySelectorAll(`#${id} tbody tr`)];
  const texts = (tr) => [...tr.cells].map((td) => td.textContent);
  return {
    title: document.title,
    xss: window.__xss ?? null,
    active: document.querySelectorAll("script, img, iframe, object, embed").length,
    live: rows("live").map((tr) => ({kind: tr.dataset.kind, cells: texts(tr)})),
    workers: rows("workers").map(texts),
    history: rows("history").map(texts),
    shutdown: document.querySelector("#shutdown").textContent,
    phases: [...document.querySelectorAll("#shutdown svg.timeline .phase")].map((g) => ({
      name: g.dataset.phase,
      width: g.querySelector("rect").getBoundingClientRect().width,
    })),
    bar: document.querySelector("#shutdown svg.timeline")?.getBoundingClientRect().width ?? 0,
    scrollWidth: document.documentElement.scrollWidth,
  };
})()"""


def wait_until(what: str, check: Callable[[], Any], timeout: float) -> Any:
    """Poll *check* until it returns something true, for at most *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout} s")
        time.sleep(0.1)


def png_size(png: bytes) -> tuple[int, int]:
    """Width and height of a PNG whose every chunk checks out and whose pixels are not blank.

    Raises:
        AssertionError: not a PNG, a bad chunk checksum, or one colour only.
    """
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    offset, chunks, pixels = 8, [], b""
    while offset < len(png):
        (length,) = struct.unpack(">I", png[offset : offset + 4])
        kind = png[offset + 4 : offset + 8]
        data = png[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", png[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + data) == crc, f"bad checksum in chunk {kind!r}"
        chunks.append(kind)
        if kind == b"IDAT":
            pixels += data
        offset += 12 + length
    assert chunks[0] == b"IHDR"
    assert chunks[-1] == b"IEND"
    assert len(set(zlib.decompress(pixels))) > 16  # text and colours, not a blank page
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_tasks_page_in_headless_chromium(tmp_path: Path) -> None:
    """1. live tasks, a failed task and a crashing worker; 2. no token, no page; 3. with it,
    every row shows and the hostile names stay text; 4. a drain with a request in flight;
    5. the page redraws by itself with one box per phase, as wide as the phase lasted;
    6. screenshot; 7. a narrow window does not scroll sideways; 8. no script, no CSP breach."""
    env = {
        "ASGI_SUPERVISOR_ADMIN_TOKEN": TOKEN,
        "ASGI_SUPERVISOR_SHUTDOWN_DELAY": "0.5",
        "ASGI_SUPERVISOR_GRACE_PERIOD": "30",
        "TEST_FAULTS": "swallow,crash_loop",
        # Nothing may end the drained process (it would exit once stopped), so the page can
        # draw the report: with signals not handled, it lingers, failing liveness instead.
        "ASGI_SUPERVISOR_HANDLE_SIGNALS": "false",
    }
    with (
        ServerProcess("tests.servers.served:app", tmp_path=tmp_path, env=env) as server,
        httpx.Client(base_url=server.base_url, headers=AUTH, timeout=10.0) as http,
        Browser(tmp_path, window=(1100, 900)) as browser,
    ):
        url = f"{server.base_url}/tasks"
        # 1.
        assert http.post("/spawn", params={"name": EVIL}).status_code == 200
        assert http.post("/spawn", params={"name": FAILING, "what": "fail"}).status_code == 200
        wait_until(
            "the crashing worker giving up",
            lambda: http.get("/health").json()["workers"]["crash-loop"]["state"] == "failed",
            timeout=20,
        )
        # 2.
        refusal = browser.load_and_evaluate(url, "document.body.innerText")
        assert "a valid bearer token is required" in refusal
        # 3.
        browser.call("Network.setExtraHTTPHeaders", headers=AUTH)
        before = browser.load_and_evaluate(url, DOM)
        assert before["title"] == TITLE
        live = {row["cells"][2]: row for row in before["live"]}
        assert set(live) == {EVIL, "cooperative", "swallows-cancel"}
        assert live[EVIL]["kind"] == "task"
        assert "tests/apps.py" in live[EVIL]["cells"][5]  # where it waits
        assert "swallows_cancel → sleep" in live[EVIL]["cells"][5]  # and its await chain
        crash = next(w for w in before["workers"] if w[0] == "crash-loop")
        assert crash[1:] == ["failed", "3", "RuntimeError: crash"]
        failed = next(h for h in before["history"] if h[2] == FAILING)
        assert (failed[3], failed[5]) == ("failed", f"RuntimeError: failed: {FAILING}")
        assert "No shutdown yet" in before["shutdown"]
        assert before["phases"] == []
        # 4.
        slow = threading.Thread(target=httpx.get, args=(f"{server.base_url}/slow?seconds=1.5",))
        slow.start()
        wait_until(
            "the slow request",
            lambda: any(event == "slow started" for _, event in server.events()),
            timeout=10,
        )
        assert http.post("/drain").status_code == 200
        slow.join(timeout=15)
        wait_until(
            "the stopped state", lambda: http.get("/health").json()["state"] == "stopped", 20
        )
        report = http.post("/drain").json()["report"]

        # 5. No navigate call: the page's own refresh must bring the timeline.
        def redrawn() -> Any:
            browser.wait_event("Page.loadEventFired", timeout=10)
            try:
                page = browser.evaluate(DOM)
            except RuntimeError:
                return None  # a stale load event: the next reload replaced the document
            return page if page["phases"] else None

        after = wait_until("the page redrawing the shutdown", redrawn, timeout=30)
        assert [phase["name"] for phase in after["phases"]] == [p["name"] for p in report["phases"]]
        assert [p["name"] for p in report["phases"]][:3] == ["draining", "closing", "stopping"]
        for drawn, phase in zip(after["phases"], report["phases"], strict=True):
            share = phase["duration"] / report["duration"]
            if share > 0.05:  # slivers have a minimum width
                assert drawn["width"] / after["bar"] == pytest.approx(share, abs=0.01)
        assert "not clean" in after["shutdown"]
        assert f"{EVIL} (task) stuck at" in after["shutdown"]
        assert after["title"] == TITLE
        # 6. Reloaded by the test from here on, so each step starts on a fresh document.
        browser.navigate(url)
        png = browser.screenshot()
        assert png_size(png)[0] == browser.window[0]
        if keep := os.environ.get("TASKS_PAGE_SCREENSHOT"):
            Path(keep).write_bytes(png)
        # 7.
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            width=400,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )
        assert browser.load_and_evaluate(url, DOM)["scrollWidth"] <= 400
        # 8.
        for page in (before, after):
            assert (page["xss"], page["active"]) == (None, 0)
    methods = {event["method"] for event in browser.seen}
    assert "Page.javascriptDialogOpening" not in methods
    assert "Runtime.exceptionThrown" not in methods
    complaints = [
        event["params"]["entry"]
        for event in browser.seen
        if event["method"] == "Log.entryAdded" and event["params"]["entry"]["source"] != "network"
    ]
    assert complaints == []
