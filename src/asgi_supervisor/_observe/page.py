"""`/tasks` for a browser: the same payload as the JSON, drawn as one self-refreshing page.

`render_tasks_page` is a pure function of the JSON payload, the workers and the last shutdown
report, so it is tested without a server. The report section says what the log line says, in
the same words (`report.tallies`), and every duration on the page, a task's age included, is
written by `report.format_duration`. Every value it shows may come from users (task
names, error messages, file paths): each goes through `html.escape`, and the page carries a
Content-Security-Policy that allows no script at all, so a value that escaped escaping would
still not run. The page loads nothing from elsewhere (pods often have no internet): its CSS is
inline and allowed by its hash, the timeline is inline SVG, and it refreshes itself with
``<meta http-equiv="refresh">``, which repeats the same request with the same credentials.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Mapping, Sequence
from html import escape
from typing import TYPE_CHECKING, Any

from asgi_supervisor._core.report import ShutdownReport, Tally, format_duration, tallies

from .page_style import CSS, STATE_CLASSES
from .timeline import timeline_svg

if TYPE_CHECKING:
    from asgi_supervisor._supervisor.supervisor import Supervisor

__all__ = ["HtmlPage", "notice_page", "render_tasks_page", "tasks_page"]

REFRESH_PERIOD = 2
_STYLE_HASH = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
# No script, no fetch, no frame, no form: the page is text and one stylesheet.
_CSP = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; img-src data:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
# Besides the type, length and no-store every endpoint answer has (`_asgi.response`).
_HEADERS = [
    (b"content-security-policy", _CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"vary", b"Accept"),
]


class HtmlPage:
    """An HTML answer of an endpoint, to be sent with `headers` (a strict
    Content-Security-Policy among them)."""

    __slots__ = ("body",)

    content_type = b"text/html; charset=utf-8"
    headers = _HEADERS

    def __init__(self, html: str) -> None:
        self.body = html.encode()


def tasks_page(supervisor: Supervisor, payload: dict[str, Any]) -> HtmlPage:
    """The page for *payload*, with *supervisor*'s workers and last shutdown report."""
    workers = [
        {"name": w.name, "state": w.state.value, "restarts": w.restarts, "last_error": w.last_error}
        for w in supervisor.workers()
    ]
    page = render_tasks_page(payload, workers, supervisor.last_report, generated_at=time.time())
    return HtmlPage(page)


def notice_page(title: str, text: str, *, link: tuple[str, str], moving: bool = False) -> HtmlPage:
    """A short page in the tasks page's style: *title*, the sentence *text*, and *link*
    (its path and words); with *moving*, the page goes on to the link by itself at once.

    For the login link's answers (`_asgi.login`); every value is escaped.
    """
    href, words = link
    refresh = f'<meta http-equiv="refresh" content="0;url={_e(href)}">' if moving else ""
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        refresh,
        f"<title>{_e(title)} · asgi-supervisor</title>",
        f"<style>{CSS}</style></head><body>",
        f"<header><h1>asgi-supervisor</h1><span>{_e(title)}</span></header>",
        f'<section id="notice"><p>{_e(text)}</p><p><a href="{_e(href)}">{_e(words)}</a></p>',
        "</section></body></html>",
    ]
    return HtmlPage("\n".join(parts))


def render_tasks_page(
    payload: Mapping[str, Any],
    workers: Sequence[Mapping[str, Any]],
    report: ShutdownReport | None,
    *,
    generated_at: float,
    refresh_period: int = REFRESH_PERIOD,
) -> str:
    """The HTML page for one `/tasks` payload.

    Args:
        payload: what `tasks_payload` returns (tasks, history, state, paging).
        workers: each worker's ``name``, ``state``, ``restarts`` and ``last_error``.
        report: the last shutdown's report, or None before any.
        generated_at: wall-clock time of the payload (``time.time()``), shown in UTC.
        refresh_period: seconds between the page's reloads of itself.
    """
    state = str(payload.get("state", "unknown"))
    tasks = payload.get("tasks", [])
    total = payload.get("total", len(tasks))
    shown = f"{len(tasks)} of {total}" if total != len(tasks) else str(total)
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="refresh" content="{int(refresh_period)}">',
        "<title>tasks · asgi-supervisor</title>",
        f"<style>{CSS}</style></head><body>",
        "<header><h1>asgi-supervisor</h1>",
        f"{_badge(state)}<span class=muted>{_e(shown)} live · as of "
        f"{_clock(generated_at)} UTC · refreshes every {int(refresh_period)} s</span></header>",
        _section("live", f"Live tasks ({_e(shown)})", _tasks_table(tasks)),
        _section("workers", f"Workers ({len(workers)})", _workers_table(workers)),
        _section("shutdown", f"Last shutdown {_verdict(report)}", _shutdown(report)),
        _section("history", "Finished tasks", _history_table(payload.get("history", []))),
        "</body></html>",
    ]
    return "\n".join(parts)


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _badge(value: object) -> str:
    css = STATE_CLASSES.get(str(value), "")
    return f'<span class="badge {css}">{_e(value)}</span>'


