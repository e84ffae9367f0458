"""The /reports charts in a real Chromium at phone and desktop width, in both languages
(docs/web-app.md, "Charts"): every chart has its title and axis titles, no two of its texts
overlap (boxes measured in the DOM), and the marks carry the report JSON's numbers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page

from services.reports import svg
from tests.support.server import ServerThread
from tests.web.conftest import HISTORY_FIRST, HISTORY_LAST, bearer
from tests.web.test_browser_basic import ARTIFACTS, browser, login

pytestmark = pytest.mark.browser
__all__ = ["browser"]

WIDTHS = (390, 1280)

# Every text of every chart: its box, the chart's box, and the chart's role texts.
MEASURE = """
() => [...document.querySelectorAll('svg.chart')].map(chart => {
  const box = chart.getBoundingClientRect();
  const texts = [...chart.querySelectorAll('text')].map(t => {
    const r = t.getBoundingClientRect();
    return {cls: t.getAttribute('class'), text: t.textContent,
            left: r.left, right: r.right, top: r.top, bottom: r.bottom};
  });
  return {title: chart.getAttribute('aria-label'), texts,
          box: {left: box.left, right: box.right, top: box.top, bottom: box.bottom}};
})
"""
TOLERANCE = 0.5
"""Pixels two glyph boxes may share (anti-aliasing), far less than any real overlap."""


def overlaps(charts: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """Pairs of texts of one chart whose boxes intersect, and texts outside their chart."""
    bad = []
    for chart in charts:
        texts = [t for t in chart["texts"] if t["text"].strip()]
        b = chart["box"]
        for t in texts:
            inside = (
                t["left"] >= b["left"] - TOLERANCE
                and t["right"] <= b["right"] + TOLERANCE
                and t["top"] >= b["top"] - TOLERANCE
                and t["bottom"] <= b["bottom"] + TOLERANCE
            )
            if not inside:
                bad.append((chart["title"], t["text"], "outside the chart"))
        for i, a in enumerate(texts):
            for c in texts[i + 1 :]:
                dx = min(a["right"], c["right"]) - max(a["left"], c["left"])
                dy = min(a["bottom"], c["bottom"]) - max(a["top"], c["top"])
                if dx > TOLERANCE and dy > TOLERANCE:
                    bad.append((chart["title"], a["text"], c["text"]))
    return bad


@pytest.fixture
def manager(browser: Browser, history_server: ServerThread) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    login(page, history_server.url, username="mads", next_path="/devices")
    page.wait_for_url(f"{history_server.url}/devices")
    yield page
    context.close()


def _json(server: ServerThread, path: str) -> dict[str, Any]:
    r = httpx.get(
        f"{server.url}{path}",
        params={"from": HISTORY_FIRST, "to": HISTORY_LAST},
        headers=bearer(server.url, "mads"),
        timeout=60,
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


@pytest.mark.parametrize("lang", ["da", "en"])
@pytest.mark.parametrize("width", WIDTHS)
def test_charts_are_titled_labelled_and_never_overlap(
    manager: Page, history_server: ServerThread, width: int, lang: str
) -> None:
    """At phone and desktop width, in Danish and English: six charts, each with a title and
    both axis titles in the page's language, a legend on the chart with several series, no
    text over another or outside its chart, no page wider than the screen because of them."""
    manager.set_viewport_size({"width": width, "height": 900})
    manager.goto(f"{history_server.url}/reports?from={HISTORY_FIRST}&to={HISTORY_LAST}&lang={lang}")
    charts = manager.evaluate(MEASURE)
    assert len(charts) == 6
    titles = {
        "da": [
            "Frigjorte timer pr. nat",
            "Arbejde pr. beboer-nat, nat for nat: før og efter",
            "Alarmer pr. time om natten",
        ],
        "en": [
            "Freed hours per night",
            "Work per resident-night, night by night: before and after",
            "Alarms by hour of night",
        ],
    }
    assert [c["title"] for c in charts][:3] == titles[lang]
    for chart in charts:
        classes = [t["cls"] for t in chart["texts"]]
        assert "chart-title" in classes
        assert any("x-title" in c for c in classes), chart["title"]
        assert any("y-title" in c for c in classes), chart["title"]
        assert chart["box"]["right"] <= width, chart["title"]
        assert chart["box"]["right"] - chart["box"]["left"] > 300
    axis = {"da": "Frigjorte timer (t)", "en": "Freed hours (h)"}[lang]
    assert axis in [t["text"] for t in charts[0]["texts"]]
    legend = [t["text"] for t in charts[0]["texts"] if t["cls"] == "legend-label"]
    assert len(legend) == 3
    assert overlaps(charts) == []
    ARTIFACTS.mkdir(exist_ok=True)
    manager.screenshot(path=str(ARTIFACTS / f"reports-charts-{width}-{lang}.png"), full_page=True)


def test_the_charts_show_the_report_numbers(manager: Page, history_server: ServerThread) -> None:
    """The freed-hours points, the band and the mean line, the alarms per hour and the
    least-up sensors in the DOM equal the report JSON."""
    fh = _json(history_server, "/api/reports/freed-hours")
    ut = _json(history_server, "/api/reports/utilisation")
    manager.goto(f"{history_server.url}/reports?from={HISTORY_FIRST}&to={HISTORY_LAST}")
    charts = manager.locator("svg.chart")
    freed = charts.nth(0)
    points = freed.locator("circle.point")
    values = [float(points.nth(i).get_attribute("data-value") or "nan") for i in range(9)]
    assert points.count() == len(fh["by_night"]) == 9
    assert values == pytest.approx([n["freed_hours_total"] for n in fh["by_night"]], abs=1e-5)
    band = freed.locator("rect.band")
    lo, hi = fh["freed_hours_per_night"]["ci95"]
    assert float(band.get_attribute("data-low") or "nan") == pytest.approx(lo, abs=1e-5)
    assert float(band.get_attribute("data-high") or "nan") == pytest.approx(hi, abs=1e-5)
    mean = float(freed.locator("line.rule").get_attribute("data-value") or "nan")
    assert mean == pytest.approx(fh["freed_hours_per_night"]["mean"], abs=1e-5)
    # before/after: by default the as many nights just before the page's period
    first, last = date.fromisoformat(HISTORY_FIRST), date.fromisoformat(HISTORY_LAST)
    length = last - first + timedelta(days=1)
    r = httpx.get(
        f"{history_server.url}/api/reports/before-after",
        params={
            "before_from": (first - length).isoformat(),
            "before_to": (first - timedelta(days=1)).isoformat(),
            "after_from": HISTORY_FIRST,
            "after_to": HISTORY_LAST,
        },
        headers=bearer(history_server.url, "mads"),
        timeout=60,
    )
    assert r.status_code == 200, r.text
    ba = r.json()
    hist = charts.nth(1).locator("rect.bar")
    per_series: dict[str, int] = {}
    for i in range(hist.count()):
        name = hist.nth(i).get_attribute("data-series") or ""
        per_series[name] = per_series.get(name, 0) + int(
            hist.nth(i).get_attribute("data-value") or 0
        )
    measured = [
        sum(1 for n in ba[p]["by_night"] if n["resident_nights"]) for p in ("before", "after")
    ]
    # every measured night of each period is in exactly one of its bins
    assert sorted(v for v in per_series.values() if v) == sorted(v for v in measured if v)
    bars = charts.nth(2).locator("rect.bar")
    counts = [h["count"] for h in ut["alarms"]["by_hour_of_night"]]
    assert sum(counts) > 0
    assert [
        float(bars.nth(i).get_attribute("data-value") or "nan") for i in range(bars.count())
    ] == counts
    uptime = charts.nth(5).locator("rect.bar")
    shown = {
        uptime.nth(i).get_attribute("data-label"): float(
            uptime.nth(i).get_attribute("data-value") or "nan"
        )
        for i in range(uptime.count())
    }
    worst = sorted(ut["device_uptime"].items(), key=lambda kv: (kv[1], kv[0]))[: len(shown)]
    assert shown == pytest.approx({d: v * 100 for d, v in worst}, abs=1e-4)


def stress_charts() -> str:
    """Charts harder than a month: a quarter of nights, a negative night, 24 buckets, long
    sensor names and titles, several series."""
    nights = [f"{d % 28 + 1}. {['okt', 'nov', 'dec'][d // 30]}" for d in range(90)]
    values = [((i * 37) % 23) / 3 - 1.5 for i in range(90)]
    return "".join(
        [
            svg.line_chart(
                "Frigjorte timer pr. nat gennem et helt kvartal på to afdelinger",
                nights,
                [
                    svg.Series("Afdeling A", values),
                    svg.Series("Afdeling B", values[::-1], svg.ORANGE),
                ],
                x_title="Nat (dato hvor den begynder)",
                y_title="Frigjorte timer (t)",
                band=svg.Band("95 %-interval for gennemsnittet", 1.0, 2.5),
                rules=[svg.Rule("Gennemsnit", 1.7)],
            ),
            svg.bar_chart(
                "Tid brugt pr. alarm",
                [f"{5 * i}–{5 * i + 5}" for i in range(24)],
                [float((i * 13) % 40) for i in range(24)],
                x_title="Fra »Jeg tager den« til afsluttet (min)",
                y_title="Alarmer (antal)",
            ),
            svg.bar_chart(
                "Buckets",
                ["0–5", "5–10", "10–15", "15–20", "20–30", "30–45", "45–60", "60–120", "120+"],
                [56, 164, 119, 116, 0, 3, 0, 81, 12],
                x_title="Minutes",
                y_title="Alarms (count)",
            ),
            svg.hbar_chart(
                "Sensorer med mindst oppetid om natten (12 af 1500)",
                [f"diaper-r{i:03d}-afdeling-nord" for i in range(12)],
                [99.96 - i * 7.3 for i in range(12)],
                x_title="Oppetid om natten (%)",
                y_title="Sensor",
                unit=" %",
                high=100.0,
            ),
        ]
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_hard_charts_keep_their_labels_apart(browser: Browser, width: int) -> None:
    """The layout's width estimate holds in Chromium's own fonts on charts with many and
    long labels: nothing overlaps, nothing leaves its chart."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    try:
        page.set_content(
            '<body style="margin:0;font-family:system-ui,sans-serif;line-height:1.4">'
            f'<div style="max-width:{min(width - 28, 460)}px">{stress_charts()}</div></body>'
        )
        charts = page.evaluate(MEASURE)
        assert len(charts) == 4
        assert overlaps(charts) == []
        page.screenshot(path=str(ARTIFACTS / f"charts-stress-{width}.png"), full_page=True)
    finally:
        context.close()


