"""A headless Chromium driven over the Chrome DevTools Protocol, for tests that load pages.

Chromium listens for the protocol on a loopback port it picks itself (``--remote-debugging-
port=0``) and writes that port to ``DevToolsActivePort`` in its profile; the profile is a
temporary directory of the test. The process gets a session of its own, so `Browser.close`
kills exactly the process group this module started, and nothing else. Every wait is bounded.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.servers._started import Started

Event = dict[str, Any]


def chromium_path() -> str:
    """Debian's Chromium; missing, it fails the test in CI and skips it elsewhere."""
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; `make test` installs it (.ci/system-deps)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


class Browser(Started):
    """One headless Chromium with one page, and a protocol session on that page.

    Example::

        with Browser(tmp_path) as browser:
            browser.navigate("http://127.0.0.1:8000/_supervisor/tasks")
            title = browser.evaluate("document.title")
    """

    def __init__(self, tmp_path: Path, *, window: tuple[int, int] = (1280, 900)) -> None:
        self.profile = tmp_path / "chromium-profile"
        self.window = window
        # Events not yet waited for, and every event ever received (for after-the-fact checks).
        self.events: list[Event] = []
        self.seen: list[Event] = []
        self._ids = itertools.count(1)
        self._process: subprocess.Popen[bytes] | None = None
        self._socket: ClientConnection | None = None
        self._closing = contextlib.ExitStack()
        self.log_path = tmp_path / "chromium.log"

    def start(self, timeout: float = 30.0) -> None:
        """Start Chromium and attach to its first page."""
        width, height = self.window
        command = [
            chromium_path(),
            "--headless=new",
            "--no-sandbox",  # the tests run as root in a container
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--window-size={width},{height}",
            f"--user-data-dir={self.profile}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "about:blank",
        ]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout
        port = self._wait_for_port(deadline)
        while True:
            try:
                targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=5.0).json()
            except httpx.TransportError:
                targets = []  # the port file can appear a moment before the port answers
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                break
            self._check_deadline(deadline, "its first page")
            time.sleep(0.1)
        # Entered as a context manager: websockets 17 deprecates a bare connect().
        self._socket = self._closing.enter_context(
            connect(pages[0]["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
        )
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")

    def _wait_for_port(self, deadline: float) -> int:
        port_file = self.profile / "DevToolsActivePort"
        while True:
            assert self._process is not None
            if self._process.poll() is not None:
                raise RuntimeError(f"chromium exited early:\n{self.output()}")
            if port_file.exists():
                first_line = port_file.read_text().split("\n", 1)[0]
                if first_line.isdigit():
                    return int(first_line)
            self._check_deadline(deadline, "its DevTools port")
            time.sleep(0.1)

    def _check_deadline(self, deadline: float, what: str) -> None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"chromium did not report {what} in time:\n{self.output()}")

    def output(self) -> str:
        """What Chromium printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def call(self, method: str, timeout: float = 20.0, **params: Any) -> dict[str, Any]:
        """Send one protocol command and return its result, keeping events that arrive meanwhile.

        Raises:
            RuntimeError: the browser answered with an error.
            TimeoutError: no answer within *timeout* seconds.
        """
        assert self._socket is not None
        message_id = next(self._ids)
        self._socket.send(json.dumps({"id": message_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = self._receive(deadline, method)
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method} failed: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result

    def _receive(self, deadline: float, waiting_for: str) -> dict[str, Any]:
        assert self._socket is not None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no answer to {waiting_for} in time")
        try:
            raw = self._socket.recv(timeout=remaining)
        except TimeoutError:
            raise TimeoutError(f"no answer to {waiting_for} in time") from None
        message: dict[str, Any] = json.loads(raw)
        if "method" in message:
            self.events.append(message)
            self.seen.append(message)
        return message

    def wait_event(
        self, method: str, timeout: float, where: Callable[[Event], bool] = lambda e: True
    ) -> Event:
        """The first event named *method* (and matching *where*) not yet waited for."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for index in range(seen, len(self.events)):
                event = self.events[index]
                if event["method"] == method and where(event):
                    del self.events[: index + 1]
                    return event
            seen = len(self.events)
            self._receive(deadline, method)

    def navigate(self, url: str, timeout: float = 20.0) -> None:
        """Load *url* and wait for its load event."""
        self.events.clear()
        self.call("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired", timeout)

    def evaluate(self, expression: str) -> Any:
        """The JSON value of *expression* evaluated in the page.

        Raises:
            RuntimeError: the expression threw.
        """
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            error = details.get("exception", {}).get("description") or details.get("text")
            raise RuntimeError(f"the page's script threw: {error}")
        return result["result"].get("value")

    def load_and_evaluate(self, url: str, expression: str, attempts: int = 3) -> Any:
        """Load *url*, then evaluate *expression* in it.

        A page that reloads itself may replace its document between the two; the pair is then
        tried again, up to *attempts* times.
        """
        for attempt in range(attempts):
            self.navigate(url)
            try:
                return self.evaluate(expression)
            except RuntimeError:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("not reached: the last attempt returns or raises")

    def screenshot(self) -> bytes:
        """A PNG of the whole page, as tall as its content."""
        width = self.window[0]
        height = int(self.evaluate("document.documentElement.scrollHeight"))
        clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
        shot = self.call(
            "Page.captureScreenshot", format="png", clip=clip, captureBeyondViewport=True
        )
        return base64.b64decode(shot["data"])

    def stop(self) -> None:
        """Close the session and kill the process group this browser started."""
        self._closing.close()
        self._socket = None
        if self._process is None or self._process.poll() is not None:
            return
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        self._process.wait(timeout=10)