def _section(id_: str, title: str, body: str) -> str:
    return f'<section id="{id_}"><h2>{title}</h2>{body}</section>'


def _table(headings: Sequence[str], rows: list[str], empty: str) -> str:
    if not rows:
        return f"<p class=empty>{_e(empty)}</p>"
    head = "".join(f"<th>{_e(h)}</th>" for h in headings)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _cell(label: str, content: str, css: str = "") -> str:
    # data-label heads each cell when a narrow window stacks the table (see the CSS).
    cls = f' class="{css}"' if css else ""
    return f'<td data-label="{_e(label)}"{cls}>{content}</td>'


def _tasks_table(tasks: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for task in tasks:
        where = task.get("where")
        chain = task.get("awaiting") or []
        place = f"<code>{_e(where)}</code>" if where else "<span class=muted>—</span>"
        if chain:
            place += f'<div class="chain">{" → ".join(_e(link) for link in chain)}</div>'
        # Known from Python 3.14 on (None before): the tasks waiting for this one, by row id.
        if awaited_by := task.get("awaited_by"):
            names = ", ".join(f"{_e(a.get('name'))} (#{_e(a.get('id'))})" for a in awaited_by)
            place += f'<div class="chain">awaited by {names}</div>'
        if task.get("stack"):
            place += f"<details><summary>stack</summary><pre>{_e(''.join(task['stack']))}</pre>"
            place += "</details>"
        rows.append(
            f'<tr data-kind="{_e(task.get("kind"))}">'
            + _cell("ID", _e(task.get("id")), "num")
            + _cell("Kind", _e(task.get("kind")))
            + _cell("Name", f'<span class="name">{_e(task.get("name"))}</span>')
            + _cell("State", _badge(task.get("state")))
            + _cell("Age", _duration(task.get("age")), "num")
            + _cell("Waiting in", f"<div>{place}</div>", "wide")
            + "</tr>"
        )
    return _table(("ID", "Kind", "Name", "State", "Age", "Waiting in"), rows, "No live tasks.")


def _workers_table(workers: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        "<tr>"
        + _cell("Name", f'<span class="name">{_e(w.get("name"))}</span>')
        + _cell("State", _badge(w.get("state")))
        + _cell("Restarts", _e(w.get("restarts", 0)), "num")
        + _cell("Last error", _optional(w.get("last_error")), "wide")
        + "</tr>"
        for w in workers
    ]
    return _table(("Name", "State", "Restarts", "Last error"), rows, "No workers registered.")


def _history_table(history: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        "<tr>"
        + _cell("Ended", _clock(item.get("finished_at")), "num")
        + _cell("Kind", _e(item.get("kind")))
        + _cell("Name", f'<span class="name">{_e(item.get("name"))}</span>')
        + _cell("Ending", _badge(item.get("ending")))
        + _cell("Ran", _duration(item.get("duration")), "num")
        + _cell("Detail", _optional(item.get("detail")), "wide")
        + "</tr>"
        for item in history
    ]
    headings = ("Ended (UTC)", "Kind", "Name", "Ending", "Ran", "Detail")
    return _table(headings, rows, "No task has finished yet.")


def _shutdown(report: ShutdownReport | None) -> str:
    if report is None:
        return "<p class=empty>No shutdown yet: the timeline appears once one has ended.</p>"
    facts = [
        ("Trigger", _e(report.trigger)),
        ("Began", f"{_clock(report.started_at)} UTC"),
        ("Took", format_duration(report.duration)),
        *((tally.label.capitalize(), _tally(tally)) for tally in tallies(report)),
        *((("Not clean", _e("; ".join(report.reasons))),) if report.reasons else ()),
    ]
    stats = "".join(f"<div><dt>{name}</dt><dd>{value}</dd></div>" for name, value in facts)
    parts = [timeline_svg(report), f'<dl class="stats">{stats}</dl>']
    if report.abandoned:
        items = "".join(
            f'<li><span class="name">{_e(task.name)}</span> ({_e(task.kind)}) stuck at '
            f"<code>{_e(task.where or '?')}</code></li>"
            for task in report.abandoned
        )
        parts.append(f'<h3>Abandoned at the deadline</h3><ul class="abandoned">{items}</ul>')
    return "".join(parts)


def _verdict(report: ShutdownReport | None) -> str:
    if report is None:
        return ""
    verdict = _badge("clean") if report.clean else _badge("not clean")
    return verdict + (" " + _badge("forced") if report.forced else "")


def _tally(tally: Tally) -> str:
    # The log line's words; zeros are muted so the counts that matter stand out.
    return ", ".join(
        _e(words) if count else f"<span class=muted>{_e(words)}</span>"
        for words, count in tally.items
    )


def _optional(value: object) -> str:
    return "<span class=muted>—</span>" if value is None else f"<code>{_e(value)}</code>"


def _clock(stamp: object) -> str:
    if not isinstance(stamp, int | float):
        return "—"
    return time.strftime("%H:%M:%S", time.gmtime(stamp))


def _duration(seconds: object) -> str:
    return format_duration(seconds) if isinstance(seconds, int | float) else "—"
