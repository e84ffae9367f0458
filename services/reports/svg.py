"""Small server-side SVG charts for the reports page.

Drawn here rather than by a JavaScript library: the page works offline (care homes may have
no internet), needs no script, and the charts print. Only presentation attributes are used,
so the strict Content-Security-Policy (no inline styles) holds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

W, H = 640, 240
PAD_L, PAD_R, PAD_T, PAD_B = 48, 12, 16, 40
FG, MUTED, GRID = "#f0f3f6", "#a8b3bf", "#30363d"
BLUE, BAND, ORANGE = "#58a6ff", "#1f6feb", "#ffb347"


def _frame(title: str, body: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" '
        f'aria-label="{escape(title)}" class="chart"><title>{escape(title)}</title>{body}</svg>'
    )


def _scale(lo: float, hi: float, a: float, b: float) -> tuple[float, float]:
    span = hi - lo or 1.0
    k = (b - a) / span
    return k, a - lo * k


def _y_axis(lo: float, hi: float, ky: float, cy: float, unit: str) -> str:
    out = []
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        y = ky * v + cy
        out.append(
            f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
            f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" fill="{MUTED}" font-size="11" '
            f'text-anchor="end">{v:.3g}{escape(unit)}</text>'
        )
    return "".join(out)


def line_with_band(
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    band: tuple[float, float] | None = None,
    unit: str = "",
) -> str:
    """A line over nights, with a horizontal band (e.g. the 95 % interval of the mean)."""
    if not values:
        return _frame(title, f'<text x="{W / 2}" y="{H / 2}" fill="{MUTED}">–</text>')
    lo = min([*values, *(band or ()), 0.0])
    hi = max([*values, *(band or ()), 0.0])
    ky, cy = _scale(lo, hi, H - PAD_B, PAD_T)
    n = len(values)
    kx, cx = _scale(0, max(n - 1, 1), PAD_L, W - PAD_R)
    body = _y_axis(lo, hi, ky, cy, unit)
    if band is not None:
        y1, y2 = ky * band[1] + cy, ky * band[0] + cy
        body += (
            f'<rect x="{PAD_L}" y="{y1:.1f}" width="{W - PAD_L - PAD_R}" '
            f'height="{max(y2 - y1, 1):.1f}" fill="{BAND}" fill-opacity="0.25"/>'
        )
    points = " ".join(f"{kx * i + cx:.1f},{ky * v + cy:.1f}" for i, v in enumerate(values))
    body += f'<polyline points="{points}" fill="none" stroke="{BLUE}" stroke-width="2"/>'
    step = max(1, n // 8)
    for i in range(0, n, step):
        body += (
            f'<text x="{kx * i + cx:.1f}" y="{H - PAD_B + 16}" fill="{MUTED}" font-size="11" '
            f'text-anchor="middle">{escape(labels[i])}</text>'
        )
    return _frame(title, body)


def bars(title: str, labels: Sequence[str], values: Sequence[float], unit: str = "") -> str:
    """Vertical bars, e.g. alarms by hour of night."""
    if not values:
        return _frame(title, f'<text x="{W / 2}" y="{H / 2}" fill="{MUTED}">–</text>')
    hi = max([*values, 1.0])
    ky, cy = _scale(0, hi, H - PAD_B, PAD_T)
    n = len(values)
    slot = (W - PAD_L - PAD_R) / n
    body = _y_axis(0, hi, ky, cy, unit)
    for i, v in enumerate(values):
        x = PAD_L + i * slot + slot * 0.15
        y = ky * v + cy
        body += (
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{H - PAD_B - y:.1f}" fill="{ORANGE}"><title>{escape(labels[i])}: '
            f"{v:g}{escape(unit)}</title></rect>"
        )
        if n <= 24 or i % max(1, n // 12) == 0:
            body += (
                f'<text x="{x + slot * 0.35:.1f}" y="{H - PAD_B + 16}" fill="{MUTED}" '
                f'font-size="11" text-anchor="middle">{escape(labels[i])}</text>'
            )
    return _frame(title, body)


def _nice(step: float) -> float:
    """The round number (1, 2, 2.5 or 5 × 10^k) at or above `step`."""
    scale = 10.0 ** math.floor(math.log10(step))
    return next(m * scale for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * scale >= step - 1e-12)


def two_histograms(
    title: str,
    x_label: str,
    y_label: str,
    series: Sequence[tuple[str, Sequence[float]]],
    bins: int = 10,
) -> str:
    """Two distributions over the same bins, side by side in each bin, with a visible title,
    axis labels (units in them) and a legend: e.g. the before and after periods' nights."""
    values = [v for _, vs in series for v in vs]
    colours = (BLUE, ORANGE)
    head = (
        f'<text x="{W / 2}" y="{PAD_T}" fill="{FG}" font-size="13" text-anchor="middle">'
        f"{escape(title)}</text>"
    )
    for k, (name, _) in enumerate(series):
        lx = W - PAD_R - 150 * (len(series) - k)
        head += (
            f'<rect x="{lx}" y="{PAD_T + 8}" width="10" height="10" fill="{colours[k % 2]}"/>'
            f'<text x="{lx + 14}" y="{PAD_T + 17}" fill="{FG}" font-size="11">{escape(name)}</text>'
        )
    if not values:  # no measured night: the title and legend say what would be here
        return _frame(title, head + f'<text x="{W / 2}" y="{H / 2}" fill="{MUTED}">–</text>')
    lo, hi = min(values), max(values)
    width = _nice((hi - lo) / bins if hi > lo else 1.0)
    lo = math.floor(lo / width) * width  # bin edges on round numbers
    bins = max(1, math.ceil((hi - lo) / width + 1e-9))
    counts = []
    for _, vs in series:
        row = [0] * bins
        for v in vs:
            row[min(int((v - lo) / width), bins - 1)] += 1
        counts.append(row)
    top = math.ceil(max(max(row) for row in counts) / 4) * 4  # whole nights on the ticks
    pad_t = PAD_T + 24  # the title and the legend
    ky, cy = _scale(0, top, H - PAD_B, pad_t)
    body = head
    for i in range(5):
        v = top * i / 4
        y = ky * v + cy
        body += (
            f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
            f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" fill="{MUTED}" font-size="11" '
            f'text-anchor="end">{v:.3g}</text>'
        )
    slot = (W - PAD_L - PAD_R) / bins
    bar = slot * 0.8 / len(series)
    for k, row in enumerate(counts):
        name = series[k][0]
        for i, c in enumerate(row):
            x = PAD_L + i * slot + slot * 0.1 + k * bar
            y = ky * c + cy
            a, b = lo + i * width, lo + (i + 1) * width
            body += (
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{H - PAD_B - y:.1f}" '
                f'fill="{colours[k % 2]}"><title>{escape(name)}: {c} '
                f"({a:.3g}–{b:.3g})</title></rect>"
            )
    for i in range(0, bins + 1, 1 if bins <= 12 else 2):
        x = PAD_L + i * slot
        body += (
            f'<text x="{x:.1f}" y="{H - PAD_B + 14}" fill="{MUTED}" font-size="11" '
            f'text-anchor="middle">{lo + i * width:.3g}</text>'
        )
    body += (
        f'<text x="{(PAD_L + W - PAD_R) / 2}" y="{H - 6}" fill="{MUTED}" font-size="11" '
        f'text-anchor="middle">{escape(x_label)}</text>'
        f'<text x="12" y="{(pad_t + H - PAD_B) / 2:.1f}" fill="{MUTED}" font-size="11" '
        f'text-anchor="middle" transform="rotate(-90 12 {(pad_t + H - PAD_B) / 2:.1f})">'
        f"{escape(y_label)}</text>"
    )
    return _frame(title, body)
