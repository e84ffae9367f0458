"""Freed night-shift hours: the method (docs/freed-hours.md), computed with numpy.

Inputs are what the stores hold — every device message's time and every alarm with its
timestamps — so the figures can be recomputed by anyone from the same data. Nothing here
reads in-memory state of a running hub.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import numpy.typing as npt

from carehub.alarmkinds import RULE_KIND, SENSOR
from carehub.site import Binding, DeviceKind, SiteIndex

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 6  # fixed: the same data always gives the same interval (docs/freed-hours.md)
BOOTSTRAP_METHOD = "expanded percentile"
"""Hesterberg's expanded percentile interval (docs/freed-hours.md, "The interval")."""

Seconds = npt.NDArray[np.float64]

CLOSED = "closed"
"""The alarm state of imported history that was never resolved (docs/alarms.md)."""


@dataclass(frozen=True, slots=True)
class AlarmRecord:
    """The parts of an alarm (docs/alarms.md) the method needs."""

    alarm_id: str
    rule: str
    resident_id: str | None
    room: str | None
    device_id: str | None
    raised_at: datetime
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    outcome: str | None = None
    escalated_at: datetime | None = None
    state: str | None = None
    """`closed`: imported history the earlier system never resolved (docs/freed-hours.md)."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AlarmRecord:
        """From the alarm JSON (docs/alarms.md)."""

        def ts(key: str) -> datetime | None:
            value = data.get(key)
            if value is None or isinstance(value, datetime):
                return value
            return datetime.fromisoformat(str(value))  # Python 3.11+ reads the Z itself

        raised = ts("raised_at")
        if raised is None:
            msg = "alarm without raised_at"
            raise ValueError(msg)
        return cls(
            alarm_id=str(data["alarm_id"]),
            rule=str(data["rule"]),
            resident_id=data.get("resident_id"),
            room=data.get("room"),
            device_id=data.get("device_id"),
            raised_at=raised,
            acknowledged_at=ts("acknowledged_at"),
            acknowledged_by=data.get("acknowledged_by"),
            resolved_at=ts("resolved_at"),
            resolved_by=data.get("resolved_by"),
            outcome=data.get("outcome"),
            escalated_at=ts("escalated_at"),
            state=data.get("state"),
        )

    @property
    def closed_unresolved(self) -> bool:
        """Imported, and the earlier system never resolved it (stored `closed`)."""
        return self.state == CLOSED

    @property
    def attended(self) -> bool:
        """Whether a person went: acknowledged by a person, or resolved by one. An imported
        alarm that was never resolved counts as attended: only a sensor's resolution shows
        that nobody had to go, and assuming otherwise would overstate the freed hours."""
        by_person = self.resolved_by is not None and self.resolved_by != SENSOR
        return self.acknowledged_by is not None or by_person or self.closed_unresolved

    @property
    def outcome_key(self) -> str:
        """How it ended, for counts by outcome: the outcome, else `sensor`, `unresolved`
        (imported, never resolved) or `open`."""
        if self.outcome is not None:
            return self.outcome
        if self.resolved_by == SENSOR:
            return "sensor"
        return "unresolved" if self.closed_unresolved else "open"


# --- coverage ------------------------------------------------------------------------------


def online_intervals(ts: Seconds, supervision_s: float) -> tuple[Seconds, Seconds]:
    """Merged [start, end) intervals a device was online, from its sorted message times.

    A device is online from a message until `supervision_s` passes without another.
    """
    if ts.size == 0:
        empty = np.empty(0, dtype=np.float64)
        return empty, empty
    ts = np.sort(ts)
    ends = ts + supervision_s
    breaks = np.nonzero(ts[1:] > ends[:-1])[0]  # a gap longer than supervision
    starts = np.concatenate(([ts[0]], ts[breaks + 1]))
    # the end of each merged run is the supervision end of the run's last message
    run_last = np.concatenate((breaks, [ts.size - 1]))
    return starts, ends[run_last]


def _clip(starts: Seconds, ends: Seconds, lo: float, hi: float) -> tuple[Seconds, Seconds]:
    s = np.clip(starts, lo, hi)
    e = np.clip(ends, lo, hi)
    keep = e > s
    return s[keep], e[keep]


def all_covered_seconds(
    intervals: Sequence[tuple[Seconds, Seconds]], lo: float, hi: float
) -> float:
    """Seconds within [lo, hi) during which every interval set covers the instant."""
    k = len(intervals)
    if k == 0:
        return 0.0
    starts = [s for s, _ in intervals]
    ends = [e for _, e in intervals]
    points = np.concatenate([*starts, *ends])
    deltas = np.concatenate(
        [np.ones(sum(s.size for s in starts)), -np.ones(sum(e.size for e in ends))]
    )
    if points.size == 0:
        return 0.0
    # ends before starts at the same instant: [a, b) then [b, c) is not an overlap of both
    order = np.lexsort((deltas, points))
    points, deltas = points[order], deltas[order]
    level = np.cumsum(deltas)
    full = level[:-1] == k
    widths = np.diff(points)
    seg_lo = np.clip(points[:-1], lo, hi)
    seg_hi = np.clip(points[1:], lo, hi)
    return float(np.sum(np.where(full, np.clip(seg_hi - seg_lo, 0, None), 0.0) * (widths > 0)))


# --- the report ----------------------------------------------------------------------------


@dataclass
class ResidentNight:
    """One resident on one night: the terms of freed(r, n)."""

    resident_id: str
    ward: str | None
    night: date
    hours: float
    coverage: float
    baseline_min: float
    retained_min: float
    alarm_min: float
    alarm_visits: float
    entries_scheduled: float

    @property
    def freed_min(self) -> float:
        """freed(r, n) = κ·(baseline − C_s·m_c) − alarm_min, in minutes; may be negative."""
        return self.coverage * (self.baseline_min - self.retained_min) - self.alarm_min

    @property
    def entries_avoided(self) -> float:
        """κ·(scheduled entries) minus alarm visits."""
        return self.coverage * self.entries_scheduled - self.alarm_visits


@dataclass
class FreedHoursInput:
    """Everything the method reads, for a period."""

    device_times: Mapping[str, Seconds]
    """device id → sorted message times (Unix seconds, UTC)."""
    alarms: Iterable[AlarmRecord]
    extra: dict[str, Any] = field(default_factory=dict)
    coverage: Mapping[tuple[str, date], float] = field(default_factory=dict)
    """Stored κ per (resident, night) for nights kept only as aggregates (raw events deleted
    by retention); those nights take κ from here instead of from `device_times`."""
    measured: Mapping[date, bool] = field(default_factory=dict)
    """Whether a night kept as an aggregate was measured (`measured_nights`); the other
    nights are judged from `device_times`."""


def nights_between(first: date, last: date) -> list[date]:
    """Night labels from `first` to `last`, both included."""
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def night_messages(
    index: SiteIndex, device_times: Mapping[str, Seconds], lo_s: float, hi_s: float
) -> int:
    """Messages the site's devices sent with a time in [lo_s, hi_s) (sorted Unix seconds)."""
    total = 0
    for device_id in index.bindings:
        times = device_times.get(device_id)
        if times is not None and times.size:
            total += int(np.searchsorted(times, hi_s) - np.searchsorted(times, lo_s))
    return total


