"""The chart module's promises without a browser (docs/web-app.md, "Charts"): titles, axis
titles and legends where they belong, the marks' numbers equal to the data, honest rounding,
and print colours. Chromium measures the real label boxes in tests/web/test_browser_charts.py."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET

import pytest

from services.reports import svg

NS = {"s": "http://www.w3.org/2000/svg"}


def _texts(chart: str, cls: str) -> list[str]:
    root = ET.fromstring(chart)  # noqa: S314 (our own SVG)
    return [t.text or "" for t in root.iterfind(".//s:text", NS) if cls in t.get("class", "")]


def _values(chart: str, tag: str) -> list[float]:
    root = ET.fromstring(chart)  # noqa: S314 (our own SVG)
    return [float(e.get("data-value", "nan")) for e in root.iterfind(f".//s:{tag}", NS)]


def test_a_line_chart_has_its_titles_its_numbers_and_a_legend_for_several_series() -> None:
    values = [2.5, None, -1.25, 3.0]
    one = svg.line_chart(
        "Freed", ["a", "b", "c", "d"], [svg.Series("s", values)], x_title="X (d)", y_title="Y (h)"
    )
    assert _texts(one, "chart-title") == ["Freed"]
    assert _texts(one, "x-title") == ["X (d)"]
    assert _texts(one, "y-title") == ["Y (h)"]
    assert _texts(one, "legend-label") == []  # one series needs no legend
    assert _values(one, "circle") == [2.5, -1.25, 3.0]  # a missing night is no point
    two = svg.line_chart(
        "Freed",
        ["a", "b"],
        [svg.Series("s", [1.0, 2.0])],
        x_title="X",
        y_title="Y",
        band=svg.Band("95 %", 1.2, 1.8),
        rules=[svg.Rule("mean", 1.5)],
    )
    assert _texts(two, "legend-label") == ["s", "mean", "95 %"]


def test_bars_carry_their_numbers_and_stagger_rather_than_drop_labels() -> None:
    labels = [f"{5 * i}–{5 * i + 5}" for i in range(9)]
    chart = svg.bar_chart("T", labels, [float(i) for i in range(9)], x_title="X", y_title="Y")
    assert _values(chart, "rect[@class='bar']") == [float(i) for i in range(9)]
    assert _texts(chart, "x-tick") == labels  # every bucket keeps its label


def test_many_night_labels_are_thinned_so_their_estimated_boxes_keep_apart() -> None:
    labels = [f"{d}. nov" for d in range(1, 91)]
    chart = svg.line_chart("T", labels, [svg.Series("s", [1.0] * 90)], x_title="X", y_title="Y")
    root = ET.fromstring(chart)  # noqa: S314 (our own SVG)
    ticks = [t for t in root.iterfind(".//s:text", NS) if "x-tick" in t.get("class", "")]
    assert 3 <= len(ticks) < 90
    spans = sorted(
        (
            float(t.get("x", 0)) - svg.text_width(t.text or "", svg.TEXT_SIZE) / 2,
            float(t.get("x", 0)) + svg.text_width(t.text or "", svg.TEXT_SIZE) / 2,
        )
        for t in ticks
    )
    assert all(a[1] + svg.GAP / 2 <= b[0] for a, b in itertools.pairwise(spans))


def test_uptime_rounds_down_so_a_gap_never_reads_as_full() -> None:
    chart = svg.hbar_chart(
        "T", ["a", "b"], [99.96, 78.0], x_title="%", y_title="s", unit=" %", high=100.0
    )
    assert _texts(chart, "value") == ["99.9 %", "78.0 %"]
    assert _values(chart, "rect[@class='bar']") == pytest.approx([99.96, 78.0])


def test_an_empty_chart_still_says_what_it_would_show() -> None:
    chart = svg.bar_chart("T", [], [], x_title="X", y_title="Y", empty="No data")
    assert _texts(chart, "chart-title") == ["T"]
    assert _texts(chart, "empty") == ["No data"]
    assert _texts(chart, "x-title") == ["X"]


def test_print_colours_swap_the_dark_palette_only() -> None:
    chart = svg.bar_chart("T", ["a"], [1.0], x_title="X", y_title="Y")
    printed = svg.for_print(chart)
    assert svg.PANEL not in printed
    assert '"#ffffff"' in printed
    assert f'"{svg.ORANGE}"' in printed


@pytest.mark.parametrize(("lo", "hi"), [(0, 5.83), (-0.4, 0.8), (0, 124), (0, 0)])
def test_ticks_are_round_and_cover_the_data(lo: float, hi: float) -> None:
    ticks = svg.nice_ticks(lo, hi)
    assert ticks[0] <= lo
    assert ticks[-1] >= hi
    assert len(ticks) <= 7
