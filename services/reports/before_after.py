"""Measured night work, before and after (docs/freed-hours.md, "Measured night work").

The freed-hours method models freed time from care-plan assumptions; this report measures it
from the visit log: each time a staff member was in a resident's room at night, for a period
of rounds as usual (before) and a period with sensors (after). Inputs are plain records
(visits, presence device message times), so anyone can recompute the figures from the same
data; the stores are read in `services.reports.service`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from carehub.site import DeviceKind, SiteIndex
from carehub.visits import Visit
from services.reports.freed_hours import (
    BOOTSTRAP_METHOD,
    BOOTSTRAP_RESAMPLES,
    BOOTSTRAP_SEED,
    SYMBOLS,
    Seconds,
    bootstrap_rng,
    nights_between,
    percentile_interval,
    resample_nights,
)

PARAMETERS = ("response_cap_minutes", "visit_overhead_minutes", "hours_per_fte")
"""The benefit parameters (docs/freed-hours.md) the measured method reads."""


@dataclass(frozen=True, slots=True)
class Period:
    """Nights `first` … `last` (labels, both included)."""

    first: date
    last: date


@dataclass
class PeriodInput:
    """What one period's figures are made of."""

    period: Period
    visits: Sequence[Visit]
    """Every visit that may overlap the period's nights: imported and paired from presence."""
    device_times: Mapping[str, Seconds] = field(default_factory=dict)
    """Presence device id → Unix-second times of its messages: a night with any of them is
    measured for the residents the device serves, visits or none."""


@dataclass
class ResidentNightWork:
    """work(r, n) and visits(r, n) of one resident-night."""

    resident_id: str
    night: date
    work_min: float = 0.0
    visits: float = 0.0


def visit_night(index: SiteIndex, entered: datetime, left: datetime) -> tuple[date, float] | None:
    """The night whose window the visit falls in, and its minutes clipped to that window; None
    for a visit wholly outside the nights. A visit of no length counts where it happened."""
    local_day = entered.astimezone(index.tz).date()
    for label in (local_day - timedelta(days=1), local_day):
        lo, hi = index.night_bounds(label)
        inside = entered >= lo if left <= entered else left > lo
        if entered < hi and inside:
            clipped = (min(left, hi) - max(entered, lo)).total_seconds() / 60
            return label, max(clipped, 0.0)
    return None


def _residents_of_visit(index: SiteIndex, visit: Visit) -> list[str]:
    if visit.resident_id is not None:
        return [visit.resident_id] if visit.resident_id in index.residents else []
    return list(index.room_residents.get(visit.room or "", []))


def resident_night_work(
    index: SiteIndex, data: PeriodInput, ward: str | None = None
) -> dict[tuple[str, date], ResidentNightWork]:
    """work(r, n) and visits(r, n) for every measured resident-night of the period.

    work(r, n) = Σ over r's visits of min(minutes in the night, cap) + o; a room's visit is
    split equally between its residents. A resident-night is measured when it has a visit
    record or a presence device serving the resident sent anything in the night.
    """
    p = index.benefit_for(None)
    cap, overhead = p["response_cap_minutes"], p["visit_overhead_minutes"]
    nights = set(nights_between(data.period.first, data.period.last))

    def wanted(resident_id: str) -> bool:
        if ward is None:
            return True
        return index.room_ward.get(index.residents[resident_id].room) == ward

    rows: dict[tuple[str, date], ResidentNightWork] = {}
    for visit in data.visits:
        placed = visit_night(index, visit.entered_at, visit.left_at)
        if placed is None or placed[0] not in nights:
            continue
        night, minutes = placed
        residents = _residents_of_visit(index, visit)
        if not residents:
            continue
        share = 1.0 / len(residents)
        for resident_id in residents:
            if not wanted(resident_id):
                continue
            row = rows.setdefault((resident_id, night), ResidentNightWork(resident_id, night))
            row.work_min += share * (min(minutes, cap) + overhead)
            row.visits += share
    for night in sorted(nights):
        lo, hi = (b.timestamp() for b in index.night_bounds(night))
        for device_id, spans in index.bindings.items():
            times = data.device_times.get(device_id)
            if times is None or times.size == 0:
                continue
            for b in spans:
                if b.kind is not DeviceKind.PRESENCE:
                    continue
                a, z = max(lo, b.start.timestamp()), min(hi, b.end.timestamp())
                if z <= a or not np.any((times >= a) & (times < z)):
                    continue
                for resident_id in index.residents_of(b):
                    if wanted(resident_id):
                        rows.setdefault((resident_id, night), ResidentNightWork(resident_id, night))
    return rows


@dataclass(frozen=True, slots=True)
class NightTotals:
    """One period's measured nights: per night the resident-nights, visits and work."""

    nights: list[date]
    resident_nights: Seconds
    visits: Seconds
    work_min: Seconds

    @classmethod
    def of(cls, rows: Iterable[ResidentNightWork]) -> NightTotals:
        """Sum the resident-nights of each night that has any."""
        per: dict[date, list[float]] = {}
        for r in rows:
            acc = per.setdefault(r.night, [0.0, 0.0, 0.0])
            acc[0] += 1
            acc[1] += r.visits
            acc[2] += r.work_min
        nights = sorted(per)
        cols = np.array([per[n] for n in nights], dtype=np.float64).reshape(-1, 3)
        return cls(nights, cols[:, 0], cols[:, 1], cols[:, 2])

    def mean(self, values: Seconds) -> float | None:
        """Σ values / Σ resident-nights: the mean per resident-night."""
        total = float(self.resident_nights.sum())
        return float(values.sum()) / total if total else None


