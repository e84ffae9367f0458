"""Every rule, table-driven through the engine: trigger, no trigger, threshold edges,
per-resident overrides (sites/test.yaml gives r-001 a diaper threshold of 60), night-only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest

from carehub.clock import FakeClock
from carehub.site import (
    BatteryLowRule,
    DiaperChangeRule,
    DoseMissedRule,
    FallRule,
    Rules,
    Site,
    SiteIndex,
)
from services.alarms.model import Alarm
from services.alarms.store import AlarmStore
from services.rules.engine import RulesEngine
from tests.services.conftest import (
    DAY,
    NIGHT,
    QUIET,
    MakeEvent,
    make_event_factory,
    with_changes,
)


@dataclass(frozen=True)
class Step:
    """An event (device, type, data) or, with `device` None, a timer check, at a minute."""

    at_min: float
    device: str | None = None
    type: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


def ev(at_min: float, device: str, type_: str, **data: Any) -> Step:
    return Step(at_min, device, type_, data)


def tick(at_min: float) -> Step:
    return Step(at_min)


Expected = tuple[str, str, str, str, str, int]
"""(rule, kind, priority, resident or device, state, count)"""

SITES: dict[str, dict[str, Any]] = {
    "test": {},
    "fall_night_only": {"rules": Rules(fall=FallRule(night_only=True))},
    "diaper_off": {"rules": Rules(diaper_change=DiaperChangeRule(enabled=False))},
    "battery_30": {"rules": Rules(battery_low=BatteryLowRule(threshold=30))},
    "dose_night_only": {"rules": Rules(dose_missed=DoseMissedRule(night_only=True))},
}

CASES: list[tuple[str, str, datetime, list[Step], list[Expected]]] = [
    # --- fall -----------------------------------------------------------------------
    ("fall at min confidence", "test", NIGHT,
     [ev(0, "fall-a1", "fall", confidence=0.6)],
     [("fall", "fall", "high", "r-001", "raised", 1)]),
    ("fall below min confidence", "test", NIGHT,
     [ev(0, "fall-a1", "fall", confidence=0.59)], []),
    ("fall from a radar", "test", NIGHT,
     [ev(0, "fall-a2", "fall", confidence=0.9)],
     [("fall", "fall", "high", "r-002", "raised", 1)]),
    ("fall in a shared room is the device's", "test", NIGHT,
     [ev(0, "fall-b1", "fall", confidence=0.9)],
     [("fall", "fall", "high", "fall-b1", "raised", 1)]),
    ("repeated falls count on one alarm", "test", NIGHT,
     [ev(0, "fall-a1", "fall", confidence=0.9), ev(0.5, "fall-a1", "fall", confidence=0.9),
      ev(1, "fall-a1", "fall", confidence=0.7)],
     [("fall", "fall", "high", "r-001", "raised", 3)]),
    ("fall_cleared does not resolve an unacknowledged fall", "test", NIGHT,
     [ev(0, "fall-a1", "fall", confidence=0.9), ev(1, "fall-a1", "fall_cleared")],
     [("fall", "fall", "high", "r-001", "raised", 1)]),
    ("night-only fall by day", "fall_night_only", DAY,
     [ev(0, "fall-a1", "fall", confidence=0.9)], []),
    ("night-only fall at night", "fall_night_only", NIGHT,
     [ev(0, "fall-a1", "fall", confidence=0.9)],
     [("fall", "fall", "high", "r-001", "raised", 1)]),
    ("fall by day without night-only", "test", DAY,
     [ev(0, "fall-a1", "fall", confidence=0.9)],
     [("fall", "fall", "high", "r-001", "raised", 1)]),
    # --- diaper ---------------------------------------------------------------------
    ("r-001 override: 60 alarms", "test", NIGHT,
     [ev(0, "diaper-r001", "saturation", level=60)],
     [("diaper_change", "diaper", "medium", "r-001", "raised", 1)]),
    ("r-001 override: 59 does not", "test", NIGHT,
     [ev(0, "diaper-r001", "saturation", level=59)], []),
    ("site default: 70 alarms", "test", NIGHT,
     [ev(0, "diaper-r002", "saturation", level=70)],
     [("diaper_change", "diaper", "medium", "r-002", "raised", 1)]),
    ("site default: 69 does not", "test", NIGHT,
     [ev(0, "diaper-r002", "saturation", level=69)], []),
    ("fresh diaper below 10 resolves", "test", NIGHT,
     [ev(0, "diaper-r002", "saturation", level=80), ev(2, "diaper-r002", "saturation", level=9)],
     [("diaper_change", "diaper", "medium", "r-002", "resolved", 1)]),
    ("10 is not fresh", "test", NIGHT,
     [ev(0, "diaper-r002", "saturation", level=80),
      ev(2, "diaper-r002", "saturation", level=10)],
     [("diaper_change", "diaper", "medium", "r-002", "raised", 1)]),
    ("rule disabled", "diaper_off", NIGHT,
     [ev(0, "diaper-r002", "saturation", level=100)], []),
    ("a rule disabled leaves the sensor's silence supervised", "diaper_off", NIGHT,
     [ev(0, "diaper-r002", "saturation", level=100), tick(3)],
     [("sensor_silent", "technical", "medium", "diaper-r002", "raised", 1)]),
    # --- medication -----------------------------------------------------------------
    ("dispenser reports missed", "test", NIGHT,
     [ev(0, "med-r001", "missed", dose_id="d1")],
     [("dose_missed", "medication", "medium", "r-001", "raised", 1)]),
    ("taken within the window", "test", NIGHT,
     [ev(0, "med-r001", "dose_due", dose_id="d1"), ev(12, "med-r001", "taken", dose_id="d1"),
      tick(45)], []),
    ("window not over at 29 min", "test", NIGHT,
     [ev(0, "med-r001", "dose_due", dose_id="d1"), tick(29.9)], []),
    ("no taken within 30 min", "test", NIGHT,
     [ev(0, "med-r001", "dose_due", dose_id="d1"), tick(30)],
     [("dose_missed", "medication", "medium", "r-001", "raised", 1)]),
    ("timer and missed report are one occurrence", "test", NIGHT,
     [ev(0, "med-r001", "dose_due", dose_id="d1"), tick(31),
      ev(32, "med-r001", "missed", dose_id="d1")],
     [("dose_missed", "medication", "medium", "r-001", "raised", 1)]),
    ("late taken resolves the missed-dose alarm", "test", NIGHT,
     [ev(0, "med-r001", "dose_due", dose_id="d1"), tick(31),
      ev(35, "med-r001", "taken", dose_id="d1")],
     [("dose_missed", "medication", "medium", "r-001", "resolved", 1)]),
    ("night-only dose: window over by day", "dose_night_only", DAY,
     [ev(0, "med-r001", "dose_due", dose_id="d1"), tick(30)], []),
    ("night-only dose: reported missed by day", "dose_night_only", DAY,
     [ev(0, "med-r001", "missed", dose_id="d1")], []),
    ("night-only dose: window over at night", "dose_night_only", NIGHT,
     [ev(0, "med-r001", "dose_due", dose_id="d1"), tick(30)],
     [("dose_missed", "medication", "medium", "r-001", "raised", 1)]),
    ("a taken after the dispenser reported it missed resolves", "test", NIGHT,
     [ev(0, "med-r001", "missed", dose_id="d1"), ev(20, "med-r001", "taken", dose_id="d1")],
     [("dose_missed", "medication", "medium", "r-001", "resolved", 1)]),
    ("dispenser fault", "test", NIGHT,
     [ev(0, "med-r001", "fault", code="jam")],
     [("device_fault", "technical", "medium", "med-r001", "raised", 1)]),
    ("diaper sensor fault", "test", NIGHT,
     [ev(0, "diaper-r002", "fault", code="sensor_error")],
     [("device_fault", "technical", "medium", "diaper-r002", "raised", 1)]),
    # --- battery --------------------------------------------------------------------
    ("battery at 15", "test", NIGHT,
     [ev(0, "fall-a1", "heartbeat", battery=15, rssi=-70)],
     [("battery_low", "technical", "low", "fall-a1", "raised", 1)]),
    ("battery at 16", "test", NIGHT, [ev(0, "fall-a1", "heartbeat", battery=16)], []),
    ("no battery reported", "test", NIGHT, [ev(0, "fall-a2", "heartbeat", battery=None)], []),
    ("battery override", "battery_30", NIGHT,
     [ev(0, "fall-a1", "heartbeat", battery=30)],
     [("battery_low", "technical", "low", "fall-a1", "raised", 1)]),
    ("battery just above threshold does not resolve", "test", NIGHT,
     [ev(0, "med-r001", "heartbeat", battery=12), ev(1, "med-r001", "heartbeat", battery=24)],
     [("battery_low", "technical", "low", "med-r001", "raised", 1)]),
    ("new battery resolves", "test", NIGHT,
     [ev(0, "med-r001", "heartbeat", battery=12), ev(1, "med-r001", "heartbeat", battery=100)],
     [("battery_low", "technical", "low", "med-r001", "resolved", 1)]),
    # --- silence --------------------------------------------------------------------
    ("silent just under 3 heartbeats", "test", NIGHT,
     [ev(0, "diaper-r001", "heartbeat", battery=90), tick(2.99)], []),
    ("silent diaper sensor", "test", NIGHT,
     [ev(0, "diaper-r001", "heartbeat", battery=90), tick(3)],
     [("sensor_silent", "technical", "medium", "diaper-r001", "raised", 1)]),
    ("silent fall sensor at night", "test", NIGHT,
     [ev(0, "fall-a1", "heartbeat", battery=90), tick(3)],
     [("sensor_silent", "technical", "high", "fall-a1", "raised", 1)]),
    ("silent fall sensor by day", "test", DAY,
     [ev(0, "fall-a1", "heartbeat", battery=90), tick(3)],
     [("sensor_silent", "technical", "medium", "fall-a1", "raised", 1)]),
    ("any message keeps a sensor from silence", "test", NIGHT,
     [ev(0, "diaper-r001", "heartbeat"), ev(2, "diaper-r001", "saturation", level=20),
      tick(4.9)], []),
    ("a message after silence resolves", "test", NIGHT,
     [ev(0, "diaper-r001", "heartbeat"), tick(3.5), ev(4, "diaper-r001", "heartbeat")],
     [("sensor_silent", "technical", "medium", "diaper-r001", "resolved", 1)]),
    # --- bed exit (r-001: 10 min default; r-003: 0 min, high, for a high fall risk) -----
    ("back in bed within the minutes", "test", NIGHT,
     [ev(0, "bed-r001", "out_of_bed"), ev(9.9, "bed-r001", "in_bed"), tick(30)], []),
    ("out of bed just under the minutes", "test", NIGHT,
     [ev(0, "bed-r001", "out_of_bed"), tick(9.99)], []),
    ("out of bed for the minutes", "test", NIGHT,
     [ev(0, "bed-r001", "out_of_bed"), tick(10)],
     [("bed_exit", "fall", "medium", "r-001", "raised", 1)]),
    ("back in bed resolves the bed exit", "test", NIGHT,
     [ev(0, "bed-r001", "out_of_bed"), tick(10), ev(12, "bed-r001", "in_bed")],
     [("bed_exit", "fall", "medium", "r-001", "resolved", 1)]),
    ("getting up again starts the time again", "test", NIGHT,
     [ev(0, "bed-r001", "out_of_bed"), ev(5, "bed-r001", "in_bed"),
      ev(6, "bed-r001", "out_of_bed"), tick(15.9)], []),
    ("out of bed by day is no alarm", "test", DAY,
     [ev(0, "bed-r001", "out_of_bed"), tick(60)], []),
    ("high fall risk: out of bed alarms at once", "test", NIGHT,
     [ev(0, "bed-r003", "out_of_bed")],
     [("bed_exit", "fall", "high", "r-003", "raised", 1)]),
    ("high fall risk: back in bed waits for a person", "test", NIGHT,
     [ev(0, "bed-r003", "out_of_bed"), ev(1, "bed-r003", "in_bed")],
     [("bed_exit", "fall", "high", "r-003", "raised", 1)]),
    # two readings of one instant (a device clock in whole seconds): the later arrival is
    # the newest, not a late one
    ("in bed and out again at the same time", "test", NIGHT,
     [ev(0, "bed-r003", "in_bed"), ev(0, "bed-r003", "out_of_bed")],
     [("bed_exit", "fall", "high", "r-003", "raised", 1)]),
]  # fmt: skip


def run(
    engine: RulesEngine, clock: FakeClock, index: SiteIndex, base: datetime, steps: list[Step]
) -> None:
    make = make_event_factory(index)
    for step in steps:
        at = base + timedelta(minutes=step.at_min)
        if at > clock.now():
            clock.set(at)
        if step.device is None:
            engine.tick()
        else:
            assert step.type is not None
            engine.handle(make(step.device, step.type, at, **step.data))


def _who(alarm: Alarm) -> str:
    """What the alarm is keyed by: technical alarms are the device's, others the resident's."""
    if alarm.kind == "technical" or alarm.resident_id is None:
        return alarm.device_id or ""
    return alarm.resident_id


def summary(store: AlarmStore, *, silence: bool = True) -> list[Expected]:
    return sorted(
        (a.rule, a.kind, a.priority.value, _who(a), a.state.value, a.count)
        for a in store.list_alarms(active_only=False)
        if silence or a.rule != "sensor_silent"
    )


@pytest.mark.parametrize(
    ("site_name", "base", "steps", "expected", "silence"),
    [pytest.param(*case[1:], "silen" in case[0], id=case[0]) for case in CASES],
)
def test_rule(
    test_site: Site,
    store: AlarmStore,
    site_name: str,
    base: datetime,
    steps: list[Step],
    expected: list[Expected],
    silence: bool,
) -> None:
    """Silence alarms of devices a case leaves quiet for minutes count only in silence cases."""
    index = with_changes(test_site, **SITES[site_name])
    clock = FakeClock(base - timedelta(seconds=1))
    engine = RulesEngine(index, store, clock, QUIET)
    run(engine, clock, index, base, steps)
    assert summary(store, silence=silence) == sorted(expected)


def test_sensor_resolved_alarm_says_so(
    engine: RulesEngine, clock: FakeClock, test_index: SiteIndex, store: AlarmStore
) -> None:
    run(engine, clock, test_index, NIGHT, [
        ev(0, "diaper-r002", "saturation", level=80),
        ev(2, "diaper-r002", "saturation", level=3),
    ])  # fmt: skip
    (alarm,) = store.list_alarms(active_only=False)
    assert (alarm.resolved_by, alarm.outcome) == ("sensor", None)
    assert alarm.resolved_at == NIGHT + timedelta(minutes=2)


def test_fall_cleared_after_acknowledgement_resolves(
    engine: RulesEngine, clock: FakeClock, test_index: SiteIndex, store: AlarmStore
) -> None:
    from services.alarms import lifecycle

    run(engine, clock, test_index, NIGHT, [
        ev(0, "fall-a1", "fall", confidence=0.9), ev(0.5, "fall-a1", "fall_cleared"),
    ])  # fmt: skip
    (alarm,) = store.list_alarms(active_only=True)
    assert alarm.cleared_at == NIGHT + timedelta(minutes=0.5)  # noted, but it stays
    lifecycle.acknowledge(store, clock, alarm.alarm_id, "anna")
    run(engine, clock, test_index, NIGHT, [ev(1, "fall-a1", "fall_cleared")])
    after = store.get(alarm.alarm_id)
    assert after is not None
    assert (after.state.value, after.resolved_by, after.acknowledged_by) == (
        "resolved",
        "sensor",
        "anna",
    )


def test_unheard_devices_are_supervised_from_start(
    test_index: SiteIndex, store: AlarmStore, clock: FakeClock
) -> None:
    engine = RulesEngine(test_index, store, clock, QUIET.__class__(timer_grace=timedelta(0)))
    engine.start()
    engine.start()  # a restart does not move the timers
    clock.advance(timedelta(minutes=3))
    engine.tick()
    silent = {a.device_id for a in store.list_alarms(active_only=True)}
    # every device bound now; med-r00x (moved) is one device
    assert silent == set(test_index.bindings)


def test_a_redelivered_dose_due_after_taken_raises_no_missed_dose(
    engine: RulesEngine, clock: FakeClock, make_event: MakeEvent, store: AlarmStore
) -> None:
    """Replay: the broker delivers `dose_due` again (same event id) after `taken` was handled,
    as after a crash before the acknowledgement. It is ignored whole: it must not start the
    window again, so no `dose_missed` fires 30 minutes later."""
    due = make_event("med-r001", "dose_due", NIGHT, dose_id="d1")
    taken = make_event("med-r001", "taken", NIGHT + timedelta(minutes=12), dose_id="d1")
    engine.handle(due)
    clock.set(NIGHT + timedelta(minutes=12))
    engine.handle(taken)
    clock.set(NIGHT + timedelta(minutes=13))
    assert engine.handle(due) == []  # the redelivery changes nothing
    clock.set(NIGHT + timedelta(minutes=90))
    engine.tick()
    assert summary(store, silence=False) == []  # the dispenser's silence is not this test's


def test_bed_exit_resolves_when_back_in_bed_on_the_hubs_clock(
    engine: RulesEngine, clock: FakeClock, test_index: SiteIndex, store: AlarmStore
) -> None:
    """The timer runs on received_at: a device clock 5 min behind does not shorten it."""
    make = make_event_factory(test_index)
    clock.set(NIGHT)
    engine.handle(make("bed-r001", "out_of_bed", NIGHT - timedelta(minutes=5), received_at=NIGHT))
    clock.set(NIGHT + timedelta(minutes=9))
    engine.tick()
    assert [a for a in store.list_alarms(active_only=False) if a.rule == "bed_exit"] == []
    clock.set(NIGHT + timedelta(minutes=10))
    engine.tick()
    (alarm,) = [a for a in store.list_alarms(active_only=True) if a.rule == "bed_exit"]
    assert (alarm.rule, alarm.resident_id, alarm.device_id) == ("bed_exit", "r-001", "bed-r001")
    back = NIGHT + timedelta(minutes=14)
    clock.set(back)
    engine.handle(make("bed-r001", "in_bed", back))
    (alarm,) = [a for a in store.list_alarms(active_only=False) if a.rule == "bed_exit"]
    assert (alarm.state.value, alarm.resolved_by) == ("resolved", "sensor")


def test_an_alarm_names_its_room_and_the_events_that_raised_it(
    engine: RulesEngine, clock: FakeClock, make_event: MakeEvent, store: AlarmStore
) -> None:
    """The room says which ward's phones are told (docs/notifications.md); `trigger_event_id`
    is the first trigger's event (docs/alarms.md, the alarm's JSON), and every trigger is a row
    of `alarm_events` with its own event id, for the reports."""
    first = make_event("fall-a1", "fall", NIGHT, confidence=0.9)
    again = make_event("fall-a1", "fall", NIGHT + timedelta(seconds=20), confidence=0.8)
    engine.handle(first)
    clock.set(NIGHT + timedelta(seconds=20))
    engine.handle(again)
    (alarm,) = store.list_alarms(active_only=True)
    assert (alarm.room, alarm.device_id, alarm.resident_id) == ("a-1", "fall-a1", "r-001")
    assert (alarm.trigger_event_id, alarm.count) == (first.event_id, 2)
    assert [(key, event) for key, event, _at, _ref in store.occurrences(alarm.alarm_id)] == [
        (first.event_id, first.event_id),
        (again.event_id, again.event_id),
    ]


def test_a_queued_event_of_a_device_since_removed_from_the_site_still_alarms(
    test_site: Site, store: AlarmStore, clock: FakeClock, test_index: SiteIndex
) -> None:
    """A fall queued on the broker while the site file lost its sensor (the rules service
    restarted with the new file first) is still a fall: it alarms, on the resident and room
    the gateway gave it (and escalates). Its sensor's silence is nobody's any more: no alarm."""
    fall = make_event_factory(test_index)("fall-a1", "fall", NIGHT, confidence=0.9)
    index = with_changes(test_site, devices=[d for d in test_site.devices if d.id != "fall-a1"])
    engine = RulesEngine(index, store, clock, QUIET)
    engine.handle(fall)
    clock.advance(timedelta(minutes=30))
    engine.tick()
    assert summary(store) == [("fall", "fall", "high", "r-001", "escalated", 1)]