def measured_nights(index: SiteIndex, nights: Sequence[date], data: FreedHoursInput) -> list[date]:
    """The nights on which a device of the site sent anything (docs/freed-hours.md,
    "Unmeasured nights"): a night without a single message is no measurement (the hub was
    not running, or not yet), so it must not count as a night of zero coverage."""
    out = []
    for night in nights:
        known = data.measured.get(night)
        if known is None:
            lo, hi = index.night_bounds(night)
            known = night_messages(index, data.device_times, lo.timestamp(), hi.timestamp()) > 0
        if known:
            out.append(night)
    return out


def _bindings_by_resident(index: SiteIndex) -> dict[str, list[Binding]]:
    """resident id → every binding that serves them (their own or their room's), once per
    report rather than once per resident-night. Presence devices are left out: they see the
    staff, not the resident, so they neither stand in for a round nor lower κ."""
    out: dict[str, list[Binding]] = {}
    for spans in index.bindings.values():
        for b in spans:
            if b.kind is DeviceKind.PRESENCE:
                continue
            for resident_id in index.residents_of(b):
                out.setdefault(resident_id, []).append(b)
    return out


def served_resident_nights(index: SiteIndex, nights: Sequence[date]) -> int:
    """Resident-nights on which a device served the resident (the method's resident-nights,
    before the ward filter): the denominator of the per-resident-night figures."""
    serving = _bindings_by_resident(index)
    total = 0
    for night in nights:
        lo, hi = index.night_bounds(night)
        for resident in index.site.residents:
            total += any(b.start < hi and b.end > lo for b in serving.get(resident.id, ()))
    return total


