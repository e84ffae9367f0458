"""How the equipment and the alarms were used: the manager's second report.

Freed minutes are not always a freed post: night staffing is set by the moments when two or
more residents need a person at once. So besides totals this report shows concurrency — how
often, and in which hour of the night, alarms overlapped.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np

from carehub.alarmkinds import SENSOR
from carehub.site import SiteIndex
from services.reports.freed_hours import (
    AlarmRecord,
    Seconds,
    _clip,
    all_covered_seconds,
    night_messages,
    nights_between,
    online_intervals,
    served_resident_nights,
)


@dataclass(frozen=True, slots=True)
class EventRecord:
    """The parts of a canonical event the utilisation report reads."""

    device_id: str
    resident_id: str | None
    type: str
    ts: datetime
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One send to a phone, as the utilisation report reads it (docs/notifications.md)."""

    alarm_id: str
    channel: str
    step: str
    status: str
    sent_at: datetime | None
    """When the channel took it; None unless `status` is "sent"."""

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DeliveryRecord:
        """From a delivery record (`GET /api/alarms/{id}`'s, with its `alarm_id`)."""
        done = data.get("done_at")
        sent = data.get("status") == "sent" and done is not None
        return cls(
            alarm_id=str(data["alarm_id"]),
            channel=str(data["channel"]),
            step=str(data["step"]),
            status=str(data["status"]),
            sent_at=datetime.fromisoformat(str(done)) if sent else None,
        )


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


LEVEL_LOOKBACK = timedelta(hours=1)
"""A diaper change reads the sensor's last saturation up to this long before the night."""


