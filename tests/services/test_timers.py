"""Escalation and reminders on a FakeClock, and late or out-of-order events."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from carehub.clock import FakeClock
from carehub.site import Device, DoseMissedRule, Priority, Rules, Site, SiteIndex
from services.alarms import lifecycle
from services.alarms.model import Alarm
from services.alarms.store import AlarmStore, Change, Timer
from services.rules.engine import RulesEngine
from tests.services.conftest import (
    NIGHT,
    QUIET,
    SITE,
    MakeEvent,
    make_event_factory,
    with_changes,
)


def changes_over(
    engine: RulesEngine, clock: FakeClock, minutes: float, step_s: float = 5
) -> list[tuple[float, str, str]]:
    """Tick every `step_s` for `minutes`; (minute, reason, state) of every change, except
    those of the silence alarms the quiet devices of these tests raise on the side."""
    seen: list[tuple[float, str, str]] = []
    end = clock.now() + timedelta(minutes=minutes)
    while clock.now() < end:
        clock.advance(step_s)
        for change in engine.tick():
            if change.alarm["rule"] == "sensor_silent":
                continue
            minute = (change.at - NIGHT).total_seconds() / 60
            seen.append((round(minute, 2), change.reason, change.alarm["state"]))
    return seen


@pytest.mark.parametrize(
    ("device", "type_", "data", "expected"),
    [
        pytest.param(
            "fall-b1", "fall", {"confidence": 0.9},
            [(1.0, "reminder", "raised"), (2.0, "escalated", "escalated"),
             (2.0, "reminder", "escalated"), (3.0, "reminder", "escalated"),
             (4.0, "reminder", "escalated")],
            id="high: remind every minute, escalate at 2",
        ),
        pytest.param(
            "med-r001", "fault", {"code": "jam"},
            [(5.0, "reminder", "raised"), (10.0, "escalated", "escalated"),
             (10.0, "reminder", "escalated")],
            id="medium: remind every 5, escalate at 10",
        ),
        pytest.param("fall-b1", "heartbeat", {"battery": 5}, [], id="low: never"),
    ],
)  # fmt: skip
def test_escalation_and_reminders(
    test_index: SiteIndex,
    store: AlarmStore,
    clock: FakeClock,
    make_event: MakeEvent,
    device: str,
    type_: str,
    data: dict[str, Any],
    expected: list[tuple[float, str, str]],
) -> None:
    engine = RulesEngine(test_index, store, clock, QUIET)
    engine.handle(make_event(device, type_, NIGHT, **data))
    seen = changes_over(engine, clock, 10.5 if type_ == "fault" else 4.5, step_s=5)
    assert seen == expected


def test_escalation_names_its_target(
    escalation_site: Callable[..., SiteIndex], store: AlarmStore, clock: FakeClock
) -> None:
    index = escalation_site(target={"kind": "role", "role": "manager"})
    engine = RulesEngine(index, store, clock, QUIET)
    engine.handle(make_event_factory(index)("fall-b1", "fall", NIGHT, confidence=1.0))
    clock.advance(timedelta(minutes=2))
    (change,) = [c for c in engine.tick() if c.reason == "escalated"]
    assert change.envelope()["target"] == {"kind": "role", "role": "manager"}
    assert change.envelope()["type"] == "update"
    assert change.alarm["escalated_at"] == "2026-11-22T22:02:00.000000Z"


def test_acknowledged_alarm_neither_escalates_nor_reminds(
    engine: RulesEngine, store: AlarmStore, clock: FakeClock, make_event: MakeEvent
) -> None:
    (new,) = engine.handle(make_event("fall-b1", "fall", NIGHT, confidence=0.9))
    clock.advance(timedelta(seconds=30))
    lifecycle.acknowledge(store, clock, new.alarm_id, "anna")
    assert changes_over(engine, clock, 5) == []
    assert [t.timer_id for t in store.timers() if new.alarm_id in t.timer_id] == []


def test_no_escalation_configured(
    escalation_site: Callable[..., SiteIndex], store: AlarmStore, clock: FakeClock
) -> None:
    index = escalation_site(high_minutes=None, reminder_high_minutes=None)
    engine = RulesEngine(index, store, clock, QUIET)
    engine.handle(make_event_factory(index)("fall-b1", "fall", NIGHT, confidence=1.0))
    assert changes_over(engine, clock, 30, step_s=60) == []


def test_reminders_after_downtime_come_once(
    engine: RulesEngine, store: AlarmStore, clock: FakeClock, make_event: MakeEvent
) -> None:
    """A hub that was down 30 min reminds once, not 30 times."""
    (fall,) = engine.handle(make_event("fall-b1", "fall", NIGHT, confidence=0.9))
    clock.advance(timedelta(minutes=30))
    reasons = [c.reason for c in engine.tick() if c.alarm["rule"] == "fall"]
    assert reasons.count("reminder") == 1
    assert reasons.count("escalated") == 1
    (remind,) = [t for t in store.timers() if t.timer_id == f"remind:{fall.alarm_id}"]
    assert remind.due == clock.now() + timedelta(minutes=1)


def test_timer_grace_waits_for_messages_in_flight(
    test_index: SiteIndex, store: AlarmStore, clock: FakeClock, make_event: MakeEvent
) -> None:
    engine = RulesEngine(test_index, store, clock, QUIET.__class__(
        timer_grace=timedelta(seconds=2), supervise_unheard_devices=False
    ))  # fmt: skip
    engine.handle(make_event("med-r001", "dose_due", NIGHT, dose_id="d1"))
    clock.set(NIGHT + timedelta(minutes=30, seconds=1))
    assert [c for c in engine.tick() if c.alarm["rule"] == "dose_missed"] == []
    clock.advance(1)
    assert [c.reason for c in engine.tick() if c.alarm["rule"] == "dose_missed"] == ["raised"]


# --- late and out-of-order events -----------------------------------------------------------


def rules_of(changes: list[Change]) -> list[tuple[str, str]]:
    return [(c.alarm["rule"], c.reason) for c in changes if c.alarm["rule"] != "sensor_silent"]


def test_late_taken_within_window_cancels_the_timer(
    engine: RulesEngine, clock: FakeClock, make_event: MakeEvent
) -> None:
    engine.handle(make_event("med-r001", "dose_due", NIGHT, dose_id="d1"))
    clock.set(NIGHT + timedelta(minutes=25))
    # taken at 10 min, delivered at 25 min (the dispenser was offline)
    taken = make_event(
        "med-r001", "taken", NIGHT + timedelta(minutes=10),
        received_at=NIGHT + timedelta(minutes=25), dose_id="d1",
    )  # fmt: skip
    assert rules_of(engine.handle(taken)) == []
    clock.advance(timedelta(minutes=20))
    assert rules_of(engine.tick()) == []


def test_taken_after_the_window_fires_the_timer_first(
    engine: RulesEngine, clock: FakeClock, make_event: MakeEvent
) -> None:
    """The clock lags (an accelerated replay): the event proves the window is over."""
    engine.handle(make_event("med-r001", "dose_due", NIGHT, dose_id="d1"))
    late = make_event("med-r001", "taken", NIGHT + timedelta(minutes=40), dose_id="d1")
    assert rules_of(engine.handle(late)) == [
        ("dose_missed", "raised"),
        ("dose_missed", "reminder"),  # at 35 min, before the event at 40
        ("dose_missed", "sensor_resolved"),
    ]


def test_taken_for_another_dose_does_not_resolve(
    engine: RulesEngine, clock: FakeClock, make_event: MakeEvent, store: AlarmStore
) -> None:
    engine.handle(make_event("med-r001", "missed", NIGHT, dose_id="d1"))
    engine.handle(make_event("med-r001", "taken", NIGHT + timedelta(minutes=1), dose_id="d2"))
    (alarm,) = store.list_alarms(active_only=True)
    assert alarm.rule == "dose_missed"


def test_stale_saturation_neither_resolves_nor_raises(
    engine: RulesEngine, clock: FakeClock, make_event: MakeEvent, store: AlarmStore
) -> None:
    t = NIGHT
    clock.set(t + timedelta(minutes=6))
    engine.handle(make_event("diaper-r002", "saturation", t + timedelta(minutes=2), level=80))
    # an older 'fresh' reading arriving late must not resolve the newer wet one
    engine.handle(make_event("diaper-r002", "saturation", t + timedelta(minutes=1), level=0))
    (open_,) = store.list_alarms(active_only=True)
    engine.handle(make_event("diaper-r002", "saturation", t + timedelta(minutes=4), level=2))
    assert store.get(open_.alarm_id).state.value == "resolved"  # type: ignore[union-attr]
    # an older wet reading arriving after the change must not raise a new alarm
    engine.handle(make_event("diaper-r002", "saturation", t + timedelta(minutes=3), level=90))
    assert store.list_alarms(active_only=True) == []


def test_a_reading_between_the_thresholds_is_still_the_newest(
    engine: RulesEngine, clock: FakeClock, make_event: MakeEvent, store: AlarmStore
) -> None:
    """Wet at 1 min, fresh at 2 min, 50 % at 3 min (neither raises nor clears); the fresh one
    arrives last. It is older than the newest reading, so it resolves nothing (docs/alarms.md:
    the newest reading wins, whether or not it raised or cleared anything)."""
    clock.set(NIGHT + timedelta(minutes=6))
    engine.handle(make_event("diaper-r002", "saturation", NIGHT + timedelta(minutes=1), level=80))
    engine.handle(make_event("diaper-r002", "saturation", NIGHT + timedelta(minutes=3), level=50))
    engine.handle(make_event("diaper-r002", "saturation", NIGHT + timedelta(minutes=2), level=5))
    (alarm,) = store.list_alarms(active_only=True)
    assert (alarm.rule, alarm.state.value) == ("diaper_change", "raised")


def test_stale_trigger_counts_on_an_open_alarm(
    engine: RulesEngine, clock: FakeClock, make_event: MakeEvent, store: AlarmStore
) -> None:
    clock.set(NIGHT + timedelta(minutes=2))
    engine.handle(make_event("fall-b1", "fall", NIGHT + timedelta(seconds=60), confidence=0.9))
    engine.handle(make_event("fall-b1", "fall", NIGHT + timedelta(seconds=30), confidence=0.9))
    (alarm,) = store.list_alarms(active_only=True)
    assert alarm.count == 2
    assert alarm.last_seen_at == NIGHT + timedelta(seconds=60)


def test_late_message_does_not_move_the_silence_timer_back(
    engine: RulesEngine, clock: FakeClock, make_event: MakeEvent, store: AlarmStore
) -> None:
    engine.handle(make_event("fall-a1", "heartbeat", NIGHT + timedelta(minutes=2), battery=80))
    engine.handle(make_event("fall-a1", "heartbeat", NIGHT, battery=80))
    timer = store.get_timer("silent:fall-a1")
    assert timer is not None
    assert timer.due == NIGHT + timedelta(minutes=5)


def test_device_clock_ahead_cannot_delay_escalation(
    engine: RulesEngine, clock: FakeClock, make_event: MakeEvent
) -> None:
    ahead = make_event(
        "fall-b1", "fall", NIGHT + timedelta(hours=5), received_at=NIGHT, confidence=0.9
    )
    (new,) = engine.handle(ahead)
    assert new.alarm["raised_at"] == "2026-11-22T22:00:00.000000Z"
    clock.set(NIGHT + timedelta(minutes=2))
    assert "escalated" in [c.reason for c in engine.tick()]


def test_a_fall_with_a_device_clock_six_hours_behind_does_not_arrive_escalated(
    engine: RulesEngine, clock: FakeClock, make_event: MakeEvent
) -> None:
    """Escalation runs on the hub's clock (received_at); the device ts is kept for reports."""
    clock.set(NIGHT)
    behind = make_event(
        "fall-b1", "fall", NIGHT - timedelta(hours=6), received_at=NIGHT, confidence=0.9
    )
    (new,) = rules_of(engine.handle(behind))
    assert new == ("fall", "raised")
    clock.advance(timedelta(seconds=90))
    assert [c.reason for c in engine.tick() if c.alarm["rule"] == "fall"] == ["reminder"]
    clock.set(NIGHT + timedelta(minutes=2, seconds=3))
    (escalated,) = [c for c in engine.tick() if c.reason == "escalated"]
    assert escalated.at == NIGHT + timedelta(minutes=2)
    assert escalated.alarm["raised_at"] == "2026-11-22T16:00:00.000000Z"  # the device's time


