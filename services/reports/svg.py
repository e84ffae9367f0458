"""Server-side SVG charts for the reports page and its PDF (docs/web-app.md, "Charts").

Drawn here rather than by a chart library: measured on the demo's month, five charts cost
under 1 ms here against 366 ms (2 s on first use) through Vega-Lite and vl-convert, at half
the bytes, on a hub whose two cores also carry the alarms (docs/web-app.md, "Charts", has
the figures). The page works offline and without script, the same SVG goes into the PDF, and
only presentation attributes are used, so the strict Content-Security-Policy (no inline
styles) holds.

Every chart has a title, axis titles with their units, and a legend when it shows more than
one series. Labels are laid out from an estimate of their width (`text_width`, on the wide
side for DejaVu Sans) and thinned where they would touch; the browser tests measure the real
boxes. Each mark carries its number in `data-value`, so a test can hold the chart to the
report JSON.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

W = 400
"""viewBox width: at a 360–400 px phone the text is drawn near its nominal size."""
PLOT_H = 170
ROW_H = 22
PAD = 10
TITLE_SIZE, TEXT_SIZE = 15, 13
FG, MUTED, GRID, PANEL = "#f0f3f6", "#a8b3bf", "#30363d", "#161b22"
BLUE, BAND, ORANGE, GREEN = "#58a6ff", "#1f6feb", "#ffb347", "#5ad17a"
GAP = 6
"""Least room between two labels."""


@dataclass(frozen=True, slots=True)
class Series:
    """One line of a line chart."""

    name: str
    values: Sequence[float | None]
    color: str = BLUE


@dataclass(frozen=True, slots=True)
class Band:
    """A horizontal band across the plot, e.g. the 95 % interval of the mean."""

    name: str
    low: float
    high: float
    color: str = BAND


@dataclass(frozen=True, slots=True)
class Rule:
    """A horizontal reference line, e.g. the mean."""

    name: str
    value: float
    color: str = FG


def text_width(text: str, size: float) -> float:
    """Estimated advance width of `text` at font size `size`, generous for DejaVu Sans (the
    widest of the fonts the page meets), so labels spaced by it do not touch in Chromium."""
    width = 0.0
    for ch in text:
        if ch in "il.,:;'|!jI ()":
            width += 0.36
        elif ch in "mwMW%":
            width += 1.0
        elif ch.isupper() or ch in "–—":
            width += 0.76
        else:
            width += 0.66
    return width * size


def wrap(text: str, size: float, width: float) -> list[str]:
    """Words of `text` in lines no wider than `width` (a longer word keeps its own line)."""
    lines: list[str] = []
    for word in text.split():
        if lines and text_width(f"{lines[-1]} {word}", size) <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines or [""]


def nice_ticks(lo: float, hi: float, most: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 × 10^k apart) covering [lo, hi], at most `most` + 1."""
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / most
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step + 1e-9) * step
    ticks = []
    v = first
    while v < hi + step * 0.999:
        ticks.append(round(v, 10))
        v += step
        if ticks[-1] >= hi:
            break
    return ticks


def fmt(v: float) -> str:
    """A tick value: no trailing zeros, at most two decimals."""
    return f"{v:.2f}".rstrip("0").rstrip(".") if v != int(v) else f"{int(v)}"


def _text(
    x: float,
    y: float,
    s: str,
    cls: str,
    size: float = TEXT_SIZE,
    anchor: str = "start",
    fill: str = MUTED,
    bold: bool = False,
) -> str:
    weight = ' font-weight="700"' if bold else ""
    return (
        f'<text class="{cls}" x="{x:.1f}" y="{y:.1f}" fill="{fill}" font-size="{size}" '
        f'text-anchor="{anchor}"{weight}>{escape(s)}</text>'
    )


