"""The last shutdown drawn as a timeline: one inline-SVG box per phase, as wide as it lasted.

Positions are percentages of the shutdown's duration, so the drawing scales with the window
and needs no script. Each box clips its own label (a nested ``<svg>`` is a clipping viewport),
and the legend below repeats every name and duration for the phases too short to label.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from .page_style import PHASE_CLASSES

__all__ = ["timeline_svg"]

_BAR_HEIGHT = 34
_AXIS_Y = 42
_MIN_WIDTH = 0.4  # percent: a phase that took no time still shows as a sliver


def timeline_svg(report: Mapping[str, Any]) -> str:
    """An SVG timeline of *report*'s phases (``ShutdownReport.to_dict()``), and its legend."""
    phases: Sequence[Mapping[str, Any]] = report.get("phases") or []
    if not phases:
        return "<p class=empty>This shutdown recorded no phases.</p>"
    ends = [_number(p.get("start")) + _number(p.get("duration")) for p in phases]
    total = max(_number(report.get("duration")), *ends)
    if total <= 0:
        total = 1.0  # every phase took no time: draw slivers on a nominal scale
    boxes = []
    legend = []
    for phase in phases:
        name = str(phase.get("name"))
        start = _number(phase.get("start"))
        duration = _number(phase.get("duration"))
        css = PHASE_CLASSES.get(name, "ph-other")
        x = min(start / total * 100, 100 - _MIN_WIDTH)
        width = min(max(duration / total * 100, _MIN_WIDTH), 100 - x)
        label = escape(name)
        took = _seconds(duration)
        boxes.append(
            f'<g class="phase" data-phase="{label}">'
            f"<title>{label}: from {_seconds(start)} for {took}</title>"
            f'<rect class="{css}" x="{x:.3f}%" y="0" width="{width:.3f}%" '
            f'height="{_BAR_HEIGHT}" rx="3"/>'
            f'<svg x="{x:.3f}%" y="0" width="{width:.3f}%" height="{_BAR_HEIGHT}">'
            f'<text x="6" y="15">{label}</text><text class="dur" x="6" y="29">{took}</text>'
            "</svg></g>"
        )
        legend.append(
            f'<li><span class="swatch {css}"></span>{label} <b>{took}</b> '
            f'<span class="muted">from {_seconds(start)}</span></li>'
        )
    summary = ", ".join(
        f"{escape(str(p.get('name')))} {_seconds(_number(p.get('duration')))}" for p in phases
    )
    return (
        f'<svg class="timeline" role="img" aria-label="Shutdown phases: {summary}">'
        f"{''.join(boxes)}{_axis(total)}</svg>"
        f'<ol class="legend">{"".join(legend)}</ol>'
    )


def _axis(total: float) -> str:
    """A baseline with a few round-numbered ticks (1, 2 or 5 times a power of ten)."""
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
            f'text-anchor="{anchor}">{_tick_label(n * step)}</text>'
        )
    return "".join(parts)


def _tick_step(total: float) -> float:
    # At most about six ticks, whatever the scale (a 40 ms drain or a 30 s one).
    rough = total / 6
    power = 10 ** math.floor(math.log10(rough))
    for factor in (1, 2, 5, 10):
        if factor * power >= rough:
            return float(factor * power)
    return float(10 * power)  # not reached: factor 10 always covers `rough`


def _tick_label(seconds: float) -> str:
    text = f"{seconds:.3f}".rstrip("0").rstrip(".")
    return f"{text} s"


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def _number(value: object) -> float:
    # The report comes from this library, but the page must never fail on a missing field.
    if isinstance(value, int | float) and math.isfinite(value) and value >= 0:
        return float(value)
    return 0.0