def test_an_online_device_whose_clock_lags_is_not_silent(
    engine: RulesEngine, clock: FakeClock, make_event: MakeEvent
) -> None:
    """Silence is measured on received time: a heartbeat every 60 s with a ts ten minutes
    behind keeps the device supervised and quiet; once it stops, 3 x 60 s later it alarms."""
    silent: list[str] = []
    for minute in range(10):
        now = NIGHT + timedelta(minutes=minute)
        clock.set(now)
        lagging = make_event(
            "fall-a1", "heartbeat", now - timedelta(minutes=10), received_at=now, battery=80
        )
        silent += [c.reason for c in engine.handle(lagging) if c.alarm["rule"] == "sensor_silent"]
        clock.set(now + timedelta(seconds=59))
        silent += [c.reason for c in engine.tick() if c.alarm["rule"] == "sensor_silent"]
    assert "raised" not in silent
    clock.set(NIGHT + timedelta(minutes=9 + 3, seconds=3))
    assert "raised" in [c.reason for c in engine.tick() if c.alarm["rule"] == "sensor_silent"]


def test_the_silence_timer_counts_the_heartbeat_of_the_binding_at_the_event(
    test_site: Site, store: AlarmStore, clock: FakeClock
) -> None:
    """Each binding has its own `heartbeat_seconds`. med-r00x sent every 10 min for r-002 and
    every 30 s since it moved to r-003 on 1 Nov: silent after 3 x 30 s now. bed-r003, bound
    since 21:30 with a 20 s heartbeat, sends with a clock an hour behind (a time before its
    binding): its heartbeat still counts, not a default."""

    def rebound(d: Device) -> Device:
        if d.id == "med-r00x":
            return d.model_copy(update={"heartbeat_seconds": 600 if d.until else 30})
        if d.id == "bed-r003":
            return d.model_copy(
                update={"heartbeat_seconds": 20, "from_": NIGHT - timedelta(minutes=30)}
            )
        return d

    index = with_changes(test_site, devices=[rebound(d) for d in test_site.devices])
    engine = RulesEngine(index, store, clock, QUIET)
    make = make_event_factory(index)
    engine.handle(make("med-r00x", "heartbeat", NIGHT, battery=80))
    lagging = make("bed-r003", "in_bed", NIGHT).model_copy(
        update={"ts": NIGHT - timedelta(hours=1), "resident_id": None}
    )
    engine.handle(lagging)
    due = {t.timer_id: t.due for t in store.timers() if t.kind == "silent"}
    assert due == {
        "silent:med-r00x": NIGHT + timedelta(seconds=90),
        "silent:bed-r003": NIGHT + timedelta(seconds=60),
    }


