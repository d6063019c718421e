"""Small inline SVG line charts for a patient's trajectories, with a text alternative.

Written by hand rather than with matplotlib: a patient page draws three charts per request, and a
plain polyline costs well under a millisecond, while matplotlib costs tens of milliseconds per figure
and its pyplot state is not safe across the server's threads.  Every chart has a ``<title>`` and a
``<desc>`` that says what it shows in words; the page puts the same numbers in a table beside it.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence

from markupsafe import Markup, escape

Point = tuple[dt.datetime, float]


def _ticks(lo: float, hi: float, n: int = 4) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start = math.ceil(lo / step) * step
    return [round(start + i * step, 10) for i in range(int((hi - start) / step) + 1)]


def line_chart(points: Sequence[Point], *, title: str, unit: str, chart_id: str, markers: Sequence[dt.datetime] = (),
               marker_label: str = "session", width: int = 640, height: int = 200) -> Markup:
    """An SVG chart of ``points`` (time, value in ``unit``); ``markers`` are drawn as ticks along the bottom."""
    if not points:
        return Markup(f'<p class="muted" id="{escape(chart_id)}">No {escape(title.lower())} recorded.</p>')
    pad_l, pad_r, pad_t, pad_b = 48, 12, 12, 30
    times = [p[0] for p in points] + list(markers)
    t0, t1 = min(times), max(times)
    span = max((t1 - t0).total_seconds(), 86400.0)
    values = [p[1] for p in points]
    lo, hi = min(values), max(values)
    margin = max((hi - lo) * 0.1, abs(hi) * 0.02, 1e-9)
    lo, hi = lo - margin, hi + margin

    def x(t: dt.datetime) -> float:
        return pad_l + (width - pad_l - pad_r) * (t - t0).total_seconds() / span

    def y(v: float) -> float:
        return pad_t + (height - pad_t - pad_b) * (1 - (v - lo) / (hi - lo))

    first, last = points[0], points[-1]
    desc = (f"{title} from {first[0]:%d %b %Y} to {last[0]:%d %b %Y}: {len(points)} readings, first {first[1]:.1f}, "
            f"last {last[1]:.1f}, lowest {min(values):.1f}, highest {max(values):.1f} {unit}"
            + (f"; {len(markers)} {marker_label}s marked along the bottom." if markers else "."))
    parts = [f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-labelledby="{chart_id}-t {chart_id}-d" '
             f'xmlns="http://www.w3.org/2000/svg"><title id="{chart_id}-t">{escape(title)} ({escape(unit)})</title>'
             f'<desc id="{chart_id}-d">{escape(desc)}</desc>']
    for v in _ticks(lo, hi):
        parts.append(f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{y(v):.1f}" y2="{y(v):.1f}" class="grid"/>'
                     f'<text x="{pad_l - 6}" y="{y(v) + 4:.1f}" text-anchor="end" class="tick">{v:g}</text>')
    for t, anchor in ((t0, "start"), (t0 + (t1 - t0) / 2, "middle"), (t1, "end")):
        parts.append(f'<text x="{x(t):.1f}" y="{height - 8}" text-anchor="{anchor}" class="tick">{t:%d %b %Y}</text>')
    for t in markers:
        parts.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{height - pad_b}" y2="{height - pad_b - 8}" class="marker"/>')
    poly = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
    parts.append(f'<polyline points="{poly}" class="line"/>')
    parts.extend(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.5" class="dot"/>' for t, v in points)
    parts.append("</svg>")
    return Markup("".join(parts))