def _ratio_samples(values: Seconds, weights: Seconds, picks: np.ndarray) -> Seconds:
    sums: Seconds = weights[picks].sum(axis=1)
    out: Seconds = values[picks].sum(axis=1) / sums
    return out


def _difference(
    before: NightTotals, after: NightTotals, which: str, resamples: int
) -> dict[str, Any]:
    b_vals: Seconds = getattr(before, which)
    a_vals: Seconds = getattr(after, which)
    b_mean, a_mean = before.mean(b_vals), after.mean(a_vals)
    if b_mean is None or a_mean is None:
        return {"mean": None, "ci95": [None, None]}
    # nights resampled within each period independently, one fixed-seed stream for both
    rng = bootstrap_rng()
    b_picks = resample_nights(rng, len(before.nights), resamples)
    a_picks = resample_nights(rng, len(after.nights), resamples)
    diffs = _ratio_samples(b_vals, before.resident_nights, b_picks) - _ratio_samples(
        a_vals, after.resident_nights, a_picks
    )
    # expanded for the shorter period: the conservative choice where the two differ
    lo, hi = percentile_interval(diffs, min(len(before.nights), len(after.nights)))
    return {"mean": b_mean - a_mean, "ci95": [lo, hi]}


def _period_json(period: Period, totals: NightTotals) -> dict[str, Any]:
    return {
        "from": period.first.isoformat(),
        "to": period.last.isoformat(),
        "nights": len(totals.nights),
        "resident_nights": int(totals.resident_nights.sum()),
        "visits_per_resident_night": totals.mean(totals.visits),
        "work_minutes_per_resident_night": totals.mean(totals.work_min),
        "by_night": [
            {
                "night": n.isoformat(),
                "resident_nights": int(totals.resident_nights[i]),
                "visits": float(totals.visits[i]),
                "work_minutes": float(totals.work_min[i]),
            }
            for i, n in enumerate(totals.nights)
        ],
    }


def before_after_report(
    index: SiteIndex,
    before: PeriodInput,
    after: PeriodInput,
    modelled_freed_hours_per_night: float | None,
    ward: str | None = None,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> dict[str, Any]:
    """The report (docs/freed-hours.md, "Measured night work") as JSON-ready data."""
    for data in (before, after):
        if data.period.last < data.period.first:
            msg = f"'to' ({data.period.last}) is before 'from' ({data.period.first})"
            raise ValueError(msg)
    b = NightTotals.of(resident_night_work(index, before, ward).values())
    a = NightTotals.of(resident_night_work(index, after, ward).values())
    work = _difference(b, a, "work_min", resamples)
    visits = _difference(b, a, "visits", resamples)
    hours_per_fte = index.benefit_for(None)["hours_per_fte"]
    hours: float | None = None
    if work["mean"] is not None and a.nights:
        # the after period's residents per night, as the freed-hours report counts its site
        per_night = float(a.resident_nights.sum()) / len(a.nights)
        hours = work["mean"] * per_night / 60
    return {
        "site": index.site.site,
        "ward": ward,
        "before": _period_json(before.period, b),
        "after": _period_json(after.period, a),
        "difference": {
            "work_minutes_per_resident_night": work,
            "visits_per_resident_night": visits,
            "hours_per_night": hours,
            "annual_hours": None if hours is None else hours * 365,
            "fte": None if hours is None else hours * 365 / hours_per_fte,
        },
        "modelled": {"freed_hours_per_night": modelled_freed_hours_per_night},
        "assumptions": assumptions(index, resamples),
    }


def assumptions(index: SiteIndex, resamples: int = BOOTSTRAP_RESAMPLES) -> dict[str, Any]:
    """The parameters the measured method used and the rules it counts by."""
    p = index.benefit_for(None)
    return {
        "parameters": {
            key: {"symbol": SYMBOLS[key], "value": p[key], "source": p.sources[key]}
            for key in PARAMETERS
        },
        "work": "work(r, n) = Σ min(minutes in the night, cap) + o over r's visits; a room's "
        "visit is split equally between its residents",
        "measured": "a resident-night counts when it has a visit record or a presence device "
        "serving the resident sent data that night",
        "presence": "one visit per staff_in and the staff_out after it; a staff_in without "
        "one closes after cap",
        "hours_per_night": "the difference per resident-night × the after period's measured "
        "resident-nights per night",
        "bootstrap": {
            "resamples": resamples,
            "seed": BOOTSTRAP_SEED,
            "level": 0.95,
            "method": BOOTSTRAP_METHOD,
            "unit": "nights, resampled within each period independently",
        },
        "night_window": {
            "start": index.site.night.start.strftime("%H:%M"),
            "end": index.site.night.end.strftime("%H:%M"),
            "timezone": index.site.timezone,
        },
    }
