"""The HTML view of /tasks: escaping, the timeline, who gets it (HTML or JSON), headers, access.

How the Accept header is read is pinned in ``tests/asgi/test_negotiate.py``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
from html.parser import HTMLParser
from typing import Any

import httpx
import pytest

from asgi_supervisor import AbandonedTask, Phase, ShutdownReport, SupervisorMiddleware
from asgi_supervisor._core.report import format_duration
from asgi_supervisor._observe.page import render_tasks_page
from asgi_supervisor.testing import LifespanManager
from tests._inprocess import LOOPBACK, REMOTE, bare_app, quiet_supervisor
from tests.apps import parked

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"
EVIL = "<script>alert(1)</script> \"'&"
EVIL_IMG = "<img src=x onerror=alert(2)>"


def client(app: SupervisorMiddleware, address: tuple[str, int] = LOOPBACK) -> httpx.AsyncClient:
    """An in-process client whose requests come from *address*."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app, client=address), base_url="http://testserver"
    )


class Parsed(HTMLParser):
    """The start tags of a page, with their attributes, and its text."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def payload(**overrides: Any) -> dict[str, Any]:
    """A /tasks payload with one task of each interesting kind."""
    body: dict[str, Any] = {
        "state": "ready",
        "total": 2,
        "count": 2,
        "offset": 0,
        "tasks": [
            {
                "id": 7,
                "name": EVIL,
                "kind": "task",
                "state": "running",
                "age": 1.5,
                "restarts": 0,
                "last_error": None,
                "where": f"/srv/{EVIL_IMG}.py:3 in f",
                "awaiting": ["outer", EVIL_IMG],
                "awaited_by": [{"id": 1, "name": EVIL}],
            },
            {
                "id": 1,
                "name": "consumer",
                "kind": "worker",
                "state": "running",
                "age": 75.0,
                "restarts": 2,
                "last_error": None,
                "where": None,
                "awaiting": [],
                "awaited_by": None,
            },
        ],
        "history": [
            {
                "id": 9,
                "name": EVIL_IMG,
                "kind": "task",
                "ending": "failed",
                "detail": f"ValueError: {EVIL}",
                "duration": 0.25,
                "finished_at": 1_700_000_000.0,
            }
        ],
    }
    return {**body, **overrides}


def report(phases: list[tuple[str, float, float]]) -> ShutdownReport:
    """A report of a shutdown with *phases* as (name, start, duration), that abandoned a task."""
    end = max((start + duration for _, start, duration in phases), default=0.0)
    return ShutdownReport(
        trigger=EVIL,
        forced=False,
        started_at=1_700_000_000.0,
        duration=end,
        phases=tuple(Phase(name=n, start=s, duration=d) for n, s, d in phases),
        requests_drained_count=2,
        requests_rejected_count=1,
        requests_cancelled_count=0,
        websockets_closed={1012: 3},
        tasks_finished_count=1,
        tasks_cancelled_count=1,
        abandoned=(AbandonedTask(id=7, name=EVIL, kind="task", where=EVIL_IMG, stack=()),),
    )


WORKERS = [{"name": EVIL, "state": "restarting", "restarts": 3, "last_error": EVIL_IMG}]
PHASES = [("draining", 0.0, 0.5), ("closing", 0.5, 1.5), ("stopping", 2.0, 2.0)]


def test_every_value_is_escaped() -> None:
    """Names, errors, paths and the trigger appear as text, never as markup."""
    page = render_tasks_page(payload(), WORKERS, report(PHASES), generated_at=0.0)
    parsed = Parsed(page)
    assert {tag for tag, _ in parsed.tags} <= {
        *("html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3", "span"),
        *("section", "table", "thead", "tbody", "tr", "th", "td", "code", "div", "p", "svg"),
        *("g", "rect", "text", "line", "ol", "li", "b", "dl", "dt", "dd", "ul"),
    }
    assert not any(name.startswith("on") for _, attrs in parsed.tags for name in attrs)
    text = "".join(parsed.text)
    for value in (EVIL, EVIL_IMG, f"ValueError: {EVIL}", f"/srv/{EVIL_IMG}.py:3 in f"):
        assert value in text
    assert "<script" not in page
    assert "<img" not in page


def test_sections_show_tasks_workers_history_and_report() -> None:
    """Each section lists its rows: tasks with the await chain and the tasks awaiting them
    (and the stack when asked), workers with restarts, the history with end times."""
    page = render_tasks_page(payload(), WORKERS, report(PHASES), generated_at=0.0)
    rows = [attrs["data-kind"] for tag, attrs in Parsed(page).tags if tag == "tr" and attrs]
    assert rows == ["task", "worker"]
    assert "outer → &lt;img" in page
    assert page.count("awaited by ") == 1  # the worker's is not known (None)
    assert "awaited by &lt;script&gt;alert(1)&lt;/script&gt; &quot;&#x27;&amp; (#1)</div>" in page
    assert re.search(r'data-label="Restarts" class="num">3<', page)
    assert "1 min 15 s" in page  # the worker's age
    assert "22:13:20" in page  # the history entry's end, in UTC
    assert '<meta http-equiv="refresh" content="2">' in page
    stacked = payload()
    stacked["tasks"][0]["stack"] = [f'  File "{EVIL_IMG}.py", line 3, in f\n']
    details = render_tasks_page(stacked, [], None, generated_at=0.0)
    assert "<details><summary>stack</summary><pre>  File &quot;&lt;img src=x" in details


def test_timeline_draws_one_box_per_phase_proportional_to_its_duration() -> None:
    """Box widths are each phase's share of the shutdown; a phase that took 0 s still shows."""
    phases = [*PHASES, ("stopped", 4.0, 0.0)]
    page = render_tasks_page(payload(), [], report(phases), generated_at=0.0)
    boxes = [
        (attrs["class"], float(str(attrs["x"]).rstrip("%")), float(str(attrs["width"]).rstrip("%")))
        for tag, attrs in Parsed(page).tags
        if tag == "rect"
    ]
    assert [css for css, _, _ in boxes] == [
        "ph-draining",
        "ph-closing",
        "ph-stopping",
        "ph-stopped",
    ]
    assert [(x, width) for _, x, width in boxes[:3]] == [(0.0, 12.5), (12.5, 37.5), (50.0, 50.0)]
    assert 0 < boxes[3][2] < 1
    assert page.count('class="phase"') == 4


