"""The stylesheet of the `/tasks` page, and which class colours which state or phase.

One constant string: the page's Content-Security-Policy allows exactly this stylesheet by its
SHA-256 hash, so it must not vary between requests. No ``style=`` attribute is used anywhere
(the policy would refuse it); colours come from classes, widths from SVG attributes.
"""

from __future__ import annotations

from asgi_supervisor._core.lifecycle import State
from asgi_supervisor._core.registry import Ending
from asgi_supervisor._core.worker_state import WorkerState

__all__ = ["CSS", "PHASE_CLASSES", "STATE_CLASSES"]

# Badge colour of each state or ending the payload shows, by the vocabulary that spells it;
# words with no entry (``stopped``) get the neutral badge.
_BADGES: dict[State | WorkerState | Ending, str] = {
    State.STARTING: "info",
    State.READY: "ok",
    State.DRAINING: "warn",
    State.CLOSING: "warn",
    State.STOPPING: "bad",
    State.FAILED: "bad",
    WorkerState.RUNNING: "ok",
    WorkerState.RESTARTING: "warn",
    WorkerState.COMPLETED: "ok",
    WorkerState.FAILED: "bad",
    WorkerState.ABANDONED: "bad",
    Ending.COMPLETED: "ok",
    Ending.CANCELLED: "warn",
    Ending.FAILED: "bad",
}
STATE_CLASSES = {member.value: badge for member, badge in _BADGES.items()} | {
    # The report's verdicts, and a task whose cancellation is under way.
    "clean": "ok",
    "not clean": "bad",
    "forced": "warn",
    "cancelling": "warn",
}

# Fill of each shutdown phase in the timeline; a phase the core adds later gets `ph-other`.
PHASE_CLASSES = {
    state.value: f"ph-{state.value}"
    for state in (State.DRAINING, State.CLOSING, State.STOPPING, State.STOPPED)
}

CSS = """\
:root{color-scheme:light;--fg:#1c2430;--muted:#5d6977;--line:#e2e6eb;--bg:#f4f6f8;--card:#fff}
*{box-sizing:border-box}
body{margin:0;padding:1rem clamp(.6rem,3vw,2rem);background:var(--bg);color:var(--fg);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",sans-serif}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:.35rem .9rem;margin:0 0 .9rem}
h1{font-size:1.2rem;margin:0}
h2{font-size:.95rem;margin:0 0 .55rem}
h3{font-size:.85rem;margin:.8rem 0 .3rem}
section{background:var(--card);border:1px solid var(--line);border-radius:8px;
padding:.75rem 1rem;margin:0 0 .9rem;overflow-x:auto}
table{width:100%;border-collapse:collapse}
th,td{text-align:left;padding:.32rem .55rem;border-bottom:1px solid var(--line);vertical-align:top}
tbody tr:last-child td{border-bottom:0}
th{font-size:.7rem;text-transform:uppercase;letter-spacing:.05em;color:var(--muted);
font-weight:600;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.wide{min-width:16rem}
.name{font-weight:600;overflow-wrap:anywhere}
code,pre{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;overflow-wrap:anywhere}
pre{white-space:pre-wrap;margin:.3rem 0 0}
.chain{color:var(--muted);font-size:12px;overflow-wrap:anywhere}
.muted{color:var(--muted)}
.empty{color:var(--muted);font-style:italic;margin:.2rem 0}
.badge{display:inline-block;padding:0 .5rem;border-radius:999px;font-size:12px;font-weight:600;
background:#e9edf2;color:#39424e;white-space:nowrap}
.ok{background:#daf3e1;color:#17602f}
.info{background:#dde9fb;color:#1e4f99}
.warn{background:#fdf0d5;color:#7f4d00}
.bad{background:#fbe0de;color:#9d1f19}
.timeline{display:block;width:100%;height:66px;margin:.5rem 0 .25rem;overflow:visible}
.timeline text{font:12px system-ui,sans-serif;fill:#fff}
.timeline .dur{font-size:11px;opacity:.9}
.timeline .axis{stroke:#9aa5b1;stroke-width:1}
.timeline .tick{fill:var(--muted);font-size:11px}
.phase rect{stroke:#fff;stroke-width:1}
.ph-draining{fill:#3b7de0;background:#3b7de0}
.ph-closing{fill:#e39a1f;background:#e39a1f}
.ph-stopping{fill:#d2483f;background:#d2483f}
.ph-stopped{fill:#7b8794;background:#7b8794}
.ph-other{fill:#8a63d2;background:#8a63d2}
.legend{display:flex;flex-wrap:wrap;gap:.25rem 1.1rem;list-style:none;padding:0;margin:0 0 .6rem;
font-size:12px}
.swatch{display:inline-block;width:.7rem;height:.7rem;border-radius:2px;margin-right:.3rem;
vertical-align:-1px}
.stats{display:flex;flex-wrap:wrap;gap:.45rem 2rem;margin:0}
.stats dt{font-size:.7rem;text-transform:uppercase;letter-spacing:.05em;color:var(--muted)}
.stats dd{margin:0;font-variant-numeric:tabular-nums}
.abandoned{margin:0;padding-left:1.2rem}
@media (max-width:42rem){
thead{display:none}
table,tbody,tr,td{display:block}
tr{padding:.4rem 0;border-bottom:1px solid var(--line)}
tbody tr:last-child{border-bottom:0}
td,td.num{display:flex;gap:.6rem;border:0;padding:.08rem 0;text-align:left;white-space:normal}
td.wide{min-width:0}
td::before{content:attr(data-label);flex:0 0 5.5rem;color:var(--muted);font-size:12px}
td>*{min-width:0}
}
"""
