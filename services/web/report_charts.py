"""The reports' charts, drawn from the report JSON in the page's language (docs/web-app.md,
"Charts"). The page and the PDF take their charts from here, so both show the same drawing
of the same numbers; a new chart of a report is one more function here on `svg`'s charts.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from services.reports import svg
from services.web.i18n import Locale

MONTHS: dict[Locale, tuple[str, ...]] = {
    "da": ("jan", "feb", "mar", "apr", "maj", "jun", "jul", "aug", "sep", "okt", "nov", "dec"),
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
}
WORST_SENSORS = 12
"""The uptime chart shows the sensors that were down most; the JSON has every one."""


def night_label(night: str, locale: Locale) -> str:
    """A night's start date as people write it: '3. nov' in Danish, '3 Nov' in English."""
    d = date.fromisoformat(night)
    month = MONTHS[locale][d.month - 1]
    return f"{d.day}. {month}" if locale == "da" else f"{d.day} {month}"


def freed_chart(fh: dict[str, Any], t: dict[str, str], locale: Locale) -> str:
    """Freed hours of each night, with the mean and its 95 % interval (docs/freed-hours.md)."""
    per_night = fh["freed_hours_per_night"]
    lo, hi = per_night["ci95"]
    band = svg.Band(t["chart_ci"], lo, hi) if lo is not None and hi is not None else None
    rules = [svg.Rule(t["chart_mean"], per_night["mean"])] if band is not None else []
    return svg.line_chart(
        t["chart_freed"],
        [night_label(n["night"], locale) for n in fh["by_night"]],
        [svg.Series(t["chart_freed_series"], [n["freed_hours_total"] for n in fh["by_night"]])],
        x_title=t["axis_night"],
        y_title=t["axis_freed_hours"],
        unit=t["unit_hours"],
        band=band,
        rules=rules,
        empty=t["chart_empty"],
    )


def utilisation_charts(ut: dict[str, Any], t: dict[str, str], tz: str) -> dict[str, str]:
    """Alarms by hour, time spent per alarm, simultaneous alarms, the least-up sensors."""
    hour_axis = t["axis_hour"].format(tz=tz)
    uptime = sorted(ut["device_uptime"].items(), key=lambda kv: (kv[1], kv[0]))[:WORST_SENSORS]
    return {
        "by_hour": svg.bar_chart(
            t["chart_by_hour"],
            [f"{h['hour']:02d}" for h in ut["alarms"]["by_hour_of_night"]],
            [float(h["count"]) for h in ut["alarms"]["by_hour_of_night"]],
            x_title=hour_axis,
            y_title=t["axis_alarms"],
            empty=t["chart_empty"],
        ),
        "response": svg.bar_chart(
            t["chart_response"],
            [
                f"{h['from']}–{h['to']}" if h["to"] is not None else f"{h['from']}+"
                for h in ut["response_minutes_histogram"]
            ],
            [float(h["count"]) for h in ut["response_minutes_histogram"]],
            x_title=t["axis_response"],
            y_title=t["axis_alarms"],
            empty=t["chart_empty"],
        ),
        "concurrency": svg.bar_chart(
            t["chart_concurrency"],
            [f"{h['hour']:02d}" for h in ut["concurrency"]["by_hour_of_night"]],
            [h["minutes_with_two_or_more"] for h in ut["concurrency"]["by_hour_of_night"]],
            x_title=hour_axis,
            y_title=t["axis_concurrency"],
            unit=" min",
            empty=t["chart_empty"],
        ),
        "coverage": svg.hbar_chart(
            t["chart_coverage"].format(n=len(uptime), total=len(ut["device_uptime"])),
            [device for device, _ in uptime],
            [share * 100 for _, share in uptime],
            x_title=t["axis_uptime"],
            y_title=t["axis_sensor"],
            unit=" %",
            high=100.0,
            empty=t["chart_empty"],
        ),
    }


def report_charts(
    fh: dict[str, Any], ut: dict[str, Any], t: dict[str, str], locale: Locale
) -> dict[str, str]:
    """Every chart of the /reports page, by name."""
    tz = str(fh["assumptions"]["night_window"]["timezone"])
    return {"freed": freed_chart(fh, t, locale), **utilisation_charts(ut, t, tz)}


def before_after_chart(ba: dict[str, Any], t: dict[str, str]) -> str:
    """Both periods' nights by their work per resident-night (docs/freed-hours.md, "Measured
    night work")."""

    def per_night(period: dict[str, Any]) -> list[float | None]:
        return [
            n["work_minutes"] / n["resident_nights"] if n["resident_nights"] else None
            for n in period["by_night"]
        ]

    return svg.histogram_chart(
        t["chart_before_after"],
        [
            svg.Series(t["report_before"], per_night(ba["before"]), svg.BLUE),
            svg.Series(t["report_after"], per_night(ba["after"]), svg.ORANGE),
        ],
        x_title=t["chart_before_after_x"],
        y_title=t["chart_before_after_y"],
        empty=t["chart_empty"],
    )