def _alarm_residents(index: SiteIndex, alarm: AlarmRecord) -> list[str]:
    if alarm.resident_id is not None:
        return [alarm.resident_id]
    if alarm.room is not None:
        return list(index.room_residents.get(alarm.room, []))
    return []


def resident_nights(
    index: SiteIndex, first: date, last: date, data: FreedHoursInput, ward: str | None = None
) -> list[ResidentNight]:
    """freed(r, n) terms for every resident with a sensor on every night of the period."""
    nights = nights_between(first, last)
    bounds = {n: index.night_bounds(n) for n in nights}
    # alarms → (resident, night) with their share (a room alarm is shared by the room)
    alarm_terms: dict[tuple[str, date], list[tuple[AlarmRecord, float]]] = {}
    for alarm in data.alarms:
        night = index.night_of(alarm.raised_at)
        if night is None or night not in bounds:
            continue
        residents = _alarm_residents(index, alarm)
        for r in residents:
            alarm_terms.setdefault((r, night), []).append((alarm, 1.0 / len(residents)))
    intervals_cache: dict[tuple[str, float], tuple[Seconds, Seconds]] = {}
    serving = _bindings_by_resident(index)
    rows: list[ResidentNight] = []
    for resident in index.site.residents:
        resident_ward = index.room_ward.get(resident.room)
        if ward is not None and resident_ward != ward:
            continue
        p = index.benefit_for(resident.id)
        for night in nights:
            lo, hi = bounds[night]
            bound = [b for b in serving.get(resident.id, ()) if b.start < hi and b.end > lo]
            if not bound:
                continue  # no sensor, no claim
            lo_s, hi_s = lo.timestamp(), hi.timestamp()
            kinds = {b.kind for b in bound}
            has_diaper = DeviceKind.DIAPER in kinds
            has_dispenser = DeviceKind.MEDICATION in kinds
            stored = data.coverage.get((resident.id, night))
            if stored is not None:
                kappa = stored  # the raw messages of this night are gone; κ was kept
            else:
                sets = []
                for b in bound:
                    key = (b.device_id, b.heartbeat_seconds)
                    if key not in intervals_cache:
                        times = data.device_times.get(b.device_id, np.empty(0))
                        intervals_cache[key] = online_intervals(times, 3 * b.heartbeat_seconds)
                    s, e = intervals_cache[key]
                    s, e = _clip(s, e, lo_s, hi_s)
                    # outside its binding the device need not be online for this resident
                    b_lo, b_hi = max(lo_s, b.start.timestamp()), min(hi_s, b.end.timestamp())
                    free = [(lo_s, b_lo), (b_hi, hi_s)]
                    extra_s = np.array([a for a, z in free if z > a], dtype=np.float64)
                    extra_e = np.array([z for a, z in free if z > a], dtype=np.float64)
                    sets.append((np.concatenate((s, extra_s)), np.concatenate((e, extra_e))))
                covered = all_covered_seconds(sets, lo_s, hi_s)
                kappa = covered / (hi_s - lo_s)
            baseline = p["checks_per_night"] * p["check_minutes"]
            baseline += has_diaper * p["changes_per_night"] * p["change_minutes"]
            baseline += has_dispenser * p["medication_rounds_per_night"] * p["medication_minutes"]
            alarm_min = 0.0
            visits = 0.0
            for alarm, share in alarm_terms.get((resident.id, night), []):
                if not alarm.attended:
                    continue  # resolved by the sensor without a person: costs nobody time
                start = alarm.acknowledged_at
                end = alarm.resolved_at
                if start is not None and end is not None and end >= start:
                    minutes = min((end - start).total_seconds() / 60, p["response_cap_minutes"])
                else:
                    minutes = p[f"response_minutes.{RULE_KIND.get(alarm.rule, 'technical')}"]
                alarm_min += share * (minutes + p["visit_overhead_minutes"])
                visits += share
            entries = p["checks_per_night"] - p["retained_checks_per_night"]
            entries += has_diaper * p["changes_per_night"]
            entries += has_dispenser * p["medication_rounds_per_night"]
            rows.append(
                ResidentNight(
                    resident_id=resident.id,
                    ward=resident_ward,
                    night=night,
                    hours=(hi_s - lo_s) / 3600,
                    coverage=kappa,
                    baseline_min=baseline,
                    retained_min=p["retained_checks_per_night"] * p["check_minutes"],
                    alarm_min=alarm_min,
                    alarm_visits=visits,
                    entries_scheduled=entries,
                )
            )
    return rows