class _Layout:
    """The parts every chart shares: the title, the legend and the y axis's title on top,
    the x axis's title at the bottom."""

    def __init__(self, title: str, y_title: str, legend: Sequence[tuple[str, str, str]]) -> None:
        self.title = title
        self.parts: list[str] = []
        y: float = PAD
        for line in wrap(title, TITLE_SIZE, W - 2 * PAD):
            y += TITLE_SIZE + 4
            self.parts.append(_text(PAD, y, line, "chart-title", TITLE_SIZE, fill=FG, bold=True))
        if legend:
            y += 6
            x: float = PAD
            y += TEXT_SIZE + 4
            for name, color, shape in legend:
                w = 18 + text_width(name, TEXT_SIZE)
                if x > PAD and x + w > W - PAD:
                    x, y = PAD, y + TEXT_SIZE + 6
                self.parts.append(_swatch(x, y - TEXT_SIZE + 2, color, shape))
                self.parts.append(_text(x + 18, y, name, "legend-label", fill=FG))
                x += w + 14
        y += 4
        for line in wrap(y_title, TEXT_SIZE, W - 2 * PAD):
            y += TEXT_SIZE + 4
            self.parts.append(_text(PAD, y, line, "axis-title y-title", fill=FG))
        # the plot's top edge: clear of the y title's descenders and the top tick's ascent
        self.top = y + TEXT_SIZE + 4

    def finish(self, bottom: float, x_title: str, x_mid: float) -> str:
        """Close the chart with the x axis's title below `bottom`."""
        y = bottom
        for line in wrap(x_title, TEXT_SIZE, W - 2 * PAD):
            y += TEXT_SIZE + 4
            self.parts.append(_text(x_mid, y, line, "axis-title x-title", anchor="middle", fill=FG))
        height = y + PAD
        return (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {height:.0f}" '
            f'role="img" aria-label="{escape(self.title)}" class="chart">'
            f"<title>{escape(self.title)}</title>"
            f'<rect width="{W}" height="{height:.0f}" fill="{PANEL}" rx="10"/>'
            f"{''.join(self.parts)}</svg>"
        )


def _swatch(x: float, y: float, color: str, shape: str) -> str:
    if shape == "band":
        return f'<rect x="{x}" y="{y}" width="14" height="12" fill="{color}" fill-opacity="0.45"/>'
    if shape == "rule":
        return (
            f'<line x1="{x}" x2="{x + 14}" y1="{y + 6}" y2="{y + 6}" stroke="{color}" '
            f'stroke-width="2" stroke-dasharray="4 3"/>'
        )
    if shape == "bar":
        return f'<rect x="{x}" y="{y}" width="14" height="12" fill="{color}"/>'
    return (
        f'<line x1="{x}" x2="{x + 14}" y1="{y + 6}" y2="{y + 6}" stroke="{color}" '
        f'stroke-width="2.5"/>'
    )


def _y_axis(ticks: Sequence[float], top: float) -> tuple[float, float, float, str]:
    """Gridlines and tick labels (the unit is in the axis's title); the plot's left edge,
    its scale and offset."""
    labels = [fmt(t) for t in ticks]
    left = PAD + max(text_width(s, TEXT_SIZE) for s in labels) + 6
    lo, hi = ticks[0], ticks[-1]
    k = -PLOT_H / (hi - lo)
    c = top + PLOT_H - lo * k
    out = []
    for t, s in zip(ticks, labels, strict=True):
        y = k * t + c
        out.append(
            f'<line x1="{left:.1f}" x2="{W - PAD}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
        )
        out.append(_text(left - 6, y + TEXT_SIZE * 0.35, s, "tick y-tick", anchor="end"))
    return left, k, c, "".join(out)


def _x_labels(
    labels: Sequence[str], xs: Sequence[float], y: float, left_limit: float, stagger: bool
) -> tuple[str, float]:
    """Labels under the plot, kept apart: every label on two alternating rows when that is
    enough (`stagger`, for categories such as time buckets, where each bar needs its label),
    else every `step`-th one; the first and last stay inside the chart. Returns the SVG and
    the lowest baseline used."""
    if not labels:
        return "", y
    widest = max(text_width(s, TEXT_SIZE) for s in labels)
    spacing = (xs[-1] - xs[0]) / (len(xs) - 1) if len(xs) > 1 else widest + GAP
    step = max(1, math.ceil((widest + GAP) / spacing))
    rows = 2 if stagger and step == 2 else 1
    if rows == 2:
        step = 1
    out = []
    lowest = y
    ends = [-math.inf] * rows
    for i in range(0, len(labels), step):
        half = text_width(labels[i], TEXT_SIZE) / 2
        x = min(max(xs[i], left_limit + half), W - PAD - half)
        row = i % rows
        if x - half < ends[row] + GAP:
            continue  # pushed inside the chart onto its neighbour: leave it out
        ends[row] = x + half
        row_y = y + (TEXT_SIZE + 4) * row
        lowest = max(lowest, row_y)
        out.append(_text(x, row_y, labels[i], "tick x-tick", anchor="middle"))
    return "".join(out), lowest