def test_no_report_and_no_tasks_say_so() -> None:
    """Before any shutdown the page says so instead of drawing an empty timeline."""
    page = render_tasks_page(payload(tasks=[], total=0, history=[]), [], None, generated_at=0.0)
    assert "No shutdown yet" in page
    assert "No live tasks." in page
    assert "No task has finished yet." in page
    assert "<svg" not in page


async def test_endpoint_serves_html_to_browsers_and_json_to_everyone_else() -> None:
    """1. a browser's Accept gets the page with strict headers; 2. */* and no Accept get JSON;
    3. HEAD sends the headers only; 4. the CSP's style hash matches the page's stylesheet."""
    supervisor = quiet_supervisor(admin_token="s3cret")
    app = bare_app(supervisor)
    admin = {"Authorization": "Bearer s3cret"}
    async with LifespanManager(app), client(app) as http:
        supervisor.spawn(parked, name=EVIL)
        await asyncio.sleep(0)
        page = await http.get("/_supervisor/tasks", headers={"Accept": BROWSER, **admin})
        default = await http.get("/_supervisor/tasks", headers={"Accept": "*/*", **admin})
        bare = await http.get("/_supervisor/tasks", headers={"Accept": "", **admin})
        head = await http.head("/_supervisor/tasks", headers={"Accept": BROWSER, **admin})
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    csp = page.headers["content-security-policy"]
    assert csp.startswith("default-src 'none'; style-src 'sha256-")
    style = re.search(r"<style>(.*?)</style>", page.text, re.S)
    assert style is not None
    digest = base64.b64encode(hashlib.sha256(style.group(1).encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert default.headers["content-type"] == bare.headers["content-type"] == "application/json"
    assert default.json()["tasks"][0]["name"] == EVIL
    assert (head.status_code, head.content) == (200, b"")
    assert int(head.headers["content-length"]) == len(page.content)


@pytest.mark.parametrize(
    ("token", "address", "status"),
    [(None, REMOTE, 401), (None, LOOPBACK, 401), ("s3cret", LOOPBACK, 401)],
)
async def test_page_needs_the_same_admin_access_as_the_json(
    token: str | None, address: tuple[str, int], status: int
) -> None:
    """A browser without admin access gets the JSON refusal, never the page."""
    supervisor = quiet_supervisor(admin_token=token)
    app = bare_app(supervisor)
    async with LifespanManager(app), client(app, address) as http:
        refused = await http.get("/_supervisor/tasks", headers={"Accept": BROWSER})
        allowed = await http.get(
            "/_supervisor/tasks", headers={"Accept": BROWSER, "Authorization": f"Bearer {token}"}
        )
    assert refused.status_code == status
    assert refused.headers["content-type"] == "application/json"
    assert "<html" not in refused.text
    if token is not None:
        assert allowed.headers["content-type"] == "text/html; charset=utf-8"


def test_the_report_section_says_what_the_log_line_says() -> None:
    """The shutdown section shows the report's own words: the duration as the line writes
    it, each tally's counts (zeros muted), and each phase's duration in the legend."""
    shown = report([("draining", 0.0, 75.0), ("closing", 75.0, 0.004)])
    page = render_tasks_page(payload(), [], shown, generated_at=0.0)
    section = page[page.index('<section id="shutdown">') :]
    assert "<dt>Took</dt><dd>1 min 15 s</dd>" in section
    assert (
        "<dt>Requests</dt><dd>drained 2, rejected 1, <span class=muted>cancelled 0</span>, "
        "<span class=muted>cut mid-body 0</span></dd>" in section
    )
    assert "<dt>Streams</dt><dd><span class=muted>ended at the notice 0</span></dd>" in section
    assert "<dt>Not clean</dt><dd>1 task abandoned at the deadline (" in section
    assert "<dt>Websockets</dt><dd>closed 1012x3, <span class=muted>cancelled 0</span>" in section
    assert "<dt>Tasks</dt><dd>finished 1, cancelled 1, <span class=muted>failed 0" in section
    line = shown.summary()
    for phase in shown.phases:
        took = format_duration(phase.duration)
        assert f"{phase.name} {took}" in line
        assert f"{phase.name} <b>{took}</b>" in section
    assert "draining <b>1 min 15 s</b>" in section


def test_the_axis_ticks_are_durations_written_the_one_way() -> None:
    """Ticks fall on round steps and read as every other duration does: a 40 ms shutdown
    has 10 ms ticks, a 5 min one whole minutes."""

    def ticks(seconds: float) -> list[str]:
        page = render_tasks_page(
            payload(), [], report([("draining", 0.0, seconds)]), generated_at=0
        )
        return re.findall(r'<text class="tick"[^>]*>([^<]*)</text>', page)

    assert ticks(0.04) == ["0.00 s", "0.01 s", "0.02 s", "0.03 s", "0.04 s"]
    assert ticks(300.0) == ["0.00 s", *(f"{minutes} min 00 s" for minutes in range(1, 6))]
