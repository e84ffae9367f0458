"""How the equipment and the alarms were used: the manager's second report.

Freed minutes are not always a freed post: night staffing is set by the moments when two or
more residents need a person at once. So besides totals this report shows concurrency — how
often, and in which hour of the night, alarms overlapped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from carehub.site import SiteIndex
from services.reports.freed_hours import (
    AlarmRecord,
    Seconds,
    _clip,
    all_covered_seconds,
    nights_between,
    online_intervals,
)


@dataclass(frozen=True, slots=True)
class EventRecord:
    """The parts of a canonical event the utilisation report reads."""

    device_id: str
    resident_id: str | None
    type: str
    ts: datetime
    data: Mapping[str, Any] = field(default_factory=dict)


def _stats(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "median": None, "p90": None, "max": None}
    arr = np.array(values)
    return {
        "n": len(values),
        "median": round(float(np.median(arr)), 2),
        "p90": round(float(np.percentile(arr, 90)), 2),
        "max": round(float(arr.max()), 2),
    }


RESPONSE_BINS = (0, 5, 10, 15, 20, 30, 45, 60)
"""Minutes; the last bin is open-ended (60+)."""


def _histogram(values: list[float], edges: tuple[int, ...]) -> list[dict[str, Any]]:
    """Counts per bin [edges[i], edges[i+1]); the last bin holds everything from its edge."""
    counts = [0] * len(edges)
    for v in values:
        i = max(j for j, e in enumerate(edges) if v >= e) if v >= edges[0] else 0
        counts[i] += 1
    return [
        {"from": lo, "to": edges[i + 1] if i + 1 < len(edges) else None, "count": counts[i]}
        for i, lo in enumerate(edges)
    ]


def _hour_slots(index: SiteIndex) -> list[int]:
    """Local hours of the night in order, e.g. 22, 23, 0, ..., 6."""
    start, end = index.site.night.start.hour, index.site.night.end.hour
    end_h = end if index.site.night.end.minute == 0 else end + 1
    hours, h = [], start
    while True:
        hours.append(h % 24)
        h += 1
        if h % 24 == end_h % 24:
            return hours


def utilisation_report(
    index: SiteIndex,
    first: date,
    last: date,
    alarms: Iterable[AlarmRecord],
    events: Iterable[EventRecord],
    device_times: Mapping[str, Seconds],
) -> dict[str, Any]:
    """Alarms, response times, coverage, adherence, diaper changes and concurrency."""
    nights = nights_between(first, last)
    lo = index.night_bounds(first)[0]
    hi = index.night_bounds(last)[1]
    in_nights = [a for a in alarms if (n := index.night_of(a.raised_at)) and first <= n <= last]
    slots = _hour_slots(index)

    by_rule: dict[str, dict[str, Any]] = {}
    by_hour = {h: 0 for h in slots}
    for a in in_nights:
        r = by_rule.setdefault(a.rule, {"count": 0, "outcomes": {}, "escalated": 0})
        r["count"] += 1
        key = a.outcome or ("sensor" if a.resolved_by == "sensor" else "open")
        r["outcomes"][key] = r["outcomes"].get(key, 0) + 1
        r["escalated"] += a.escalated_at is not None
        hour = a.raised_at.astimezone(index.tz).hour
        if hour in by_hour:
            by_hour[hour] += 1
    resolved_by_person = [a for a in in_nights if a.outcome is not None]
    false_alarms = sum(1 for a in resolved_by_person if a.outcome == "false_alarm")

    ack = [
        (a.acknowledged_at - a.raised_at).total_seconds() / 60
        for a in in_nights
        if a.acknowledged_at
    ]
    response = [
        (a.resolved_at - a.acknowledged_at).total_seconds() / 60
        for a in in_nights
        if a.acknowledged_at and a.resolved_at
    ]

    # Device uptime over the nights of the period.
    uptime: dict[str, float] = {}
    night_spans = [index.night_bounds(n) for n in nights]
    night_total = sum((n_hi - n_lo).total_seconds() for n_lo, n_hi in night_spans)
    for device_id, bindings in index.bindings.items():
        starts, ends = online_intervals(
            device_times.get(device_id, np.empty(0)), 3 * bindings[0].heartbeat_seconds
        )
        up = 0.0
        for n_lo, n_hi in night_spans:
            s, e = _clip(starts, ends, n_lo.timestamp(), n_hi.timestamp())
            up += all_covered_seconds([(s, e)], n_lo.timestamp(), n_hi.timestamp())
        uptime[device_id] = round(up / night_total, 4) if night_total else 0.0

    # Medication adherence and diaper changes from the events.
    window = timedelta(minutes=index.site.rules.dose_missed.window_minutes)
    doses: dict[tuple[str, str], dict[str, Any]] = {}
    changes: dict[str, list[float]] = {}
    last_level: dict[str, float] = {}
    for ev in sorted(events, key=lambda e: e.ts):
        if not lo <= ev.ts < hi:
            continue
        if ev.type in ("dose_due", "taken", "missed") and "dose_id" in ev.data:
            d = doses.setdefault((ev.device_id, str(ev.data["dose_id"])), {})
            if ev.type == "dose_due":
                due = ev.data.get("due")
                d["due"] = datetime.fromisoformat(str(due).replace("Z", "+00:00")) if due else ev.ts
            else:
                d.setdefault(ev.type, ev.ts)
        elif ev.type == "saturation":
            last_level[ev.device_id] = float(ev.data.get("level", 0))
        elif ev.type == "detached" and ev.resident_id and index.night_of(ev.ts) is not None:
            changes.setdefault(ev.resident_id, []).append(last_level.get(ev.device_id, 0.0))
            last_level[ev.device_id] = 0.0
    due_count = sum(1 for d in doses.values() if "due" in d)
    on_time = sum(
        1 for d in doses.values() if "due" in d and "taken" in d and d["taken"] - d["due"] <= window
    )
    missed = sum(1 for d in doses.values() if "due" in d and ("missed" in d or "taken" not in d))

    diaper_residents = {
        r
        for spans in index.bindings.values()
        for b in spans
        if b.kind.value == "diaper"
        for r in index.residents_of(b)
    }
    resident_nights = len(diaper_residents) * len(nights)
    all_levels = [lvl for levels in changes.values() for lvl in levels]

    return {
        "site": index.site.site,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "nights": len(nights),
        "alarms": {
            "total": len(in_nights),
            "by_rule": by_rule,
            "by_hour_of_night": [{"hour": h, "count": by_hour[h]} for h in slots],
            "escalated": sum(r["escalated"] for r in by_rule.values()),
            "false_alarm_share": round(false_alarms / len(resolved_by_person), 4)
            if resolved_by_person
            else None,
        },
        "acknowledge_minutes": _stats(ack),
        "response_minutes": _stats(response),
        "response_minutes_histogram": _histogram(response, RESPONSE_BINS),
        "device_uptime": uptime,
        "coverage_mean": round(float(np.mean(list(uptime.values()))), 4) if uptime else 0.0,
        "medication": {
            "doses_due": due_count,
            "taken_on_time": on_time,
            "missed": missed,
            "adherence": round(on_time / due_count, 4) if due_count else None,
        },
        "diaper": {
            "changes": len(all_levels),
            "changes_per_resident_night": round(len(all_levels) / resident_nights, 3)
            if resident_nights
            else None,
            "saturation_at_change": _stats(all_levels),
        },
        "concurrency": concurrency(index, in_nights, slots),
    }


def concurrency(index: SiteIndex, alarms: list[AlarmRecord], slots: list[int]) -> dict[str, Any]:
    """How often two or more alarms needed a person at once, by local hour of the night.

    An alarm needs a person from when it is raised until it is resolved; alarms the sensor
    resolved alone are left out. Minutes with ≥ 2 such alarms open are summed per hour.
    """
    spans = [
        (a.raised_at.timestamp(), a.resolved_at.timestamp())
        for a in alarms
        if a.resolved_at is not None and a.resolved_by != "sensor" and a.resolved_at > a.raised_at
    ]
    minutes_by_hour = {h: 0.0 for h in slots}
    overlaps_by_hour = {h: 0 for h in slots}
    peak = 0
    if spans:
        points = np.array([p for s in spans for p in s])
        deltas = np.array([d for _ in spans for d in (1, -1)])
        order = np.lexsort((deltas, points))
        points, deltas = points[order], deltas[order]
        level = np.cumsum(deltas)
        peak = int(level.max())
        for i in range(len(points) - 1):
            if level[i] >= 2 and points[i + 1] > points[i]:
                _spread(index, points[i], points[i + 1], minutes_by_hour)
            if deltas[i] == 1 and level[i] >= 2:
                hour = datetime.fromtimestamp(points[i], index.tz).hour
                if hour in overlaps_by_hour:
                    overlaps_by_hour[hour] += 1
    return {
        "peak_simultaneous": peak,
        "overlap_starts": sum(overlaps_by_hour.values()),
        "minutes_with_two_or_more": round(sum(minutes_by_hour.values()), 2),
        "by_hour_of_night": [
            {
                "hour": h,
                "overlap_starts": overlaps_by_hour[h],
                "minutes_with_two_or_more": round(minutes_by_hour[h], 2),
            }
            for h in slots
        ],
    }


def _spread(index: SiteIndex, a: float, b: float, into: dict[int, float]) -> None:
    """Add the minutes of [a, b) to the local hours they fall in."""
    t = a
    while t < b:
        local = datetime.fromtimestamp(t, index.tz)
        # Danish (and all European) offsets are whole hours, so local hours start on UTC hours.
        end = min(b, (math.floor(t / 3600) + 1) * 3600)
        if local.hour in into:
            into[local.hour] += (end - t) / 60
        t = end