def line_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    x_title: str,
    y_title: str,
    unit: str = "",
    band: Band | None = None,
    rules: Sequence[Rule] = (),
    empty: str = "–",
) -> str:
    """Lines over ordered labels (nights), with an optional band and reference lines; each
    point is a circle whose `data-value` is its number."""
    legend: list[tuple[str, str, str]] = []
    if len(series) + len(rules) + (band is not None) > 1:
        legend = [(s.name, s.color, "line") for s in series]
        legend += [(r.name, r.color, "rule") for r in rules]
        if band is not None:
            legend.append((band.name, band.color, "band"))
    layout = _Layout(title, y_title, legend)
    values = [v for s in series for v in s.values if v is not None]
    if not values:
        return _empty(layout, x_title, empty)
    extra = [r.value for r in rules] + ([band.low, band.high] if band else [])
    ticks = nice_ticks(min([*values, *extra, 0.0]), max([*values, *extra, 0.0]))
    left, ky, cy, body = _y_axis(ticks, layout.top)
    layout.parts.append(body)
    n = max(len(s.values) for s in series)
    last_half = text_width(labels[-1], TEXT_SIZE) / 2 if labels else 0
    right = W - PAD - max(4.0, last_half)
    # the first night's label centred under its point without crossing the plot's left edge
    start = left + max(8.0, text_width(labels[0], TEXT_SIZE) / 2 if labels else 0)
    xs = [start + (right - start) * (i / (n - 1) if n > 1 else 0.5) for i in range(n)]
    if band is not None:
        y1, y2 = ky * band.high + cy, ky * band.low + cy
        layout.parts.append(
            f'<rect class="band" x="{left:.1f}" y="{y1:.1f}" width="{W - PAD - left:.1f}" '
            f'height="{max(y2 - y1, 1):.1f}" fill="{band.color}" fill-opacity="0.35" '
            f'data-low="{band.low:.6g}" data-high="{band.high:.6g}"/>'
        )
    for r in rules:
        y = ky * r.value + cy
        layout.parts.append(
            f'<line class="rule" x1="{left:.1f}" x2="{W - PAD}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{r.color}" stroke-width="1.5" stroke-dasharray="4 3" '
            f'data-value="{r.value:.6g}"/>'
        )
    for s in series:
        pts = [(xs[i], ky * v + cy, v) for i, v in enumerate(s.values) if v is not None]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in pts)
        layout.parts.append(
            f'<polyline points="{path}" fill="none" stroke="{s.color}" stroke-width="2.5"/>'
        )
        for (x, y, v), label in zip(pts, labels, strict=False):
            layout.parts.append(
                f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{s.color}" '
                f'data-label="{escape(label)}" data-value="{v:.6g}">'
                f"<title>{escape(label)}: {v:.2f}{escape(unit)}</title></circle>"
            )
    bottom = layout.top + PLOT_H
    ticks_svg, base = _x_labels(labels, xs, bottom + TEXT_SIZE + 6, left, stagger=False)
    layout.parts.append(ticks_svg)
    return layout.finish(base + 4, x_title, (left + W - PAD) / 2)


def bar_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    x_title: str,
    y_title: str,
    unit: str = "",
    color: str = ORANGE,
    empty: str = "–",
) -> str:
    """Vertical bars over ordered labels (hours of the night, time buckets); each bar's
    `data-value` is its number."""
    layout = _Layout(title, y_title, ())
    if not values:
        return _empty(layout, x_title, empty)
    ticks = nice_ticks(min([*values, 0.0]), max([*values, 1.0]))
    left, ky, cy, body = _y_axis(ticks, layout.top)
    layout.parts.append(body)
    n = len(values)
    slot = (W - PAD - left) / n
    xs = [left + slot * (i + 0.5) for i in range(n)]
    zero = ky * 0 + cy
    for x, v, label in zip(xs, values, labels, strict=True):
        y = ky * v + cy
        layout.parts.append(
            f'<rect class="bar" x="{x - slot * 0.35:.1f}" y="{min(y, zero):.1f}" '
            f'width="{slot * 0.7:.1f}" height="{abs(zero - y):.1f}" fill="{color}" '
            f'data-label="{escape(label)}" data-value="{v:.6g}">'
            f"<title>{escape(label)}: {fmt(v)}{escape(unit)}</title></rect>"
        )
    bottom = layout.top + PLOT_H
    ticks_svg, base = _x_labels(labels, xs, bottom + TEXT_SIZE + 6, left, stagger=True)
    layout.parts.append(ticks_svg)
    return layout.finish(base + 4, x_title, (left + W - PAD) / 2)


