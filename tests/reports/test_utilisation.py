"""The utilisation report on hand-made alarms and events."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from carehub.site import SiteIndex
from services.reports.freed_hours import AlarmRecord
from services.reports.utilisation import DeliveryRecord, EventRecord, utilisation_report
from tests.reports.test_freed_hours import NIGHT, at, heartbeats


def alarm(
    i: int, rule: str, raised: tuple[int, int], resolved: tuple[int, int] | None, **kw: object
) -> AlarmRecord:
    r = at(*raised)
    return AlarmRecord(
        f"a{i}",
        rule,
        kw.pop("resident", "r-001"),
        None,
        None,
        r,  # type: ignore[arg-type]
        acknowledged_at=r + timedelta(minutes=1),
        acknowledged_by="sofie",
        resolved_at=at(*resolved) if resolved else None,
        resolved_by="sofie" if resolved else None,
        outcome=kw.pop("outcome", "assisted") if resolved else None,  # type: ignore[arg-type]
    )


def test_concurrency_counts_overlapping_alarms_by_hour(test_index: SiteIndex) -> None:
    alarms = [
        alarm(1, "fall", (23, 0), (23, 30)),
        alarm(2, "diaper_change", (23, 10), (23, 20), resident="r-002"),  # overlaps 10 min at 23h
        alarm(3, "fall", (2, 0), (2, 5), resident="r-003"),  # alone
        alarm(4, "dose_missed", (23, 50), (0, 10), resident="r-004"),
        alarm(5, "fall", (23, 55), (0, 5), outcome="false_alarm"),  # overlaps 4 across midnight
    ]
    rep = utilisation_report(test_index, NIGHT, NIGHT, alarms, [], heartbeats(test_index, NIGHT))
    c = rep["concurrency"]
    assert c["peak_simultaneous"] == 2
    assert c["overlap_starts"] == 2
    hours = {h["hour"]: h for h in c["by_hour_of_night"]}
    assert [h["hour"] for h in c["by_hour_of_night"]] == [22, 23, 0, 1, 2, 3, 4, 5, 6]
    assert hours[23]["minutes_with_two_or_more"] == pytest.approx(10 + 5)
    assert hours[0]["minutes_with_two_or_more"] == pytest.approx(5)
    assert hours[2]["minutes_with_two_or_more"] == 0
    assert rep["alarms"]["total"] == 5
    assert rep["alarms"]["false_alarm_share"] == pytest.approx(1 / 5)
    assert {h["hour"]: h["count"] for h in rep["alarms"]["by_hour_of_night"]}[23] == 4
    assert rep["acknowledge_minutes"]["median"] == pytest.approx(1)


def test_medication_adherence_and_diaper_changes(test_index: SiteIndex) -> None:
    due = at(22, 0)
    events = [
        EventRecord(
            "med-r001", "r-001", "dose_due", due, {"dose_id": "d1", "due": due.isoformat()}
        ),
        EventRecord("med-r001", "r-001", "taken", due + timedelta(minutes=12), {"dose_id": "d1"}),
        EventRecord(
            "med-r004", "r-004", "dose_due", due, {"dose_id": "d2", "due": due.isoformat()}
        ),
        EventRecord(
            "med-r004", "r-004", "taken", due + timedelta(minutes=45), {"dose_id": "d2"}
        ),  # late
        EventRecord("med-r00x", "r-003", "dose_due", due, {"dose_id": "d3"}),
        EventRecord("med-r00x", "r-003", "missed", due + timedelta(minutes=30), {"dose_id": "d3"}),
        EventRecord("diaper-r001", "r-001", "saturation", at(1, 0), {"level": 75}),
        EventRecord("diaper-r001", "r-001", "detached", at(1, 20)),
        EventRecord("diaper-r001", "r-001", "attached", at(1, 25)),
        EventRecord("diaper-r001", "r-001", "saturation", at(1, 26), {"level": 0}),
    ]
    rep = utilisation_report(test_index, NIGHT, NIGHT, [], events, heartbeats(test_index, NIGHT))
    assert rep["medication"] == {
        "doses_due": 3,
        "taken_on_time": 1,
        "missed": 1,
        "adherence": pytest.approx(1 / 3, abs=1e-4),
    }
    assert rep["diaper"]["changes"] == 1
    assert rep["diaper"]["saturation_at_change"]["median"] == 75
    # three residents have diaper sensors: one change in three resident-nights
    assert rep["diaper"]["changes_per_resident_night"] == pytest.approx(1 / 3, abs=1e-3)


def test_device_uptime(test_index: SiteIndex) -> None:
    times = heartbeats(test_index, NIGHT)
    times["fall-a1"] = np.empty(0)
    rep = utilisation_report(test_index, NIGHT, NIGHT, [], [], times)
    assert rep["device_uptime"]["fall-a1"] == 0
    assert rep["device_uptime"]["fall-a2"] == pytest.approx(1.0)
    assert rep["nights"] == 1
    # the next night no device sent anything: not measured, so it does not halve the uptime
    two = utilisation_report(test_index, NIGHT, NIGHT + timedelta(days=1), [], [], times)
    assert two["nights"] == 1
    assert two["unmeasured_nights"] == [(NIGHT + timedelta(days=1)).isoformat()]
    assert two["device_uptime"]["fall-a2"] == pytest.approx(1.0)
    assert date.fromisoformat(rep["from"]) == NIGHT


def sent(
    alarm_id: str, channel: str, step: str, when: datetime, status: str = "sent"
) -> dict[str, Any]:
    """A delivery record as the notification desk answers it (`deliveries_between`)."""
    done = when.isoformat()
    return {"alarm_id": alarm_id, "channel": channel, "step": step, "at": done,
            "done_at": done, "status": status, "phone": "p", "error": None}  # fmt: skip


def test_time_from_raise_to_first_send_and_to_acknowledgement_per_channel(
    test_index: SiteIndex,
) -> None:
    a1 = alarm(1, "fall", (23, 0), (23, 30))  # acknowledged a minute after raising
    a2 = alarm(2, "fall", (23, 10), (23, 20), resident="r-002")
    a3 = replace(alarm(3, "fall", (2, 0), None, resident="r-003"), acknowledged_at=None)
    s = timedelta(seconds=1)
    records = [
        sent("a1", "ntfy", "first", a1.raised_at + 2 * s),
        sent("a1", "ntfy", "first", a1.raised_at + 3 * s),  # the second phone: not the first
        sent("a1", "espa", "first", a1.raised_at + 5 * s),
        sent("a1", "ntfy", "taken", a1.raised_at + 61 * s),  # no send of the alarm
        sent("a2", "ntfy", "first", a2.raised_at + 1 * s, status="failed"),  # never reached
        sent("a2", "ntfy", "reminder", a2.raised_at + 40 * s),  # the first that went out
        sent("a3", "ntfy", "first", a3.raised_at + 10 * s),  # nobody acknowledged
        sent("a9", "ntfy", "first", a3.raised_at),  # an alarm outside the period
    ]
    deliveries = [DeliveryRecord.from_json(r) for r in records]
    rep = utilisation_report(
        test_index, NIGHT, NIGHT, [a1, a2, a3], [], heartbeats(test_index, NIGHT), None, deliveries
    )
    ntfy, espa = rep["notify"]["ntfy"], rep["notify"]["espa"]
    assert ntfy["alarms"] == 3
    # first sends 2, 40 and 10 s after raising: median 10, p90 10 + 0.8 * 30 = 34, max 40
    assert ntfy["to_first_send_seconds"] == {"n": 3, "median": 10, "p90": 34, "max": 40}
    # a1 and a2 acknowledged 60 s after raising; a3 never
    assert ntfy["to_acknowledge_seconds"] == {"n": 2, "median": 60, "p90": 60, "max": 60}
    assert espa["alarms"] == 1
    assert espa["to_first_send_seconds"] == {"n": 1, "median": 5, "p90": 5, "max": 5}
    assert espa["to_acknowledge_seconds"]["n"] == 1
    assert utilisation_report(test_index, NIGHT, NIGHT, [a1], [], {})["notify"] == {}