def bootstrap_rng() -> np.random.Generator:
    """The bootstrap's random stream, from the fixed seed (docs/freed-hours.md)."""
    return np.random.default_rng(BOOTSTRAP_SEED)


def resample_nights(
    rng: np.random.Generator, nights: int, resamples: int = BOOTSTRAP_RESAMPLES
) -> npt.NDArray[np.int64]:
    """`resamples` rows of `nights` night indices drawn with replacement."""
    return rng.integers(0, nights, size=(resamples, nights))


def expanded_tail(nights: int, level: float = 0.95) -> float:
    """The tail share each end of an expanded percentile interval over `nights` nights.

    A plain percentile interval of a mean of n nights is as narrow as a z interval with the
    variance divided by n instead of n - 1: with 56 nights it held the true effect 94.5 % of
    the time (docs/freed-hours.md). Hesterberg (2015, The American Statistician 69:4) widens
    it to the t interval's width: the tail is Φ(-√(n/(n-1)) · t_{(1+level)/2, n-1}). One
    night has no spread to widen; two nights give the whole resampled range.
    """
    if nights < 2:
        return (1 - level) / 2
    # imported here: scipy.special is ~20 MB of a hub that computes a report now and then
    from scipy.special import ndtr, stdtrit

    t = float(stdtrit(nights - 1, (1 + level) / 2))
    return float(ndtr(-np.sqrt(nights / (nights - 1)) * t))


def percentile_interval(statistics: Seconds, nights: int) -> tuple[float, float]:
    """The 95 % expanded percentile interval of bootstrap statistics of `nights` nights."""
    tail = expanded_tail(nights)
    lo, hi = np.percentile(statistics, [100 * tail, 100 * (1 - tail)])
    return float(lo), float(hi)


def bootstrap_ci(per_night: Seconds, resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float]:
    """95 % bootstrap interval of the mean, resampling nights, fixed seed."""
    if per_night.size == 0:
        return (float("nan"), float("nan"))
    picks = resample_nights(bootstrap_rng(), per_night.size, resamples)
    return percentile_interval(per_night[picks].mean(axis=1), per_night.size)


def _by_night(rows: list[ResidentNight]) -> dict[date, list[ResidentNight]]:
    """Rows grouped by night, each group in row order (so sums equal a filtered scan's):
    one pass, where filtering per night is nights × rows (a year of 500 residents: 67 M)."""
    out: dict[date, list[ResidentNight]] = {}
    for r in rows:
        out.setdefault(r.night, []).append(r)
    return out


