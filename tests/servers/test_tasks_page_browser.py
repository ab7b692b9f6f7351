"""The /tasks page in a real headless Chromium, served by a real uvicorn.

Set ``TASKS_PAGE_SCREENSHOT`` to a path to keep the screenshot (the docs'
``docs/tasks-page.png`` is made so).
"""

from __future__ import annotations

import os
import stat
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers._browser import Browser
from tests.servers._process import ServerProcess, cli

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
        url = f"{server.base_url}/_supervisor/tasks"
        # 1.
        assert http.post("/spawn", params={"name": EVIL}).status_code == 200
        assert http.post("/spawn", params={"name": FAILING, "what": "fail"}).status_code == 200
        wait_until(
            "the crashing worker giving up",
            lambda: (
                http.get("/_supervisor/health").json()["workers"]["crash-loop"]["state"] == "failed"
            ),
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
        assert http.post("/_supervisor/drain").status_code == 200
        slow.join(timeout=15)
        wait_until(
            "the stopped state",
            lambda: http.get("/_supervisor/health").json()["state"] == "stopped",
            20,
        )
        report = http.post("/_supervisor/drain").json()["report"]

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


PAGE = """(() => ({
  title: document.title,
  href: location.href,
  text: document.body.innerText,
}))()"""


def test_the_page_opens_from_a_one_time_link_with_no_header(tmp_path: Path) -> None:
    """With only the local token (no admin token, no header ever injected): 1. `open` prints
    a link; 2. the browser loads it and lands on the tasks page, the code gone from the
    address; 3. its cookie is HttpOnly, SameSite=Strict, for the page's path; 4. the page's
    own refresh keeps the session; 5. the link a second time is refused with a page saying
    so; 6. `open --browser` hands a fresh link over through a private file the browser
    reads, the command then removes it, and the browser lands on the page again."""
    with (
        ServerProcess("tests.servers.served:app", tmp_path=tmp_path) as server,
        Browser(tmp_path) as browser,
    ):
        server.admin_headers()  # the token file is there
        env = {**server.env, "ASGI_SUPERVISOR_ADMIN_TOKEN": "none"}
        # 1.
        printed = cli("open", server.base_url, env=env)
        assert printed.returncode == 0, printed.stderr
        link = printed.stdout.strip()
        assert link.startswith(f"{server.base_url}/_supervisor/tasks/login?code=")
        # 2.
        landed = browser.load_and_evaluate(link, PAGE)
        assert (landed["title"], landed["href"]) == (TITLE, f"{server.base_url}/_supervisor/tasks")
        # 3.
        page = f"{server.base_url}/_supervisor/tasks"
        (cookie,) = browser.call("Network.getCookies", urls=[page])["cookies"]
        assert cookie["name"].startswith("asgi-supervisor-")
        assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (
            True,
            "Strict",
            "/_supervisor/tasks",
        )
        assert 3500 < cookie["expires"] - time.time() <= 3600
        # 4. No navigate call: the page reloads itself, with the cookie.
        browser.events.clear()
        browser.wait_event("Page.loadEventFired", timeout=10)
        assert (
            wait_until("the reloaded page", lambda: _evaluated(browser), timeout=10)["title"]
            == TITLE
        )
        # 5.
        again = browser.load_and_evaluate(link, PAGE)
        assert "This login link was used already" in again["text"]
        assert "asgi-supervisor open URL" in again["text"]
        # 6.
        handed = tmp_path / "handed.txt"
        opener = tmp_path / "fake-browser"
        opener.write_text(f'#!/bin/sh\necho "$1" >> {handed}\n')
        opener.chmod(0o700)
        browser.call("Network.clearBrowserCookies")
        command = subprocess.Popen(
            [sys.executable, "-m", "asgi_supervisor", "open", server.base_url, "--browser"],
            env={**env, "BROWSER": f"{opener} %s"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            url = wait_until(
                "the file handed over", lambda: handed.exists() and handed.read_text().strip(), 20
            )
            assert url.startswith("file://")
            assert "code" not in url
            # Not read here: the command removes the file once it has been read.
            assert stat.S_IMODE(Path(url.removeprefix("file://")).stat().st_mode) == 0o600
            browser.navigate(url)
            moved = wait_until("the page reached", lambda: _on_page(browser, server.base_url), 20)
            assert moved["title"] == TITLE
            out, err = command.communicate(timeout=20)
        finally:
            if command.poll() is None:
                command.kill()
                command.wait(timeout=10)
        assert command.returncode == 0, err
        assert out.strip().startswith(f"{server.base_url}/_supervisor/tasks/login?code=")
        assert not Path(url.removeprefix("file://")).exists()
    assert not any(event["method"] == "Runtime.exceptionThrown" for event in browser.seen)


def _evaluated(browser: Browser) -> Any:
    try:
        return browser.evaluate(PAGE)
    except RuntimeError:
        return None  # the document was being replaced by the next reload


def _on_page(browser: Browser, base_url: str) -> Any:
    page = _evaluated(browser)
    return page if page and page["href"] == f"{base_url}/_supervisor/tasks" else None
