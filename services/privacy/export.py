"""One resident's data and who looked at it: the answer to a data-subject access request.

GDPR art. 15 (and Danish practice) lets a resident, or whoever speaks for them, ask what the
care home holds about them and who has seen it. The export gathers it from every store: the
canonical events by `resident_id`, the alarms about them (theirs, and those of a shared room
they live in), what was kept of old nights, the monitoring switch's history, the triggers
suppressed while it was off, and the access log: actions on their alarms, report reads whose
scope included them (site-wide, or their ward), and earlier exports. Pseudonymous ids only:
names stay on the staff screens.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from carehub.site import SiteIndex
from carehub.timefmt import rfc3339
from services.alarms.service import AlarmService
from services.alarms.store import AuditEntry
from services.privacy.aggregates import AggregateStore
from services.privacy.monitoring import MonitoringChange

EXPORT_ACTION = "resident_export"
"""The audit action of an export; earlier ones are part of the next export."""
CHUNK = timedelta(days=31)
"""Events are read a month at a time, so a long history never sits in memory twice."""
FALLBACK_SPAN = timedelta(days=3 * 366)
"""How far back to read when the store cannot say where its data begins."""


@dataclass(frozen=True, slots=True)
class ExportSources:
    """Where a resident's data lives."""

    index: SiteIndex
    events: Any
    """The gateway's EventStore."""
    alarms: AlarmService
    aggregates: AggregateStore


def _audit_json(entry: AuditEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "at": rfc3339(entry.at),
        "actor": entry.actor,
        "action": entry.action,
        "alarm_id": entry.alarm_id,
        "detail": entry.detail,
    }


def _devices_of(index: SiteIndex, resident_id: str) -> list[str]:
    """Every device that ever counted for the resident (bindings have periods)."""
    return sorted(
        device_id
        for device_id, spans in index.bindings.items()
        if any(resident_id in index.residents_of(b) for b in spans)
    )


def _windows(first: datetime, last: datetime) -> Iterator[tuple[datetime, datetime]]:
    lo = first
    while lo < last:
        yield lo, min(lo + CHUNK, last)
        lo += CHUNK


def _off_at(history: list[MonitoringChange]) -> tuple[list[datetime], list[bool]]:
    return [c.at for c in history], [not c.enabled for c in history]


def resident_events(
    src: ExportSources,
    resident_id: str,
    history: list[MonitoringChange],
    now: datetime,
) -> list[dict[str, Any]]:
    """The resident's canonical events, oldest first, each marked with whether monitoring
    was switched off when it happened."""
    site = src.index.site.site
    devices = _devices_of(src.index, resident_id)
    if not devices:
        return []
    oldest_of = getattr(src.events, "oldest_event_time", None)
    oldest = oldest_of(site) if oldest_of is not None else now - FALLBACK_SPAN
    if oldest is None:
        return []
    times, off = _off_at(history)
    out: list[dict[str, Any]] = []
    end = now + timedelta(days=2)  # device clocks run ahead (up to 24 h is accepted)
    for lo, hi in _windows(oldest.astimezone(UTC), end):
        for event in src.events.query_events(site, lo, hi, device_ids=devices):
            if event.resident_id != resident_id:
                continue
            i = bisect.bisect_right(times, event.ts) - 1
            row = event.model_dump(mode="json")
            row["monitoring_off"] = bool(i >= 0 and off[i])
            out.append(row)
    return out


def resident_alarms(src: ExportSources, resident_id: str) -> list[dict[str, Any]]:
    """Alarms about the resident, oldest first: theirs, and their room's without a resident
    (a fall sensor in a shared room), flagged `via_room`."""
    resident = src.index.residents[resident_id]
    out = []
    for alarm in reversed(src.alarms.list_alarms("all")):
        if alarm.get("resident_id") == resident_id:
            out.append({**alarm, "via_room": False})
        elif alarm.get("resident_id") is None and alarm.get("room") == resident.room:
            out.append({**alarm, "via_room": True})
    return out


def access_log(src: ExportSources, resident_id: str, alarm_ids: set[str]) -> list[dict[str, Any]]:
    """Who looked at or changed the resident's data, oldest first."""
    resident = src.index.residents[resident_id]
    ward = src.index.room_ward.get(resident.room)
    out = []
    for entry in src.alarms.audit_log():
        detail = entry.detail
        about_them = detail.get("resident_id") == resident_id
        if (
            (entry.alarm_id is not None and entry.alarm_id in alarm_ids)
            or (entry.action == "report_read" and detail.get("ward") in (None, ward))
            or (entry.alarm_id is None and about_them)
        ):
            out.append(_audit_json(entry))
    return out


def resident_export(
    src: ExportSources,
    resident_id: str,
    history: list[MonitoringChange],
    now: datetime,
    actor: str,
) -> dict[str, Any]:
    """Everything held about one resident, as one JSON document."""
    resident = src.index.residents[resident_id]
    alarms = resident_alarms(src, resident_id)
    return {
        "site": src.index.site.site,
        "resident_id": resident_id,
        "room": resident.room,
        "ward": src.index.room_ward.get(resident.room),
        "generated_at": rfc3339(now),
        "generated_by": actor,
        "devices": _devices_of(src.index, resident_id),
        "monitoring": {
            "enabled": not history or history[-1].enabled,
            "history": [c.to_json() for c in history],
        },
        "events": resident_events(src, resident_id, history, now),
        "alarms": alarms,
        "suppressed_while_monitoring_off": src.alarms.store.suppressed(resident_id),
        "nights_kept_as_aggregates": src.aggregates.resident_rows(resident_id),
        "access_log": access_log(src, resident_id, {a["alarm_id"] for a in alarms}),
    }