def hbar_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    x_title: str,
    y_title: str,
    unit: str = "",
    high: float | None = None,
    color: str = GREEN,
    empty: str = "–",
) -> str:
    """Horizontal bars, one row per label (sensors): long names never share a row. Each row
    shows its value at the right, to one decimal rounded down; `high` fixes the scale's end
    (100 for a percentage)."""
    layout = _Layout(title, y_title, ())
    if not values:
        return _empty(layout, x_title, empty)
    # rounded down: a sensor up 99.96 % of the night must not read "100 %"
    value_texts = [f"{math.floor(v * 10) / 10:.1f}{unit}" for v in values]
    label_w = max(text_width(s, TEXT_SIZE) for s in labels)
    value_w = max(text_width(s, TEXT_SIZE) for s in value_texts)
    left = PAD + label_w + 8
    right = W - PAD - value_w - 8
    ticks = nice_ticks(0.0, high if high is not None else max(values), 4)
    kx = (right - left) / (ticks[-1] - ticks[0])
    top = layout.top
    bottom = top + ROW_H * len(values)
    for t in ticks:
        x = left + kx * (t - ticks[0])
        layout.parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top:.1f}" y2="{bottom:.1f}" stroke="{GRID}"/>'
        )
    for i, (label, v, vt) in enumerate(zip(labels, values, value_texts, strict=True)):
        y = top + ROW_H * i
        base = y + ROW_H / 2 + TEXT_SIZE * 0.35
        layout.parts.append(_text(left - 8, base, label, "tick y-tick", anchor="end"))
        layout.parts.append(
            f'<rect class="bar" x="{left:.1f}" y="{y + 4:.1f}" '
            f'width="{max(kx * (v - ticks[0]), 0):.1f}" height="{ROW_H - 8}" fill="{color}" '
            f'data-label="{escape(label)}" data-value="{v:.6g}">'
            f"<title>{escape(label)}: {escape(vt)}</title></rect>"
        )
        layout.parts.append(_text(W - PAD, base, vt, "value", anchor="end", fill=FG))
    tick_labels = [fmt(t) for t in ticks]
    xs = [left + kx * (t - ticks[0]) for t in ticks]
    ticks_svg, base_y = _x_labels(tick_labels, xs, bottom + TEXT_SIZE + 6, PAD, stagger=False)
    layout.parts.append(ticks_svg)
    return layout.finish(base_y + 4, x_title, (left + right) / 2)


def _empty(layout: _Layout, x_title: str, empty: str) -> str:
    y = layout.top + PLOT_H / 2
    layout.parts.append(_text(W / 2, y, empty, "empty", anchor="middle"))
    return layout.finish(layout.top + PLOT_H, x_title, W / 2)


PRINT_COLOURS = {PANEL: "#ffffff", FG: "#111111", MUTED: "#444444", GRID: "#d0d7de"}


def for_print(chart: str) -> str:
    """The same chart in dark ink on white paper: the page's dark palette swapped for a
    printable one (the marks' colours stay)."""
    for dark, light in PRINT_COLOURS.items():
        chart = chart.replace(f'"{dark}"', f'"{light}"')
    return chart


def histogram_chart(
    title: str,
    series: Sequence[Series],
    *,
    x_title: str,
    y_title: str,
    bins: int = 8,
    empty: str = "–",
) -> str:
    """Distributions over the same round-numbered bins, side by side in each bin (e.g. the
    before and after periods' nights); each bar's `data-value` is its count, `data-label`
    its bin."""
    legend = [(s.name, s.color, "bar") for s in series] if len(series) > 1 else []
    layout = _Layout(title, y_title, legend)
    values = [v for s in series for v in s.values if v is not None]
    if not values:
        return _empty(layout, x_title, empty)
    lo, hi = min(values), max(values)
    steps = nice_ticks(lo, hi if hi > lo else lo + 1, most=bins)
    width = steps[1] - steps[0]
    start = math.floor(lo / width) * width
    n = max(1, math.ceil((hi - start) / width + 1e-9))
    edges = [start + width * i for i in range(n + 1)]
    counts = []
    for s in series:
        row = [0] * n
        for v in s.values:
            if v is not None:
                row[min(int((v - start) / width), n - 1)] += 1
        counts.append(row)
    ticks = nice_ticks(0.0, max(1.0, max(max(row) for row in counts)))
    left, ky, cy, body = _y_axis(ticks, layout.top)
    layout.parts.append(body)
    slot = (W - PAD - left) / n
    bar = slot * 0.8 / len(series)
    zero = ky * 0 + cy
    labels = [f"{fmt(edges[i])}–{fmt(edges[i + 1])}" for i in range(n)]
    for k, (s, row) in enumerate(zip(series, counts, strict=True)):
        for i, c in enumerate(row):
            x = left + i * slot + slot * 0.1 + k * bar
            y = ky * c + cy
            layout.parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" '
                f'height="{zero - y:.1f}" fill="{s.color}" data-label="{escape(labels[i])}" '
                f'data-series="{escape(s.name)}" data-value="{c}">'
                f"<title>{escape(s.name)}, {escape(labels[i])}: {c}</title></rect>"
            )
    xs = [left + slot * (i + 0.5) for i in range(n)]
    bottom = layout.top + PLOT_H
    ticks_svg, base = _x_labels(labels, xs, bottom + TEXT_SIZE + 6, left, stagger=True)
    layout.parts.append(ticks_svg)
    return layout.finish(base + 4, x_title, (left + W - PAD) / 2)
