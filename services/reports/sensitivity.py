"""Which assumption drives the freed-hours figure: the method (docs/freed-hours.md) recomputed with
each parameter swept over a plausible range, everything else as configured.

A sceptical manager asks "and if a check takes two minutes, not four?"; this answers it for
every parameter at once, ranked by how far each one moves the result.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from carehub.site import Benefit, Site, SiteIndex
from services.reports.freed_hours import (
    SYMBOLS,
    FreedHoursInput,
    measured_period,
    resident_nights,
)

RANGES: dict[str, tuple[float, ...]] = {
    "checks_per_night": (1, 2, 3, 4),
    "check_minutes": (2, 3, 4, 5, 6),
    "changes_per_night": (0, 1, 2),
    "change_minutes": (5, 10, 15),
    "medication_rounds_per_night": (0, 1, 2),
    "medication_minutes": (1, 3, 5),
    "retained_checks_per_night": (0, 1, 2),
    "visit_overhead_minutes": (0, 2, 5),
    "response_cap_minutes": (30, 60, 120),
}
"""The values tried per parameter: the published range where there is one (1–3 checks per
resident per night in one Danish centre; the issue's 2–6 minutes per check), else ±50 %."""


def with_parameter(site: Site, key: str, value: float) -> Site:
    """The site with `key` set to `value` for every resident (per-resident overrides of that
    key dropped, others kept), so the sweep moves the whole home at once."""
    base = site.benefit or Benefit()
    residents = [
        r.model_copy(update={"benefit": r.benefit.model_copy(update={key: None})})
        if r.benefit is not None
        else r
        for r in site.residents
    ]
    return site.model_copy(
        update={"benefit": base.model_copy(update={key: value}), "residents": residents}
    )


def _per_night(
    index: SiteIndex,
    first: date,
    last: date,
    data: FreedHoursInput,
    ward: str | None,
    measured: list[date],
) -> tuple[float, float]:
    """(mean freed hours per night, full-time posts) for the site or one ward, over the
    measured nights (docs/freed-hours.md, "Unmeasured nights")."""
    counted = set(measured)
    rows = [r for r in resident_nights(index, first, last, data, ward) if r.night in counted]
    nights = len(measured)
    mean = sum(r.freed_min for r in rows) / 60 / nights if nights else float("nan")
    fte = mean * 365 / index.benefit_for(None)["hours_per_fte"]
    return round(mean, 4), round(fte, 4)


def sensitivity_report(
    index: SiteIndex,
    first: date,
    last: date,
    data: FreedHoursInput,
    ward: str | None = None,
    ranges: dict[str, tuple[float, ...]] | None = None,
    *,
    from_first_measured: bool = False,
) -> dict[str, Any]:
    """Freed hours per night for each value of each parameter, drivers first, over the
    measured nights of the period (as the freed-hours report)."""
    data = FreedHoursInput(
        data.device_times, list(data.alarms), data.extra, data.coverage, data.measured
    )
    first, measured, unmeasured = measured_period(
        index, first, last, data, from_first_measured=from_first_measured
    )
    base_mean, base_fte = _per_night(index, first, last, data, ward, measured)
    current = index.benefit_for(None)
    parameters: dict[str, Any] = {}
    for key, values in (ranges or RANGES).items():
        points = []
        for value in values:
            variant = SiteIndex(with_parameter(index.site, key, value))
            mean, fte = _per_night(variant, first, last, data, ward, measured)
            points.append({"value": value, "freed_hours_per_night": mean, "fte": fte})
        means = [p["freed_hours_per_night"] for p in points]
        parameters[key] = {
            "symbol": SYMBOLS[key],
            "current": current[key],
            "source": current.sources[key],
            "values": points,
            "swing_hours_per_night": round(max(means) - min(means), 4),
        }
    drivers = sorted(parameters, key=lambda k: -parameters[k]["swing_hours_per_night"])
    return {
        "site": index.site.site,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "ward": ward,
        "nights": len(measured),
        "unmeasured_nights": [n.isoformat() for n in unmeasured],
        "base": {"freed_hours_per_night": base_mean, "fte": base_fte},
        "parameters": parameters,
        "drivers": drivers,
        "note": "Each parameter is set for the whole home in turn, the others as configured.",
    }
