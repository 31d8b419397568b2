"""Charts as standalone SVG files: a job's loss curves and an evaluation's metrics, for downloads.

The dashboard draws its interactive charts with uPlot (``web/static/js/chart.js``);
these are the files a user downloads or puts in a report, so they must render
anywhere without JavaScript. A plotting library (matplotlib) would add a large
dependency for two simple charts, so this writes plain SVG: axes with
ticks, one polyline per series, a legend. Every label is XML-escaped.
"""

from __future__ import annotations

import math
from xml.sax.saxutils import escape

COLORS = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2")
W, H, PAD_L, PAD_R, PAD_T, PAD_B = 640, 360, 60, 20, 36, 44


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for mult in (1, 2, 5, 10):
        if (hi - lo) / (step * mult) <= n:
            step *= mult
            break
    start = math.ceil(lo / step) * step
    return [round(start + i * step, 10) for i in range(int((hi - start) / step) + 1)]


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def _frame(title: str) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
            'font-family="sans-serif" font-size="12">',
            f'<rect width="{W}" height="{H}" fill="white"/>',
            f'<text x="{W / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>']  # fmt: skip


def line_chart(title: str, series: dict[str, list[tuple[float, float]]], x_label: str = "step") -> str:
    """An SVG line chart of ``series`` (name -> (x, y) points); series without points are skipped."""
    points = [p for values in series.values() for p in values if math.isfinite(p[1])]
    out = _frame(title)
    if not points:
        out.append(f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle">no data</text></svg>')
        return "\n".join(out)
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)
    sx = lambda x: PAD_L + (x - x0) / (x1 - x0) * (W - PAD_L - PAD_R)  # noqa: E731
    sy = lambda y: H - PAD_B - (y - y0) / (y1 - y0) * (H - PAD_T - PAD_B)  # noqa: E731
    out.append(f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" stroke="#333"/>')
    out.append(f'<line x1="{PAD_L}" y1="{PAD_T}" x2="{PAD_L}" y2="{H - PAD_B}" stroke="#333"/>')
    for t in _ticks(x0, x1):
        out.append(f'<text x="{sx(t):.1f}" y="{H - PAD_B + 16}" text-anchor="middle">{_fmt(t)}</text>')
    for t in _ticks(y0, y1):
        out.append(f'<line x1="{PAD_L}" y1="{sy(t):.1f}" x2="{W - PAD_R}" y2="{sy(t):.1f}" stroke="#eee"/>')
        out.append(f'<text x="{PAD_L - 6}" y="{sy(t) + 4:.1f}" text-anchor="end">{_fmt(t)}</text>')
    out.append(f'<text x="{W / 2}" y="{H - 8}" text-anchor="middle">{escape(x_label)}</text>')
    for i, (name, values) in enumerate(item for item in series.items() if item[1]):
        color = COLORS[i % len(COLORS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in values if math.isfinite(y))
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"><title>{escape(name)}</title></polyline>')
        out.append(f'<rect x="{W - PAD_R - 130}" y="{PAD_T + i * 18}" width="12" height="12" fill="{color}"/>')
        out.append(f'<text x="{W - PAD_R - 112}" y="{PAD_T + i * 18 + 11}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def bar_chart(title: str, groups: dict[str, dict[str, float]]) -> str:
    """Grouped bars: one group per metric, one bar per side (e.g. base and tuned), value labels on top."""
    out = _frame(title)
    metrics = list(dict.fromkeys(m for side in groups.values() for m in side))
    values = [v for side in groups.values() for v in side.values() if math.isfinite(v)]
    if not metrics or not values:
        out.append(f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle">no data</text></svg>')
        return "\n".join(out)
    top = max(max(values), 1e-9)
    slot = (W - PAD_L - PAD_R) / len(metrics)
    width = slot * 0.8 / max(1, len(groups))
    out.append(f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" stroke="#333"/>')
    for m, metric in enumerate(metrics):
        for s, (side, scores) in enumerate(groups.items()):
            value = scores.get(metric)
            if value is None or not math.isfinite(value):
                continue
            height = max(0.0, value) / top * (H - PAD_T - PAD_B - 16)
            x = PAD_L + m * slot + slot * 0.1 + s * width
            out.append(f'<rect x="{x:.1f}" y="{H - PAD_B - height:.1f}" width="{width:.1f}" height="{height:.1f}" '
                       f'fill="{COLORS[s % len(COLORS)]}"><title>{escape(side)} {escape(metric)}</title></rect>')  # fmt: skip
            out.append(f'<text x="{x + width / 2:.1f}" y="{H - PAD_B - height - 3:.1f}" text-anchor="middle" '
                       f'font-size="10">{_fmt(value)}</text>')  # fmt: skip
        out.append(f'<text x="{PAD_L + (m + 0.5) * slot:.1f}" y="{H - PAD_B + 16}" text-anchor="middle">{escape(metric)}</text>')
    for s, side in enumerate(groups):
        out.append(f'<rect x="{PAD_L + s * 150}" y="{H - 18}" width="12" height="12" fill="{COLORS[s % len(COLORS)]}"/>')
        out.append(f'<text x="{PAD_L + s * 150 + 18}" y="{H - 8}">{escape(side)}</text>')
    out.append("</svg>")
    return "\n".join(out)
