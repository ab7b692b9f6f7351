"""The last shutdown drawn as a timeline: one inline-SVG box per phase, as wide as it lasted.

Positions are percentages of the shutdown's duration, so the drawing scales with the window
and needs no script. Each box clips its own label (a nested ``<svg>`` is a clipping viewport),
and the legend below repeats every name and duration for the phases too short to label.
Durations, tick labels included, are written by `report.format_duration`, as in the log line;
the ticks fall on steps that it writes distinctly (no finer than 10 ms, whole minutes and
hours beyond a minute).
"""

from __future__ import annotations

import math
from html import escape

from asgi_supervisor._core.report import ShutdownReport, format_duration

from .page_style import PHASE_CLASSES

__all__ = ["timeline_svg"]

_BAR_HEIGHT = 34
_AXIS_Y = 42
_MIN_WIDTH = 0.4  # percent: a phase that took no time still shows as a sliver
# Seconds between ticks, the smallest one that leaves at most about six; beyond the last, whole
# hours. None is finer than the 10 ms `format_duration` writes below 10 s.
_TICK_STEPS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600)


def timeline_svg(report: ShutdownReport) -> str:
    """An SVG timeline of *report*'s phases, and its legend."""
    phases = report.phases
    if not phases:
        return "<p class=empty>This shutdown recorded no phases.</p>"
    total = max(report.duration, *(p.start + p.duration for p in phases))
    if not total > 0:
        total = 1.0  # every phase took no time: draw slivers on a nominal scale
    boxes = []
    legend = []
    for phase in phases:
        label = escape(phase.name)
        css = PHASE_CLASSES.get(phase.name, "ph-other")
        x = min(phase.start / total * 100, 100 - _MIN_WIDTH)
        width = min(max(phase.duration / total * 100, _MIN_WIDTH), 100 - x)
        took = format_duration(phase.duration)
        began = format_duration(phase.start)
        boxes.append(
            f'<g class="phase" data-phase="{label}">'
            f"<title>{label}: from {began} for {took}</title>"
            f'<rect class="{css}" x="{x:.3f}%" y="0" width="{width:.3f}%" '
            f'height="{_BAR_HEIGHT}" rx="3"/>'
            f'<svg x="{x:.3f}%" y="0" width="{width:.3f}%" height="{_BAR_HEIGHT}">'
            f'<text x="6" y="15">{label}</text><text class="dur" x="6" y="29">{took}</text>'
            "</svg></g>"
        )
        legend.append(
            f'<li><span class="swatch {css}"></span>{label} <b>{took}</b> '
            f'<span class="muted">from {began}</span></li>'
        )
    summary = ", ".join(f"{escape(p.name)} {format_duration(p.duration)}" for p in phases)
    return (
        f'<svg class="timeline" role="img" aria-label="Shutdown phases: {summary}">'
        f"{''.join(boxes)}{_axis(total)}</svg>"
        f'<ol class="legend">{"".join(legend)}</ol>'
    )


def _axis(total: float) -> str:
    """A baseline with a few ticks on a round step (`_TICK_STEPS`)."""
    step = _tick_step(total)
    parts = [f'<line class="axis" x1="0" x2="100%" y1="{_AXIS_Y}" y2="{_AXIS_Y}"/>']
    count = int(total / step + 1e-9)
    for n in range(count + 1):
        at = n * step / total * 100
        anchor = "start" if n == 0 else "end" if at > 96 else "middle"
        parts.append(
            f'<line class="axis" x1="{at:.3f}%" x2="{at:.3f}%" y1="{_AXIS_Y}" '
            f'y2="{_AXIS_Y + 4}"/>'
            f'<text class="tick" x="{at:.3f}%" y="{_AXIS_Y + 17}" '
            f'text-anchor="{anchor}">{format_duration(n * step)}</text>'
        )
    return "".join(parts)


def _tick_step(total: float) -> float:
    rough = total / 6
    for step in _TICK_STEPS:
        if step >= rough:
            return float(step)
    return 3600.0 * math.ceil(rough / 3600)