HEADER_AND_WIDTH = """
() => {
  const boxes = [...document.querySelectorAll('header.top a, header.top button')].map(e => {
    const r = e.getBoundingClientRect();
    return {text: e.textContent.trim(), left: r.left, right: r.right, top: r.top, bottom: r.bottom};
  });
  const wide = [...document.querySelectorAll('main *')]
    .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)
    .map(e => e.tagName + '.' + e.className).slice(0, 5);
  return {boxes, page: document.documentElement.scrollWidth,
          screen: document.documentElement.clientWidth, wide};
}
"""


@pytest.mark.parametrize("lang", ["da", "en"])
@pytest.mark.parametrize("width", WIDTHS)
def test_the_reports_page_fits_the_screen_and_its_header_links_stay_apart(
    manager: Page, history_server: ServerThread, width: int, lang: str
) -> None:
    """A manager on a phone: the page is no wider than the screen (wide tables scroll in
    their own box) and no header link or button lies over another."""
    manager.set_viewport_size({"width": width, "height": 900})
    manager.goto(f"{history_server.url}/reports?from={HISTORY_FIRST}&to={HISTORY_LAST}&lang={lang}")
    got = manager.evaluate(HEADER_AND_WIDTH)
    assert got["page"] <= got["screen"], got["wide"]
    boxes = got["boxes"]
    assert len(boxes) >= 7  # brand, five links, language, log out
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            dx = min(a["right"], b["right"]) - max(a["left"], b["left"])
            dy = min(a["bottom"], b["bottom"]) - max(a["top"], b["top"])
            assert not (dx > TOLERANCE and dy > TOLERANCE), (a["text"], b["text"])
