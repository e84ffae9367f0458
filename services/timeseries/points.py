# influxdb-client ships no type hints; its calls are untyped by nature.
# mypy: disable-error-code="no-untyped-call"
"""Alarm changes and freed-hours reports as InfluxDB points, in the dashboards' layout
(`gateway.store.influx_schema`, docs/storage.md).

Pure functions: they build points and write nothing, so the site's writers and the
municipality's central ingest make the very same points. Pseudonymous ids only.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from influxdb_client.client.write.point import Point
from influxdb_client.domain.write_precision import WritePrecision

import gateway.store.influx_schema as s
from carehub.timefmt import to_us

_ACTIVE_STATES = frozenset({"raised", "acknowledged", "escalated"})


def _time(value: Any) -> datetime | None:
    """An RFC 3339 string (how alarm JSON carries times) or a datetime → aware UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        when = value
    else:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if when.tzinfo is None:
        msg = f"time {value!r} has no time zone"
        raise ValueError(msg)
    return when.astimezone(UTC)


def required_time(alarm: Mapping[str, Any], key: str) -> datetime:
    """`alarm[key]` as aware UTC; ValueError when it is missing (or has no time zone)."""
    when = _time(alarm.get(key))
    if when is None:
        msg = f"alarm {alarm.get('alarm_id')!r} has no {key}"
        raise ValueError(msg)
    return when


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


# --- alarm changes ---------------------------------------------------------------------------


def _implied_change(alarm: Mapping[str, Any]) -> tuple[str, str, datetime]:
    """(change, reason, time) of a bare alarm dict, read from its state and timestamps."""
    state = str(alarm["state"])
    raised = required_time(alarm, "raised_at")
    if state == "resolved":
        sensor = alarm.get("resolved_by") == "sensor"
        at = _time(alarm.get("resolved_at")) or raised
        return "end", "sensor_resolved" if sensor else "resolved", at
    if state == "acknowledged":
        return "update", "acknowledged", _time(alarm.get("acknowledged_at")) or raised
    if state == "escalated":
        return "update", "escalated", _time(alarm.get("escalated_at")) or raised
    if int(alarm.get("count") or 1) > 1:
        return "update", "repeat", _time(alarm.get("last_seen_at")) or raised
    return "new", "raised", raised


def alarm_change_point(
    alarm: Mapping[str, Any],
    *,
    change: str | None = None,
    reason: str | None = None,
    change_id: int | None = None,
    at: datetime | str | None = None,
) -> Any:
    """One point for one alarm change (alarm JSON, docs/alarms.md); what is not given is
    implied by the alarm's state, so a bare alarm dict makes a sensible point too."""
    implied_change, implied_reason, implied_at = _implied_change(alarm)
    when = _time(at) or implied_at
    raised = required_time(alarm, "raised_at")
    acknowledged = _time(alarm.get("acknowledged_at"))
    resolved = _time(alarm.get("resolved_at"))
    tags = {
        "site": alarm["site"],
        "rule": alarm["rule"],
        "kind": alarm["kind"],
        "priority": alarm["priority"],
        "state": alarm["state"],
        "change": change or implied_change,
        "reason": reason or implied_reason,
        "outcome": alarm.get("outcome"),
        "resident_id": alarm.get("resident_id"),
        "room": alarm.get("room"),
        "device_id": alarm.get("device_id"),
    }
    fields: dict[str, Any] = {
        s.ALARM_CHANGE_FIELD_ALARM_ID: str(alarm["alarm_id"]),
        s.ALARM_CHANGE_FIELD_CHANGE_ID: change_id,
        s.ALARM_CHANGE_FIELD_COUNT: int(alarm.get("count") or 1),
        s.ALARM_CHANGE_FIELD_ACTIVE: str(alarm["state"]) in _ACTIVE_STATES,
        s.ALARM_CHANGE_FIELD_ACKNOWLEDGE_S: _seconds(raised, acknowledged),
        s.ALARM_CHANGE_FIELD_RESPONSE_S: _seconds(acknowledged, resolved),
        s.ALARM_CHANGE_FIELD_OPEN_S: _seconds(raised, resolved),
    }
    point = Point(s.ALARM_CHANGE_MEASUREMENT)
    for name in s.ALARM_CHANGE_TAGS:
        if tags[name] is not None:
            point = point.tag(name, str(tags[name]))
    for name in s.ALARM_CHANGE_FIELDS:
        if fields[name] is not None:
            point = point.field(name, fields[name])
    return point.time(to_us(when), WritePrecision.US)