@dataclass
class NightUse:
    """One night's equipment figures: device uptime, doses, diaper changes.

    Additive over nights, so a night kept only as an aggregate (its raw events deleted by
    retention, `CAREHUB_RETENTION_DAYS`) adds exactly what it added while its events existed.
    """

    night_seconds: float
    uptime_seconds: dict[str, float] = field(default_factory=dict)
    """device id → seconds online during the night."""
    doses_due: int = 0
    """Doses offered (`dose_due`) during the night."""
    taken_on_time: int = 0
    missed: int = 0
    change_levels: list[float] = field(default_factory=list)
    """The saturation read before each diaper change (`detached`) of the night."""
    messages: int | None = None
    """Messages the site's devices sent with a time inside the night; None in a night kept
    before this was counted (`measured` then falls back on the uptime)."""

    @property
    def measured(self) -> bool:
        """Whether a device of the site sent anything that night (docs/freed-hours.md,
        "Unmeasured nights"). A night kept without its count is measured when a device was
        online in it, which a message at most three heartbeats before its start also makes."""
        if self.messages is not None:
            return self.messages > 0
        return any(v > 0 for v in self.uptime_seconds.values())

    def to_json(self) -> dict[str, Any]:
        """For the aggregate store."""
        return {
            "night_seconds": self.night_seconds,
            "uptime_seconds": self.uptime_seconds,
            "doses_due": self.doses_due,
            "taken_on_time": self.taken_on_time,
            "missed": self.missed,
            "change_levels": self.change_levels,
            "messages": self.messages,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> NightUse:
        """Back from the aggregate store."""
        messages = data.get("messages")
        return cls(
            night_seconds=float(data["night_seconds"]),
            uptime_seconds={str(k): float(v) for k, v in data["uptime_seconds"].items()},
            doses_due=int(data["doses_due"]),
            taken_on_time=int(data["taken_on_time"]),
            missed=int(data["missed"]),
            change_levels=[float(v) for v in data["change_levels"]],
            messages=None if messages is None else int(messages),
        )


def events_window(index: SiteIndex, first: date, last: date) -> tuple[datetime, datetime]:
    """The event times the nights of a period read: a diaper's last reading before the first
    night, and a dose offered at the end of the last night being taken within its window."""
    window = timedelta(minutes=index.site.rules.dose_missed.window_minutes)
    return index.night_bounds(first)[0] - LEVEL_LOOKBACK, index.night_bounds(last)[1] + window


def _intervals(
    index: SiteIndex, device_times: Mapping[str, Seconds]
) -> dict[str, tuple[Seconds, Seconds]]:
    return {
        device_id: online_intervals(
            device_times.get(device_id, np.empty(0)), 3 * bindings[0].heartbeat_seconds
        )
        for device_id, bindings in index.bindings.items()
    }


def night_uses(
    index: SiteIndex,
    first: date,
    last: date,
    events: Iterable[EventRecord],
    device_times: Mapping[str, Seconds],
) -> dict[date, NightUse]:
    """Every night's equipment figures from the raw events and message times."""
    intervals = _intervals(index, device_times)
    ordered = sorted(events, key=lambda e: e.ts)
    times = [e.ts for e in ordered]
    window = timedelta(minutes=index.site.rules.dose_missed.window_minutes)
    out: dict[date, NightUse] = {}
    for night in nights_between(first, last):
        n_lo, n_hi = index.night_bounds(night)
        lo_s, hi_s = n_lo.timestamp(), n_hi.timestamp()
        use = NightUse(
            night_seconds=hi_s - lo_s,
            messages=night_messages(index, device_times, lo_s, hi_s),
        )
        for device_id, (starts, ends) in intervals.items():
            s, e = _clip(starts, ends, lo_s, hi_s)
            use.uptime_seconds[device_id] = all_covered_seconds([(s, e)], lo_s, hi_s)
        a = bisect.bisect_left(times, n_lo - LEVEL_LOOKBACK)
        b = bisect.bisect_left(times, n_hi + window)
        doses: dict[tuple[str, str], dict[str, datetime]] = {}
        last_level: dict[str, float] = {}
        for ev in ordered[a:b]:
            if ev.type == "dose_due" and "dose_id" in ev.data and n_lo <= ev.ts < n_hi:
                due = ev.data.get("due")
                doses[(ev.device_id, str(ev.data["dose_id"]))] = {
                    "due": datetime.fromisoformat(str(due).replace("Z", "+00:00")) if due else ev.ts
                }
            elif ev.type in ("taken", "missed") and "dose_id" in ev.data:
                dose = doses.get((ev.device_id, str(ev.data["dose_id"])))
                if dose is not None:
                    dose.setdefault(ev.type, ev.ts)
            elif ev.ts >= n_hi:
                continue
            elif ev.type == "saturation":
                last_level[ev.device_id] = float(ev.data.get("level", 0))
            elif ev.type == "detached" and ev.resident_id and ev.ts >= n_lo:
                use.change_levels.append(last_level.get(ev.device_id, 0.0))
                last_level[ev.device_id] = 0.0
        use.doses_due = len(doses)
        use.taken_on_time = sum(
            1 for d in doses.values() if "taken" in d and d["taken"] - d["due"] <= window
        )
        use.missed = sum(1 for d in doses.values() if "missed" in d or "taken" not in d)
        out[night] = use
    return out


def utilisation_report(
    index: SiteIndex,
    first: date,
    last: date,
    alarms: Iterable[AlarmRecord],
    events: Iterable[EventRecord],
    device_times: Mapping[str, Seconds],
    stored: Mapping[date, NightUse] | None = None,
    deliveries: Iterable[DeliveryRecord] = (),
    *,
    from_first_measured: bool = False,
) -> dict[str, Any]:
    """Alarms, response times, coverage, adherence, diaper changes, concurrency, the alarms'
    quality, and how fast the phones heard (`deliveries`, the notification outbox).

    `stored` holds the equipment figures of nights kept only as aggregates; the other nights
    are computed from `events` and `device_times`. Alarms are never pruned. Figures that
    average over nights read the measured nights only (docs/freed-hours.md, "Unmeasured
    nights"); `from_first_measured` (a default period) starts the period at the first one.
    """
    stored = stored or {}
    nights = nights_between(first, last)
    raw = [n for n in nights if n not in stored]
    computed = night_uses(index, min(raw), max(raw), events, device_times) if raw else {}
    use_of = {n: stored[n] if n in stored else computed[n] for n in nights}
    measured = [n for n in nights if use_of[n].measured]
    if from_first_measured and measured:
        first = measured[0]
        nights = nights_between(first, last)
    counted = set(measured)
    unmeasured = [n for n in nights if n not in counted]
    in_nights = [a for a in alarms if (n := index.night_of(a.raised_at)) and first <= n <= last]
    slots = _hour_slots(index)

    by_rule: dict[str, dict[str, Any]] = {}
    by_hour = {h: 0 for h in slots}
    for a in in_nights:
        r = by_rule.setdefault(a.rule, {"count": 0, "outcomes": {}, "escalated": 0})
        r["count"] += 1
        key = a.outcome_key
        r["outcomes"][key] = r["outcomes"].get(key, 0) + 1
        r["escalated"] += a.escalated_at is not None
        hour = a.raised_at.astimezone(index.tz).hour
        if hour in by_hour:
            by_hour[hour] += 1
    judged = [a for a in in_nights if a.outcome is not None]
    false_alarms = sum(1 for a in judged if a.outcome == "false_alarm")

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

    uses = [use_of[n] for n in measured]

    # Device uptime over the measured nights of the period.
    night_total = sum(u.night_seconds for u in uses)
    uptime: dict[str, float] = {}
    for device_id in index.bindings:
        up = 0.0
        for u in uses:
            up += u.uptime_seconds.get(device_id, 0.0)
        uptime[device_id] = round(up / night_total, 4) if night_total else 0.0

    due_count = sum(u.doses_due for u in uses)
    on_time = sum(u.taken_on_time for u in uses)
    missed = sum(u.missed for u in uses)

    diaper_residents = {
        r
        for spans in index.bindings.values()
        for b in spans
        if b.kind.value == "diaper"
        for r in index.residents_of(b)
    }
    resident_nights = len(diaper_residents) * len(measured)
    all_levels = [lvl for u in uses for lvl in u.change_levels]

    return {
        "site": index.site.site,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "nights": len(measured),
        "unmeasured_nights": [n.isoformat() for n in unmeasured],
        "alarms": {
            "total": len(in_nights),
            "on_unmeasured_nights": sum(
                1 for a in in_nights if index.night_of(a.raised_at) not in counted
            ),
            "by_rule": by_rule,
            "by_hour_of_night": [{"hour": h, "count": by_hour[h]} for h in slots],
            "escalated": sum(r["escalated"] for r in by_rule.values()),
            "false_alarm_share": round(false_alarms / len(judged), 4) if judged else None,
        },
        "alarm_quality": alarm_quality(index, in_nights, measured, deliveries),
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
        "notify": notify_times(in_nights, deliveries),
    }


FALL_RULE = "fall"
"""A fall the sensor detected (a bed exit is of kind fall too, but nobody fell)."""


def alarm_quality(
    index: SiteIndex,
    alarms: list[AlarmRecord],
    measured: list[date],
    deliveries: Iterable[DeliveryRecord],
) -> dict[str, Any]:
    """How good the alarms were and how fast they reached a person (docs/freed-hours.md,
    "Alarm quality"): alarms per resident-night, the false-alarm share, alarms nobody
    acknowledged and how they ended, falls and falls where staff assisted, and raise → first
    phone notification → acknowledgement.

    `alarms` are those of the period's nights; the rate per resident-night divides the ones
    of the measured nights by the measured resident-nights.
    """
    counted = set(measured)
    on_measured = sum(1 for a in alarms if index.night_of(a.raised_at) in counted)
    resident_nights = served_resident_nights(index, measured)
    judged = [a for a in alarms if a.outcome is not None]
    false_alarms = sum(1 for a in judged if a.outcome == "false_alarm")
    unacknowledged = [a for a in alarms if a.acknowledged_at is None]
    falls = [a for a in alarms if a.rule == FALL_RULE]

    first_send: dict[str, datetime] = {}
    by_id = {a.alarm_id: a for a in alarms}
    for d in deliveries:
        if d.sent_at is None or d.step == "taken" or d.alarm_id not in by_id:
            continue
        if d.alarm_id not in first_send or d.sent_at < first_send[d.alarm_id]:
            first_send[d.alarm_id] = d.sent_at
    to_send = [(t - by_id[i].raised_at).total_seconds() for i, t in first_send.items()]
    to_ack = [
        (ack - by_id[i].raised_at).total_seconds()
        for i in first_send
        if (ack := by_id[i].acknowledged_at) is not None
    ]
    return {
        "resident_nights": resident_nights,
        "alarms_on_measured_nights": on_measured,
        "alarms_per_resident_night": round(on_measured / resident_nights, 4)
        if resident_nights
        else None,
        "false_alarms": false_alarms,
        "judged_by_person": len(judged),
        "false_alarm_share": round(false_alarms / len(judged), 4) if judged else None,
        "never_acknowledged": {
            "total": len(unacknowledged),
            "resolved_by_person": sum(
                1 for a in unacknowledged if a.resolved_by not in (None, SENSOR)
            ),
            "resolved_by_sensor": sum(1 for a in unacknowledged if a.resolved_by == SENSOR),
            "unresolved": sum(1 for a in unacknowledged if a.closed_unresolved),
            "open": sum(
                1 for a in unacknowledged if a.resolved_by is None and not a.closed_unresolved
            ),
        },
        "falls": {
            "total": len(falls),
            "assisted": sum(1 for a in falls if a.outcome == "assisted"),
        },
        "phones": {
            "alarms_notified": len(first_send),
            "to_first_notification_seconds": _stats(to_send),
            "to_acknowledge_seconds": _stats(to_ack),
        },
    }


def notify_times(
    alarms: Iterable[AlarmRecord], deliveries: Iterable[DeliveryRecord]
) -> dict[str, dict[str, Any]]:
    """Per channel, over the alarms it carried: seconds from raising to the channel's first
    send that went out, and from raising to the acknowledgement (docs/notifications.md).

    A "taken" notice is no send of the alarm; an alarm nobody acknowledged counts in the
    first figure only."""
    raised = {a.alarm_id: a for a in alarms}
    first: dict[str, dict[str, datetime]] = {}
    for d in deliveries:
        if d.sent_at is None or d.step == "taken" or d.alarm_id not in raised:
            continue
        by_alarm = first.setdefault(d.channel, {})
        if d.alarm_id not in by_alarm or d.sent_at < by_alarm[d.alarm_id]:
            by_alarm[d.alarm_id] = d.sent_at
    out: dict[str, dict[str, Any]] = {}
    for channel in sorted(first):
        to_send, to_ack = [], []
        for alarm_id, sent_at in first[channel].items():
            a = raised[alarm_id]
            to_send.append((sent_at - a.raised_at).total_seconds())
            if a.acknowledged_at is not None:
                to_ack.append((a.acknowledged_at - a.raised_at).total_seconds())
        out[channel] = {
            "alarms": len(to_send),
            "to_first_send_seconds": _stats(to_send),
            "to_acknowledge_seconds": _stats(to_ack),
        }
    return out


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