def _summary(rows: list[ResidentNight], nights: list[date], hours_per_fte: float) -> dict[str, Any]:
    grouped = _by_night(rows)
    per_night = np.array(
        [sum(r.freed_min for r in grouped.get(n, ())) / 60 for n in nights], dtype=np.float64
    )
    # no measured night, or no resident-night on them (a ward without a served resident): no
    # mean and no interval (null in the JSON), never a made-up zero (docs/freed-hours.md)
    if rows:  # rows are of the counted nights, so there is at least one
        mean = float(per_night.mean())
        lo, hi = bootstrap_ci(per_night)
    else:
        mean, lo, hi = float("nan"), float("nan"), float("nan")
    return {
        "nights": len(nights),
        "resident_nights": len(rows),
        "freed_hours_total": float(per_night.sum()),
        "freed_hours_per_night": {"mean": mean, "ci95": [lo, hi]},
        "annual_hours": mean * 365,
        "fte": mean * 365 / hours_per_fte,
        "coverage_mean": float(np.mean([r.coverage for r in rows])) if rows else float("nan"),
        "room_entries_avoided": float(sum(r.entries_avoided for r in rows)),
    }


def _percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p90": None, "n": 0}
    arr = np.array(values)
    return {
        "median": float(np.median(arr)),
        "p90": float(np.percentile(arr, 90)),
        "n": len(values),
    }


def measured_period(
    index: SiteIndex,
    first: date,
    last: date,
    data: FreedHoursInput,
    *,
    from_first_measured: bool = False,
) -> tuple[date, list[date], list[date]]:
    """(first night, measured nights, unmeasured nights) of a period. With
    `from_first_measured` (a report's default period, docs/freed-hours.md) the period starts
    at its first measured night, when it has one."""
    nights = nights_between(first, last)
    measured = measured_nights(index, nights, data)
    if from_first_measured and measured:
        first = measured[0]
        nights = nights_between(first, last)
    kept = set(measured)
    return first, measured, [n for n in nights if n not in kept]


def freed_hours_report(
    index: SiteIndex,
    first: date,
    last: date,
    data: FreedHoursInput,
    ward: str | None = None,
    *,
    from_first_measured: bool = False,
) -> dict[str, Any]:
    """The report (docs/freed-hours.md) as JSON-ready data, over the measured nights of the
    period; `from_first_measured` for a default period (it starts at the first of them)."""
    if last < first:
        msg = f"'to' ({last}) is before 'from' ({first})"
        raise ValueError(msg)
    alarms = list(data.alarms)
    data = FreedHoursInput(data.device_times, alarms, data.extra, data.coverage, data.measured)
    first, nights, unmeasured = measured_period(
        index, first, last, data, from_first_measured=from_first_measured
    )
    counted = set(nights)
    rows = [r for r in resident_nights(index, first, last, data, ward) if r.night in counted]
    site_p = index.benefit_for(None)
    report: dict[str, Any] = {
        "site": index.site.site,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "ward": ward,
        **_summary(rows, nights, site_p["hours_per_fte"]),
        "unmeasured_nights": [n.isoformat() for n in unmeasured],
    }
    ward_rows: dict[str | None, list[ResidentNight]] = {}
    resident_rows: dict[str, list[ResidentNight]] = {}
    for r in rows:
        ward_rows.setdefault(r.ward, []).append(r)
        resident_rows.setdefault(r.resident_id, []).append(r)
    report["by_ward"] = {
        w.id: _summary(ward_rows.get(w.id, []), nights, site_p["hours_per_fte"])
        for w in index.site.wards
        if ward is None or w.id == ward
    }
    by_resident: dict[str, Any] = {}
    for resident_id in sorted(resident_rows):
        mine = resident_rows[resident_id]
        by_resident[resident_id] = {
            "ward": mine[0].ward,
            "nights": len(mine),
            "freed_hours_total": sum(r.freed_min for r in mine) / 60,
            "coverage_mean": float(np.mean([r.coverage for r in mine])),
            "alarm_minutes": sum(r.alarm_min for r in mine),
            "baseline_minutes_per_night": mine[0].baseline_min,
            "room_entries_avoided": sum(r.entries_avoided for r in mine),
        }
    report["by_resident"] = by_resident
    night_rows = _by_night(rows)
    report["by_night"] = [
        {
            "night": n.isoformat(),
            "hours": (index.night_bounds(n)[1] - index.night_bounds(n)[0]).total_seconds() / 3600,
            "freed_hours_total": sum(r.freed_min for r in night_rows.get(n, ())) / 60,
            "resident_nights": len(night_rows.get(n, ())),
            "coverage_mean": float(np.mean([r.coverage for r in night_rows[n]]))
            if night_rows.get(n)
            else 0.0,
        }
        for n in nights
    ]
    in_period = [a for a in alarms if index.night_of(a.raised_at) in counted]
    if ward is not None:
        in_period = [a for a in in_period if index.room_ward.get(_room(index, a) or "") == ward]
    by_rule: dict[str, dict[str, int]] = {}
    for a in in_period:
        by_rule.setdefault(a.rule, {})
        key = a.outcome_key
        by_rule[a.rule][key] = by_rule[a.rule].get(key, 0) + 1
    report["alarms"] = {"total": len(in_period), "by_rule_outcome": by_rule}
    report["acknowledge_minutes"] = _percentiles(
        [
            (a.acknowledged_at - a.raised_at).total_seconds() / 60
            for a in in_period
            if a.acknowledged_at is not None
        ]
    )
    report["response_minutes"] = _percentiles(
        [
            (a.resolved_at - a.acknowledged_at).total_seconds() / 60
            for a in in_period
            if a.acknowledged_at is not None and a.resolved_at is not None
        ]
    )
    report["assumptions"] = assumptions(index)
    return report