def envelope_point(envelope: Mapping[str, Any]) -> Any:
    """The point of an `AlarmService` change envelope
    ({"type", "alarm", "reason", "change_id", "at"[, "target"]})."""
    return alarm_change_point(
        envelope["alarm"],
        change=envelope.get("type"),
        reason=envelope.get("reason"),
        change_id=envelope.get("change_id"),
        at=envelope.get("at"),
    )


# --- freed hours -----------------------------------------------------------------------------


def _night_start(report: Mapping[str, Any], label: str) -> datetime:
    """The night's local start (the report's night window), so points sit on the night."""
    window = (report.get("assumptions") or {}).get("night_window") or {}
    day = date.fromisoformat(label)
    if "start" not in window or "timezone" not in window:
        return datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    hour, minute = (int(x) for x in str(window["start"]).split(":"))
    local = datetime(
        day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(window["timezone"])
    )
    return local.astimezone(UTC)


def _freed_point(site: str, ward: str | None, when: datetime, values: Mapping[str, Any]) -> Any:
    point = Point(s.FREED_HOURS_MEASUREMENT).tag("site", site)
    point = point.tag("scope", "ward" if ward else "site")
    if ward:
        point = point.tag("ward", ward)
    for name in s.FREED_HOURS_FIELDS:
        value = values.get(name)
        if value is None or isinstance(value, bool):
            continue
        # one type per field for ever: counts are ints, everything else floats
        typed = int(value) if name == s.FREED_HOURS_FIELD_RESIDENT_NIGHTS else float(value)
        point = point.field(name, typed)
    return point.time(to_us(when), WritePrecision.US)


def freed_hours_points(report: Mapping[str, Any]) -> list[Any]:
    """Points of a freed-hours report (report JSON, docs/freed-hours.md): one per night from
    `by_night`, and for a one-night report one per ward from `by_ward` (a longer report's
    `by_ward` sums its nights and cannot be split back into them: write those night by night,
    see `services.timeseries.nightly.write_nights`)."""
    site = str(report["site"])
    ward = report.get("ward")
    nights = list(report.get("by_night") or [])
    points = []
    for night in nights:
        values = {
            s.FREED_HOURS_FIELD_TOTAL: night.get("freed_hours_total"),
            s.FREED_HOURS_FIELD_NIGHT_HOURS: night.get("hours"),
            s.FREED_HOURS_FIELD_RESIDENT_NIGHTS: night.get("resident_nights"),
            s.FREED_HOURS_FIELD_COVERAGE: night.get("coverage_mean"),
        }
        if len(nights) == 1:
            values[s.FREED_HOURS_FIELD_ENTRIES_AVOIDED] = report.get("room_entries_avoided")
        points.append(_freed_point(site, ward, _night_start(report, night["night"]), values))
    if len(nights) == 1 and ward is None:
        when = _night_start(report, nights[0]["night"])
        for ward_id, summary in sorted((report.get("by_ward") or {}).items()):
            values = {name: summary.get(name) for name in s.FREED_HOURS_FIELDS}
            values[s.FREED_HOURS_FIELD_NIGHT_HOURS] = nights[0].get("hours")
            points.append(_freed_point(site, str(ward_id), when, values))
    return points
