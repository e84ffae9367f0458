"""The store and the web app's AlarmService: lifecycle through the API, audit, change feed,
restarts and replays."""

from __future__ import annotations

import queue
import sqlite3
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from carehub.clock import FakeClock
from carehub.errors import ConflictError, NotFoundError
from carehub.site import SiteIndex
from services.alarms.errors import AlarmNotFoundError, InvalidTransitionError
from services.alarms.model import Alarm
from services.alarms.service import AlarmService
from services.alarms.store import AlarmStore
from services.rules.engine import RulesEngine
from services.web.ports import AlarmsPort
from tests.services.conftest import NIGHT, QUIET, MakeEvent


def raise_fall(engine: RulesEngine, make_event: MakeEvent, device: str = "fall-b1") -> str:
    (change,) = engine.handle(make_event(device, "fall", NIGHT, confidence=0.9))
    return change.alarm_id


def test_service_is_what_the_web_app_expects(alarms: AlarmService) -> None:
    port: AlarmsPort = alarms  # mypy checks the structural fit
    assert port is alarms


def test_acknowledge_then_resolve(
    engine: RulesEngine, alarms: AlarmService, clock: FakeClock, make_event: MakeEvent
) -> None:
    alarm_id = raise_fall(engine, make_event)
    clock.advance(40)
    acked = alarms.acknowledge(alarm_id, "anna")
    assert (acked["state"], acked["acknowledged_by"]) == ("acknowledged", "anna")
    assert acked["acknowledged_at"] == "2026-11-22T22:00:40.000000Z"
    clock.advance(300)
    done = alarms.resolve(alarm_id, "anna", "assisted", "helped back to bed")
    assert (done["state"], done["outcome"], done["resolved_by"]) == ("resolved", "assisted", "anna")
    assert alarms.list_alarms("active") == []
    assert [a["alarm_id"] for a in alarms.list_alarms("all")] == [alarm_id]
    audit = alarms.audit_log(alarm_id)
    assert [(e.actor, e.action, e.at) for e in audit] == [
        ("anna", "acknowledge", NIGHT + timedelta(seconds=40)),
        ("anna", "resolve", NIGHT + timedelta(seconds=340)),
    ]
    assert audit[1].detail == {
        "from": "acknowledged",
        "outcome": "assisted",
        "note": "helped back to bed",
    }


@pytest.mark.parametrize(
    ("steps", "refused"),
    [
        (["ack"], "ack"),
        (["resolve"], "ack"),
        (["resolve"], "resolve"),
        (["ack", "resolve"], "resolve"),
    ],
)
def test_impossible_changes_are_conflicts(
    engine: RulesEngine,
    alarms: AlarmService,
    make_event: MakeEvent,
    steps: list[str],
    refused: str,
) -> None:
    alarm_id = raise_fall(engine, make_event)
    do = {
        "ack": lambda: alarms.acknowledge(alarm_id, "bo"),
        "resolve": lambda: alarms.resolve(alarm_id, "bo", "false_alarm"),
    }
    for step in steps:
        do[step]()
    before = alarms.get(alarm_id)
    with pytest.raises(InvalidTransitionError) as info:
        do[refused]()
    assert isinstance(info.value, ConflictError)
    assert alarms.get(alarm_id) == before  # nothing half-written
    assert len(alarms.audit_log(alarm_id)) == len(steps)  # a refused change is not audited


def test_unknown_alarm_is_not_found(alarms: AlarmService) -> None:
    with pytest.raises(AlarmNotFoundError) as info:
        alarms.acknowledge("nope", "anna")
    assert isinstance(info.value, NotFoundError)
    with pytest.raises(AlarmNotFoundError):
        alarms.get("nope")


def test_bad_outcome_is_a_value_error(
    engine: RulesEngine, alarms: AlarmService, make_event: MakeEvent
) -> None:
    alarm_id = raise_fall(engine, make_event)
    with pytest.raises(ValueError, match="outcome"):
        alarms.resolve(alarm_id, "anna", "fixed")
    assert alarms.get(alarm_id)["state"] == "raised"


def test_resolving_stops_timers_and_sensor_resolve_is_not_audited(
    engine: RulesEngine, alarms: AlarmService, store: AlarmStore, make_event: MakeEvent
) -> None:
    alarm_id = raise_fall(engine, make_event)
    assert {t.kind for t in store.timers()} == {"escalate", "remind", "silent"}
    alarms.resolve(alarm_id, "anna", "false_alarm")
    assert {t.kind for t in store.timers()} == {"silent"}
    engine.handle(make_event("diaper-r002", "saturation", NIGHT, level=90))
    engine.handle(make_event("diaper-r002", "saturation", NIGHT + timedelta(minutes=1), level=0))
    assert [e.actor for e in alarms.audit_log()] == ["anna"]


def test_audit_log_is_append_only(
    engine: RulesEngine,
    alarms: AlarmService,
    store: AlarmStore,
    db_path: Path,
    make_event: MakeEvent,
) -> None:
    alarms.acknowledge(raise_fall(engine, make_event), "anna")
    conn = sqlite3.connect(db_path)
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit_log SET actor = 'mallory'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit_log")
    conn.close()


def test_burst_of_100_falls_is_one_alarm_counted_100_times(
    engine: RulesEngine, store: AlarmStore, make_event: MakeEvent
) -> None:
    for i in range(100):
        engine.handle(make_event("fall-a1", "fall", NIGHT + timedelta(seconds=i), confidence=0.9))
    (alarm,) = store.list_alarms(active_only=False)
    assert alarm.count == 100
    assert len(store.occurrences(alarm.alarm_id)) == 100  # every one kept for the reports
    assert alarm.last_seen_at == NIGHT + timedelta(seconds=99)