@pytest.mark.parametrize("told_by", ["timer and dispenser", "timer", "dispenser"])
def test_a_dose_id_used_again_the_next_night_alarms_again(
    engine: RulesEngine, clock: FakeClock, make_event: MakeEvent, store: AlarmStore, told_by: str
) -> None:
    """Dispensers may name the night dose 'night' every day; each night is its own dose,
    whether its window runs out (the timer), the dispenser reports it missed, or both."""
    for night in (0, 1):
        start = NIGHT + timedelta(days=night)
        clock.set(start)
        if "timer" in told_by:
            engine.handle(make_event("med-r001", "dose_due", start, dose_id="night"))
        clock.set(start + timedelta(minutes=31))
        engine.tick()
        if "dispenser" in told_by:
            engine.handle(
                make_event("med-r001", "missed", start + timedelta(minutes=32), dose_id="night")
            )
        (alarm,) = [a for a in store.list_alarms(active_only=True) if a.rule == "dose_missed"]
        assert alarm.count == 1  # the timer and the dispenser's own report: one occurrence
        store_resolve(store, clock, alarm.alarm_id)
    assert len([a for a in store.list_alarms(active_only=False) if a.rule == "dose_missed"]) == 2


def test_a_missed_dose_alarms_with_the_residents_own_dose_settings(
    test_site: Site, store: AlarmStore, clock: FakeClock
) -> None:
    """r-004 takes a medicine that must not wait: a 10 min window and a high alarm, in her own
    `rules`. Her dispenser's timer uses them; r-001's dose keeps the site's (30 min, medium)."""
    urgent = Rules(dose_missed=DoseMissedRule(window_minutes=10, priority=Priority.HIGH))
    residents = [
        r.model_copy(update={"rules": urgent}) if r.id == "r-004" else r
        for r in test_site.residents
    ]
    index = with_changes(test_site, residents=residents)
    engine = RulesEngine(index, store, clock, QUIET)
    make = make_event_factory(index)
    engine.handle(make("med-r004", "dose_due", NIGHT, dose_id="d1"))
    engine.handle(make("med-r001", "dose_due", NIGHT, dose_id="d1"))
    raised: list[tuple[float, str | None, str]] = []
    for _ in range(31):
        clock.advance(timedelta(minutes=1))
        raised += [
            ((c.at - NIGHT).total_seconds() / 60, c.alarm["resident_id"], c.alarm["priority"])
            for c in engine.tick()
            if c.alarm["rule"] == "dose_missed" and c.reason == "raised"
        ]
    assert raised == [(10.0, "r-004", "high"), (30.0, "r-001", "medium")]


