"""Digital checks in the reports: per resident-night, how many of the care plan's checks were
done through the sensors, beside the physical visits the hub knows of (docs/round.md)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from carehub.site import SiteIndex
from services.reports.freed_hours import (
    AlarmRecord,
    _alarm_residents,
    _bindings_by_resident,
    nights_between,
)


@dataclass(frozen=True, slots=True)
class CheckRecord:
    """The parts of a digital check the reports read: whose, when, and what was concluded."""

    resident_id: str
    at: datetime
    result: str
    """`ok` or `visit_needed`."""


@dataclass
class _Tally:
    checks: int = 0
    visit_needed: int = 0
    planned: float = 0.0
    alarm_visits: float = 0.0


def _share(done: float, planned: float) -> float | None:
    return round(done / planned, 4) if planned else None


def digital_checks_section(
    index: SiteIndex,
    first: date,
    last: date,
    checks: Iterable[CheckRecord],
    alarms: Iterable[AlarmRecord],
    measured: Sequence[date] | None = None,
) -> dict[str, Any]:
    """Digital checks per resident-night, the share of planned checks done digitally, and
    the alarm visits (a person in the room) beside them.

    A check counts for the night whose local window it falls in; checks outside every night
    window of the period are left out. A resident-night is counted when a device served the
    resident that night (as in the freed-hours method), or when a check was recorded for them.
    Planned checks are the care plan's `checks_per_night`; of a resident-night's checks at
    most that many count towards the share, so extra checks never hide a missed one.

    `measured`: the nights on which a served resident-night counts (the utilisation report's
    measured nights, docs/freed-hours.md "Unmeasured nights"), so that the care plan's checks
    of nights before the hub ran are not counted as checks not done digitally; a night with
    a recorded check still counts for that resident. All nights when not given.
    """
    nights = nights_between(first, last)
    bounds = {n: index.night_bounds(n) for n in nights}
    counted = set(nights if measured is None else measured)
    serving = _bindings_by_resident(index)
    rows: dict[tuple[str, date], _Tally] = {}
    for resident in index.site.residents:
        for label, (lo, hi) in bounds.items():
            if label not in counted:
                continue
            if any(b.start < hi and b.end > lo for b in serving.get(resident.id, ())):
                rows[(resident.id, label)] = _Tally()
    for check in checks:
        of_check = index.night_of(check.at)
        if of_check is None or of_check not in bounds:
            continue
        row = rows.setdefault((check.resident_id, of_check), _Tally())
        row.checks += 1
        row.visit_needed += check.result == "visit_needed"
    for alarm in alarms:
        of_alarm = index.night_of(alarm.raised_at)
        if of_alarm is None or of_alarm not in bounds or not alarm.attended:
            continue
        residents = _alarm_residents(index, alarm)
        for resident_id in residents:
            key = (resident_id, of_alarm)
            if key in rows:
                rows[key].alarm_visits += 1 / len(residents)
    for (resident_id, _night), row in rows.items():
        row.planned = float(index.benefit_for(resident_id)["checks_per_night"])

    def done(row: _Tally) -> float:
        return min(float(row.checks), row.planned)

    total = sum(r.checks for r in rows.values())
    planned = sum(r.planned for r in rows.values())
    done_total = sum(done(r) for r in rows.values())
    alarm_visits = sum(r.alarm_visits for r in rows.values())
    n = len(rows)
    by_resident: dict[str, dict[str, Any]] = {}
    by_night: dict[date, dict[str, Any]] = {
        night: {"night": night.isoformat(), "digital_checks": 0, "planned": 0.0, "done": 0.0}
        for night in nights
    }
    for (resident_id, night), row in sorted(rows.items()):
        r = by_resident.setdefault(
            resident_id,
            dict.fromkeys(("nights", "digital_checks", "visit_needed"), 0)
            | dict.fromkeys(("planned", "done", "alarm_visits"), 0.0),
        )
        r["nights"] += 1
        r["digital_checks"] += row.checks
        r["visit_needed"] += row.visit_needed
        r["planned"] += row.planned
        r["done"] += done(row)
        r["alarm_visits"] += row.alarm_visits
        b = by_night[night]
        b["digital_checks"] += row.checks
        b["planned"] += row.planned
        b["done"] += done(row)
    return {
        "total": total,
        "results": {
            "ok": sum(r.checks - r.visit_needed for r in rows.values()),
            "visit_needed": sum(r.visit_needed for r in rows.values()),
        },
        "resident_nights": n,
        "per_resident_night": round(total / n, 3) if n else None,
        "planned": planned,
        "planned_done_digitally": done_total,
        "share_of_planned": _share(done_total, planned),
        "alarm_visits": round(alarm_visits, 3),
        "alarm_visits_per_resident_night": round(alarm_visits / n, 3) if n else None,
        "by_resident": {
            resident_id: {
                "nights": r["nights"],
                "digital_checks": r["digital_checks"],
                "visit_needed": r["visit_needed"],
                "per_night": round(r["digital_checks"] / r["nights"], 3),
                "planned": r["planned"],
                "share_of_planned": _share(r["done"], r["planned"]),
                "alarm_visits": round(r["alarm_visits"], 3),
            }
            for resident_id, r in by_resident.items()
        },
        "by_night": [
            {
                "night": b["night"],
                "digital_checks": b["digital_checks"],
                "planned": b["planned"],
                "share_of_planned": _share(b["done"], b["planned"]),
            }
            for b in by_night.values()
        ],
        "by_resident_night": [
            {
                "resident_id": resident_id,
                "night": night.isoformat(),
                "digital_checks": row.checks,
                "visit_needed": row.visit_needed,
                "planned": row.planned,
                "alarm_visits": round(row.alarm_visits, 3),
            }
            for (resident_id, night), row in sorted(
                rows.items(), key=lambda kv: (kv[0][1], kv[0][0])
            )
        ],
    }