def test_replaying_an_event_changes_nothing(
    engine: RulesEngine, store: AlarmStore, make_event: MakeEvent
) -> None:
    event = make_event("fall-a1", "fall", NIGHT, confidence=0.9)
    assert len(engine.handle(event)) == 1
    assert engine.handle(event) == []
    engine.handle(make_event("fall-a1", "fall", NIGHT + timedelta(seconds=30), confidence=0.9))
    assert engine.handle(event) == []
    (alarm,) = store.list_alarms(active_only=False)
    assert alarm.count == 2


def test_restart_keeps_alarms_and_timers(
    test_index: SiteIndex, db_path: Path, clock: FakeClock, make_event: MakeEvent
) -> None:
    """A new engine over the same file carries on where the old one stopped."""
    first_store = AlarmStore(db_path)
    first = RulesEngine(test_index, first_store, clock, QUIET)
    fall = make_event("fall-b1", "fall", NIGHT, confidence=0.9)
    first.handle(fall)
    first.handle(make_event("med-r001", "dose_due", NIGHT, dose_id="d1"))
    first_store.close()

    store = AlarmStore(db_path)
    engine = RulesEngine(test_index, store, clock, QUIET)
    assert engine.handle(fall) == []  # redelivered after the restart: no second alarm
    clock.advance(timedelta(minutes=31))
    fired = [(c.alarm["rule"], c.reason) for c in engine.tick()]
    assert ("fall", "escalated") in fired
    assert ("dose_missed", "raised") in fired
    rules = sorted(a.rule for a in store.list_alarms(active_only=True))
    assert rules.count("fall") == 1
    assert rules.count("dose_missed") == 1
    (fall_alarm,) = [a for a in store.list_alarms(active_only=True) if a.rule == "fall"]
    assert fall_alarm.count == 1
    store.close()


def test_change_feed_across_processes(
    engine: RulesEngine, db_path: Path, clock: FakeClock, make_event: MakeEvent
) -> None:
    """The web app in another process (its own connection) sees the engine's changes, and
    the engine's process sees the web app's acknowledgement."""
    other = AlarmService(AlarmStore(db_path), clock, poll_s=0.02)
    got: queue.Queue[dict[str, Any]] = queue.Queue()
    unsubscribe = other.subscribe(got.put)
    try:
        alarm_id = raise_fall(engine, make_event)
        new = got.get(timeout=5)
        assert (new["type"], new["reason"], new["alarm"]["alarm_id"]) == ("new", "raised", alarm_id)
        other.acknowledge(alarm_id, "anna")
        assert got.get(timeout=5)["reason"] == "acknowledged"
        assert engine.store.get(alarm_id).state.value == "acknowledged"  # type: ignore[union-attr]
        other.resolve(alarm_id, "anna", "assisted")
        end = got.get(timeout=5)
        assert (end["type"], end["alarm"]["outcome"]) == ("end", "assisted")
        assert isinstance(end["change_id"], int)
        assert other.changes_since(new["change_id"])[-1] == end
    finally:
        unsubscribe()
        other.close()
        other.store.close()


def test_listener_failure_does_not_stop_the_feed(
    engine: RulesEngine, alarms: AlarmService, make_event: MakeEvent
) -> None:
    got: queue.Queue[dict[str, Any]] = queue.Queue()

    def broken(_envelope: dict[str, Any]) -> None:
        raise RuntimeError("listener bug")

    alarms.subscribe(broken)
    alarms.subscribe(got.put)
    raise_fall(engine, make_event)
    assert got.get(timeout=5)["type"] == "new"


def test_reports_read_alarms_raised_in_a_period(
    engine: RulesEngine, alarms: AlarmService, make_event: MakeEvent
) -> None:
    alarm_id = raise_fall(engine, make_event)
    assert [a["alarm_id"] for a in alarms.raised_between(NIGHT, NIGHT + timedelta(1))] == [alarm_id]
    assert alarms.raised_between(NIGHT + timedelta(seconds=1), NIGHT + timedelta(1)) == []
    assert alarms.list_alarms("all", since=NIGHT + timedelta(seconds=1)) == []
    with pytest.raises(ValueError, match="state"):
        alarms.list_alarms("open")


def test_import_keeps_finished_history_once(store: AlarmStore) -> None:
    record = {
        "alarm_id": "old-1", "site": "testhjem", "rule": "fall", "kind": "fall",
        "priority": "high", "state": "resolved", "resident_id": "r-001", "room": "a-1",
        "device_id": "fall-a1", "raised_at": "2026-10-01T22:00:00Z",
        "acknowledged_at": "2026-10-01T22:01:00Z", "acknowledged_by": "anna",
        "escalated_at": None, "resolved_at": "2026-10-01T22:09:00Z", "resolved_by": "anna",
        "outcome": "assisted", "trigger_event_id": None, "count": 2,
    }  # fmt: skip
    alarm = Alarm.model_validate(record)
    with store.transaction():
        assert store.import_alarm(alarm)
        assert not store.import_alarm(alarm)
    assert store.get("old-1") == alarm
    with pytest.raises(ValueError, match="state raised with a resolution"), store.transaction():
        store.import_alarm(alarm.model_copy(update={"alarm_id": "x", "state": "raised"}))
    assert store.get("x") is None
    # one the earlier system never resolved is kept closed (docs/alarms.md), once
    open_one = alarm.model_copy(
        update={"alarm_id": "y", "state": "acknowledged", "resolved_at": None,
                "resolved_by": None, "outcome": None}
    )  # fmt: skip
    with store.transaction():
        assert store.import_alarm(open_one)
        assert not store.import_alarm(open_one)
    kept = store.get("y")
    assert kept is not None
    assert kept.state == "closed"
    assert store.list_alarms(active_only=True) == []