def store_resolve(store: AlarmStore, clock: FakeClock, alarm_id: str) -> None:
    lifecycle.resolve(store, clock, alarm_id, "anna", "dose_given")


def test_a_rolled_back_channel_time_is_not_remembered(tmp_path: Any) -> None:
    """The channel times are cached (services/alarms/store/channels.py): a savepoint that
    advanced a channel and then failed must leave the older time, or a later reading that is
    really the newest would be judged late and never raise or clear its alarm."""
    store = AlarmStore(tmp_path / "alarms.db")
    later = NIGHT + timedelta(minutes=5)

    def fail_after_advancing(channel: str, scope: Callable[[], Any]) -> None:
        with scope():
            store.advance_channel("diaper-a1", channel, later)
            assert store.channel_ts("diaper-a1", channel) == later  # cached meanwhile
            raise RuntimeError("a bad event")

    try:
        with store.transaction():
            store.advance_channel("diaper-a1", "saturation", NIGHT)
        assert store.channel_ts("diaper-a1", "saturation") == NIGHT
        with store.transaction():
            with pytest.raises(RuntimeError):
                fail_after_advancing("saturation", store.savepoint)
            assert store.channel_ts("diaper-a1", "saturation") == NIGHT
        with pytest.raises(RuntimeError):
            fail_after_advancing("seen", store.transaction)
        assert store.channel_ts("diaper-a1", "seen") is None
    finally:
        store.close()


