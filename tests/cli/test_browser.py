"""Opening a login link in a browser without putting it on a command line."""

from __future__ import annotations

import os
import stat
import time
import webbrowser
from pathlib import Path

import pytest

from asgi_supervisor._cli import browser

LINK = "http://127.0.0.1:8000/tasks/login?code=1.abc.def&x=<y>"


def test_the_browser_gets_a_private_file_that_leads_to_the_link(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """1. the browser is given a file:// path that holds no code; 2. the file, readable by
    this user alone in a folder of this user alone, moves on to the link (escaped); 3. once
    the browser has read it, the command returns at once and the file is gone."""
    given: list[str] = []
    seen: dict[str, object] = {}

    def fake_open(url: str) -> bool:
        given.append(url)
        path = Path(url.removeprefix("file://"))
        seen["file"] = stat.S_IMODE(path.stat().st_mode)
        seen["folder"] = stat.S_IMODE(path.parent.stat().st_mode)
        seen["text"] = path.read_text()  # as the browser does
        seen["path"] = path
        return True

    monkeypatch.setattr(webbrowser, "open", fake_open)
    started = time.monotonic()
    assert browser.open_link(LINK, expiry=time.time() + 60)
    assert time.monotonic() - started < 5
    (url,) = given
    assert url.startswith("file://")
    assert "code" not in url
    assert (seen["file"], seen["folder"]) == (0o600, 0o700)
    escaped = "http://127.0.0.1:8000/tasks/login?code=1.abc.def&amp;x=&lt;y&gt;"
    assert f'<meta http-equiv="refresh" content="0;url={escaped}">' in str(seen["text"])
    assert not Path(str(seen["path"])).parent.exists()


def test_no_browser_leaves_no_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """When no browser can be started: False, and the file is gone."""
    paths: list[str] = []

    def no_browser(url: str) -> bool:
        paths.append(url.removeprefix("file://"))
        return False

    monkeypatch.setattr(webbrowser, "open", no_browser)
    assert not browser.open_link(LINK, expiry=time.time() + 60)
    assert not os.path.exists(paths[0])


def test_a_file_never_read_is_waited_for_until_the_link_expires(tmp_path: Path) -> None:
    """An unread file is waited for until the expiry, no longer; a read one not at all."""
    path = tmp_path / "login.html"
    path.write_text("x")
    now = time.time_ns()
    os.utime(path, ns=(now - 2_000_000_000, now - 1_000_000_000))  # as open_link dates it
    started = time.monotonic()
    assert not browser.wait_read(path, expiry=time.time() + 0.3)
    assert 0.25 < time.monotonic() - started < 2
    path.read_text()
    assert browser.wait_read(path, expiry=time.time() + 60)
