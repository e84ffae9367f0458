"""The utilisation report's alarm quality (docs/freed-hours.md, "Alarm quality") on seven
hand-made alarms of one measured night and their sends to phones: alarms per resident-night,
the false-alarm share, alarms never acknowledged and how they ended, falls and falls where
staff assisted, raise → first phone notification → acknowledgement."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest

from carehub.site import SiteIndex
from services.reports.freed_hours import AlarmRecord
from services.reports.utilisation import DeliveryRecord, utilisation_report
from tests.reports.test_freed_hours import NIGHT, at, heartbeats
from tests.reports.test_utilisation import sent

S = timedelta(seconds=1)


def alarm(alarm_id: str, rule: str, resident: str | None, raised: datetime) -> AlarmRecord:
    """Raised and left alone; the cases below add what happened."""
    return AlarmRecord(alarm_id, rule, resident, None, None, raised)


def person(a: AlarmRecord, ack_s: float | None, resolved_s: float, outcome: str) -> AlarmRecord:
    """Acknowledged `ack_s` after raising (None: not acknowledged), resolved by a person."""
    return replace(
        a,
        acknowledged_at=None if ack_s is None else a.raised_at + ack_s * S,
        acknowledged_by=None if ack_s is None else "sofie",
        resolved_at=a.raised_at + resolved_s * S,
        resolved_by="sofie",
        outcome=outcome,
    )


A1 = person(alarm("a1", "fall", "r-001", at(23, 0)), 60, 660, "assisted")
A2 = person(alarm("a2", "fall", "r-003", at(1, 0)), 180, 600, "false_alarm")
A3 = replace(
    alarm("a3", "diaper_change", "r-001", at(2, 0)),
    resolved_at=at(2, 30),
    resolved_by="sensor",
)
A4 = person(alarm("a4", "dose_missed", "r-004", at(3, 0)), None, 1200, "dose_given")
A5 = person(alarm("a5", "bed_exit", "r-003", at(4, 0)), 30, 300, "no_action_needed")
A6 = replace(alarm("a6", "fall", "r-002", at(5, 0)), state="closed")  # imported, never resolved
A7 = alarm("a7", "battery_low", None, at(5, 30))  # still open
ALARMS = [A1, A2, A3, A4, A5, A6, A7]

SENDS = [
    sent("a1", "ntfy", "first", A1.raised_at + 4 * S),
    sent("a1", "espa", "first", A1.raised_at + 2 * S),  # the first notification: 2 s
    sent("a2", "ntfy", "first", A2.raised_at + 1 * S, status="failed"),  # never reached
    sent("a2", "ntfy", "reminder", A2.raised_at + 70 * S),  # the first that went out: 70 s
    sent("a3", "ntfy", "first", A3.raised_at + 5 * S),
    sent("a5", "ntfy", "first", A5.raised_at + 3 * S),
    sent("a5", "ntfy", "taken", A5.raised_at + 31 * S),  # "taken" tells of no alarm
    sent("a7", "ntfy", "first", A7.raised_at + 10 * S),
    sent("a9", "ntfy", "first", A7.raised_at),  # an alarm outside the period
]


def test_alarm_quality_by_hand(test_index: SiteIndex) -> None:
    """Seven alarms on a night where all four residents have sensors (4 resident-nights):
    1.75 per resident-night. A person closed four with an outcome, one false: 25 %. Never
    acknowledged: a3 (the sensor), a4 (a person went straight), a6 (imported, never
    resolved), a7 (open). Falls a1, a2, a6, one assisted (a5 is a bed exit). Five alarms
    reached a phone, first after 2, 70, 5, 3, 10 s: median 5, p90 10 + 0.6 · 60 = 46; of
    them a1, a2, a5 were acknowledged after 60, 180, 30 s: median 60, p90 60 + 0.8 · 120."""
    deliveries = [DeliveryRecord.from_json(d) for d in SENDS]
    rep = utilisation_report(
        test_index, NIGHT, NIGHT, ALARMS, [], heartbeats(test_index, NIGHT), None, deliveries
    )
    q = rep["alarm_quality"]
    assert q["resident_nights"] == 4
    assert q["alarms_on_measured_nights"] == 7
    assert q["alarms_per_resident_night"] == 1.75
    assert (q["false_alarms"], q["judged_by_person"], q["false_alarm_share"]) == (1, 4, 0.25)
    assert q["never_acknowledged"] == {
        "total": 4,
        "resolved_by_person": 1,
        "resolved_by_sensor": 1,
        "unresolved": 1,
        "open": 1,
    }
    assert q["falls"] == {"total": 3, "assisted": 1}
    assert q["phones"] == {
        "alarms_notified": 5,
        "to_first_notification_seconds": {"n": 5, "median": 5, "p90": 46, "max": 70},
        "to_acknowledge_seconds": {"n": 3, "median": 60, "p90": 156, "max": 180},
    }
    assert rep["alarms"]["false_alarm_share"] == 0.25
    assert rep["alarms"]["by_rule"]["fall"]["outcomes"] == {
        "assisted": 1,
        "false_alarm": 1,
        "unresolved": 1,
    }
    assert rep["alarms"]["by_rule"]["battery_low"]["outcomes"] == {"open": 1}


def test_without_alarms_or_phones_the_figures_are_empty_not_zero(test_index: SiteIndex) -> None:
    """No alarm judged: no share; nothing sent: no times (null in the JSON, a dash on the
    page); a night with no message: no resident-night, no rate."""
    q = utilisation_report(test_index, NIGHT, NIGHT, [], [], {})["alarm_quality"]
    assert q["resident_nights"] == 0
    assert q["alarms_per_resident_night"] is None
    assert q["false_alarm_share"] is None
    assert q["phones"]["to_first_notification_seconds"] == {
        "n": 0,
        "median": None,
        "p90": None,
        "max": None,
    }
    measured = utilisation_report(test_index, NIGHT, NIGHT, [], [], heartbeats(test_index, NIGHT))
    assert measured["alarm_quality"]["alarms_per_resident_night"] == pytest.approx(0)