def test_a_reminder_of_an_escalated_alarm_names_the_escalation_target(
    escalation_site: Callable[..., SiteIndex], store: AlarmStore, clock: FakeClock
) -> None:
    """Reminders go where the alarm is: to the ward before escalation (no target), to the
    escalation target after it."""
    index = escalation_site(
        target={"kind": "role", "role": "manager"}, high_minutes=2, reminder_high_minutes=1.5
    )
    engine = RulesEngine(index, store, clock, QUIET)
    engine.handle(make_event_factory(index)("fall-b1", "fall", NIGHT, confidence=1.0))
    reminders: list[tuple[str, str, Any]] = []
    for _ in range(4 * 60 // 5):
        clock.advance(5)
        for c in engine.tick():
            if c.reason == "reminder" and c.alarm["rule"] == "fall":
                envelope = c.envelope()
                reminders.append((c.alarm["state"], envelope["type"], envelope.get("target")))
    assert reminders[:2] == [
        ("raised", "update", None),  # 1.5 min
        ("escalated", "update", {"kind": "role", "role": "manager"}),  # 3 min, after 2
    ]


def test_timers_left_for_an_acknowledged_alarm_do_nothing(
    engine: RulesEngine, store: AlarmStore, clock: FakeClock, make_event: MakeEvent
) -> None:
    """Acknowledging deletes an alarm's timers; one left behind (written back by an older
    process, say) must still neither escalate nor remind an acknowledged alarm."""
    (new,) = engine.handle(make_event("fall-b1", "fall", NIGHT, confidence=0.9))
    left = [t for t in store.timers() if new.alarm_id in t.timer_id]
    assert {t.kind for t in left} == {lifecycle.ESCALATE, lifecycle.REMIND}
    clock.advance(timedelta(seconds=30))
    lifecycle.acknowledge(store, clock, new.alarm_id, "anna")
    with store.transaction():
        for timer in left:
            store.set_timer(timer)
    assert changes_over(engine, clock, 5) == []
    alarm = store.get(new.alarm_id)
    assert alarm is not None
    assert alarm.state.value == "acknowledged"


def test_a_timer_of_unknown_kind_is_dropped_and_the_others_fire(
    engine: RulesEngine, store: AlarmStore, clock: FakeClock, make_event: MakeEvent
) -> None:
    """A timer written by a newer version (a kind this engine lacks) costs only itself."""
    from services.alarms.store.timers import Timer

    with store.transaction():
        store.set_timer(Timer("future:x", "from_a_newer_version", NIGHT, {}))
    due = make_event("med-r001", "dose_due", NIGHT, dose_id="d1")
    engine.handle(due)
    clock.advance(timedelta(minutes=45))
    missed = [c for c in engine.tick() if c.alarm["rule"] == "dose_missed"]
    assert [c.reason for c in missed][:1] == ["raised"]
    assert "future:x" not in {t.timer_id for t in store.timers()}
    # the missed dose's alarm says which dispenser, room and dose_due event it is about
    alarm = missed[0].alarm
    assert (alarm["device_id"], alarm["room"], alarm["resident_id"]) == ("med-r001", "a-1", "r-001")
    assert alarm["trigger_event_id"] == due.event_id


def test_what_the_store_keeps_in_memory_yields_to_another_connections_commit(
    tmp_path: Any,
) -> None:
    """Inside a transaction the store answers "no timer due yet", "no open alarm" and a
    channel's newest time from memory (services/alarms/store/). Another connection to the
    file (the web app's store, a second process) may commit between two transactions: the
    next one must see what it wrote, or a reminder it armed would wait for the next tick's
    bound and an alarm it opened would be raised a second time."""
    db = tmp_path / "alarms.db"
    rules, other = AlarmStore(db), AlarmStore(db)
    try:
        far, soon = NIGHT + timedelta(hours=2), NIGHT + timedelta(minutes=1)
        with rules.transaction():
            rules.set_timer(Timer("silent:x", "silent", far, {"device_id": "x"}))
            assert rules.due_timers(NIGHT) == []  # the earliest (2 h) is learnt here
            assert rules.open_alarm(SITE, "fall", "resident:r-001") is None
            rules.advance_channel("fall-a1", "seen", NIGHT)
        with rules.transaction():
            assert rules.due_timers(soon) == []  # from memory: nothing before 2 h
        with other.transaction():
            other.set_timer(Timer("remind:a", "remind", soon, {"alarm_id": "a"}))
            other.insert_alarm(fall_alarm(), "resident:r-001")
            other.advance_channel("fall-a1", "seen", soon)
        with rules.transaction():
            assert [t.timer_id for t in rules.due_timers(soon)] == ["remind:a"]
            found = rules.open_alarm(SITE, "fall", "resident:r-001")
            assert found is not None
            assert found.alarm_id == "a"
            assert rules.channel_ts("fall-a1", "seen") == soon
        # and our own writes inside one transaction lower the bound at once
        with rules.transaction():
            rules.delete_timer("remind:a")
            assert rules.due_timers(soon) == []
            rules.set_timer(Timer("dose:y", "dose", NIGHT, {"device_id": "y"}))
            assert [t.timer_id for t in rules.due_timers(soon)] == ["dose:y"]
    finally:
        rules.close()
        other.close()


def fall_alarm() -> Alarm:
    return Alarm(
        alarm_id="a",
        site=SITE,
        rule="fall",
        kind="fall",
        priority=Priority.HIGH,
        resident_id="r-001",
        room="a-1",
        device_id="fall-a1",
        raised_at=NIGHT,
        last_seen_at=NIGHT,
        trigger_event_id="e",
    )


def test_only_the_transactions_own_thread_reads_from_memory(tmp_path: Any) -> None:
    """The web app shares the store object with the rules engine in one process: a thread
    outside the open transaction must read the file, not what that transaction remembered
    (possibly uncommitted)."""
    store = AlarmStore(tmp_path / "alarms.db")
    seen: list[object] = []
    try:
        assert store._db.generation is None
        with store.transaction():
            assert store._db.generation is not None
            other = threading.Thread(target=lambda: seen.append(store._db.generation))
            other.start()
            other.join()
        assert seen == [None]
        assert store._db.generation is None
    finally:
        store.close()