def _room(index: SiteIndex, alarm: AlarmRecord) -> str | None:
    if alarm.room is not None:
        return alarm.room
    resident = index.residents.get(alarm.resident_id or "")
    return resident.room if resident else None


SYMBOLS = {
    "checks_per_night": "C_b",
    "check_minutes": "m_c",
    "changes_per_night": "D_b",
    "change_minutes": "m_d",
    "medication_rounds_per_night": "M_b",
    "medication_minutes": "m_m",
    "retained_checks_per_night": "C_s",
    "visit_overhead_minutes": "o",
    "response_minutes.fall": "d_fall",
    "response_minutes.diaper": "d_diaper",
    "response_minutes.medication": "d_medication",
    "response_minutes.technical": "d_technical",
    "response_cap_minutes": "cap",
    "hours_per_fte": "H",
}


def assumptions(index: SiteIndex) -> dict[str, Any]:
    """The parameters used, where each came from, and every per-resident override."""
    site_p = index.benefit_for(None)
    params = {
        key: {"symbol": SYMBOLS[key], "value": site_p[key], "source": site_p.sources[key]}
        for key in SYMBOLS
    }
    overrides: dict[str, dict[str, float]] = {}
    for resident in index.site.residents:
        p = index.benefit_for(resident.id)
        mine = {k: p[k] for k in SYMBOLS if p.sources[k] == "resident"}
        if mine:
            overrides[resident.id] = mine
    return {
        "parameters": params,
        "resident_overrides": overrides,
        "defaults_used": sorted(k for k, v in params.items() if v["source"] == "default"),
        "supervision": "a device is online from a message until 3 heartbeat intervals pass "
        "without another",
        "bootstrap": {
            "resamples": BOOTSTRAP_RESAMPLES,
            "seed": BOOTSTRAP_SEED,
            "level": 0.95,
            "method": BOOTSTRAP_METHOD,
        },
        "night_window": {
            "start": index.site.night.start.strftime("%H:%M"),
            "end": index.site.night.end.strftime("%H:%M"),
            "timezone": index.site.timezone,
        },
        "note": "Defaults are placeholders until the care home measures its own values.",
    }
