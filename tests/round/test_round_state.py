"""The round state over a real event store and alarm service, on a fake clock: a resident
whose sensors vouch for them reads ok with the state shown, a silent sensor reads visit and
is named, the look thresholds, and a digital check is recorded, audited and shown."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from carehub.clock import FakeClock
from carehub.errors import NotFoundError
from carehub.site import SiteIndex
from gateway.pipeline import Ingestor
from gateway.store.sqlite import SqliteEventStore
from services.alarms.service import AlarmService
from services.round.checks import CheckStore
from services.round.service import RoundService
from tests.services.conftest import NIGHT, make_event_factory


@pytest.fixture
def rounds(test_index: SiteIndex, tmp_path: Path) -> Iterator[tuple[RoundService, FakeClock]]:
    db = tmp_path / "hub.db"
    clock = FakeClock(NIGHT)
    events = SqliteEventStore(db)
    alarms = AlarmService.open(db, clock)
    checks = CheckStore(db, "testhjem")
    service = RoundService(test_index, events, alarms, checks, clock).start()
    yield service, clock
    service.stop()
    checks.close()
    alarms.close()
    events.close()


def resident(answer: dict[str, object], rid: str) -> dict[str, object]:
    residents = answer["residents"]
    assert isinstance(residents, list)
    return next(r for r in residents if r["resident_id"] == rid)


def test_vouched_for_reads_ok_and_a_silent_sensor_reads_visit_by_name(
    rounds: tuple[RoundService, FakeClock], test_index: SiteIndex
) -> None:
    service, clock = rounds
    make = make_event_factory(test_index)
    at = NIGHT
    service.on_event(make("fall-a1", "heartbeat", at, battery=90))
    service.on_event(make("diaper-r001", "saturation", at, level=20))
    service.on_event(make("med-r001", "dose_due", at, dose_id="n1", due="2026-11-22T22:00:00Z"))
    service.on_event(make("med-r001", "taken", at + timedelta(seconds=30), dose_id="n1"))
    service.on_event(make("bed-r001", "in_bed", at))
    clock.set(at + timedelta(minutes=1))
    one = resident(service.round(), "r-001")
    assert one["verdict"] == "ok", one["reasons"]
    assert one["state"] == {
        "presence": None,
        "movement": None,
        "in_bed": True,
        "out_of_bed_since": None,
        "diaper_level": 20.0,
        "dose": "taken",
        "active_alarms": 0,
    }
    assert one["sensors"] == {
        "online": ["fall-a1", "diaper-r001", "med-r001", "bed-r001"],
        "offline": [],
    }
    # every device of r-001 keeps talking but the diaper sensor: after 3 heartbeats it is named
    clock.set(at + timedelta(minutes=3, seconds=30))
    for device in ("fall-a1", "med-r001", "bed-r001"):
        service.on_event(make(device, "heartbeat", clock.now()))
    one = resident(service.round(), "r-001")
    assert one["verdict"] == "visit"
    assert one["reasons"] == ["Diaper sensor diaper-r001 is offline"]
    assert resident(service.round(locale="da"), "r-001")["reasons"] == [
        "Blesensor diaper-r001 svarer ikke"
    ]
    assert one["sensors"]["offline"] == ["diaper-r001"]  # type: ignore[index]


def test_look_thresholds_and_the_radar(
    rounds: tuple[RoundService, FakeClock], test_index: SiteIndex
) -> None:
    service, clock = rounds
    make = make_event_factory(test_index)
    at = NIGHT
    service.on_event(make("fall-a2", "heartbeat", at, presence=1, movement=1))
    service.on_event(make("diaper-r002", "saturation", at, level=40))
    two = resident(service.round(), "r-002")
    assert (two["verdict"], two["state"]["presence"], two["state"]["movement"]) == (  # type: ignore[index]
        "ok",
        "in_room",
        "still",
    )
    service.on_event(make("diaper-r002", "saturation", at + timedelta(seconds=5), level=50))
    two = resident(service.round(), "r-002")
    assert (two["verdict"], two["reasons"]) == ("look", ["Diaper 50 %"])
    # out of bed: a look after half of bed_exit's 10 minutes
    service.on_event(make("fall-a1", "heartbeat", at))
    service.on_event(make("diaper-r001", "saturation", at, level=0))
    service.on_event(make("med-r001", "heartbeat", at))
    service.on_event(make("bed-r001", "out_of_bed", at))
    clock.set(at + timedelta(minutes=4, seconds=59))
    for device in ("fall-a1", "diaper-r001", "med-r001", "bed-r001"):
        service.on_event(make(device, "heartbeat", clock.now()))
    assert resident(service.round(), "r-001")["verdict"] == "ok"
    clock.set(at + timedelta(minutes=5))
    for device in ("fall-a1", "diaper-r001", "med-r001", "bed-r001"):
        service.on_event(make(device, "heartbeat", clock.now()))
    one = resident(service.round(), "r-001")
    assert (one["verdict"], one["reasons"]) == ("look", ["Out of bed 5 min"])
    assert one["state"]["out_of_bed_since"] == "2026-11-22T22:00:00Z"  # type: ignore[index]
    # the ward filter
    assert {r["ward"] for r in service.round("b")["residents"]} == {"b"}


def test_a_digital_check_is_recorded_audited_and_shown(
    rounds: tuple[RoundService, FakeClock],
) -> None:
    service, clock = rounds
    assert resident(service.round(), "r-001")["last_check"] is None
    plan = resident(service.round(), "r-002")["plan"]
    assert plan == {"planned": 4, "past": 1, "done": 0, "due": True}  # r-002: 4 per night
    clock.set(NIGHT + timedelta(minutes=2))
    service.check("r-002", "ida", "ok", "sleeping, checked on the tablet")
    two = resident(service.round(), "r-002")
    assert two["last_check"] == {"at": "2026-11-22T22:02:00Z", "by": "ida", "result": "ok"}
    assert two["plan"] == {"planned": 4, "past": 1, "done": 1, "due": False}
    audit = service.alarms.audit_log()  # type: ignore[attr-defined]
    assert [(e.actor, e.action, e.detail["resident_id"]) for e in audit] == [
        ("ida", "digital_check", "r-002")
    ]
    with pytest.raises(NotFoundError):
        service.check("r-999", "ida", "ok")


def test_the_state_read_back_on_start_equals_the_live_state(
    test_index: SiteIndex, tmp_path: Path
) -> None:
    """A restart: what a new RoundService reads back from the stores is what the running one
    built from the events as they came."""
    db = tmp_path / "hub.db"
    clock = FakeClock(NIGHT)
    events = SqliteEventStore(db)
    ingestor = Ingestor(test_index, events, "carehub")
    alarms = AlarmService.open(db, clock)
    checks = CheckStore(db, "testhjem")
    live = RoundService(test_index, events, alarms, checks, clock).start()
    up = "carehub/testhjem/devices/{}/up"
    messages = [
        (0, "fall-a1", {"type": "heartbeat", "battery": 90}),
        (5, "diaper-r001", {"type": "saturation", "level": 55}),
        (10, "med-r001", {"type": "dose_due", "dose_id": "n1", "due": "2026-11-22T21:00:00Z"}),
        (20, "bed-r001", {"type": "out_of_bed"}),
        (30, "fall-b1", {"type": "heartbeat", "battery": 80}),
        (40, "bed-r001", {"type": "in_bed"}),
        (50, "med-r001", {"type": "heartbeat", "battery": 70}),
        (60, "diaper-r001", {"type": "saturation", "level": 60}),
    ]
    for seq, (dt, device, body) in enumerate(messages, start=1):
        when = NIGHT + timedelta(seconds=dt)
        clock.set(when)
        ts = when.isoformat().replace("+00:00", "Z")
        payload = json.dumps({"v": 1, "seq": seq, "ts": ts, **body}).encode()
        result = ingestor.ingest(up.format(device), payload, when)
        assert result.accepted, result
        ingestor.flush()
        for event in result.events:  # as the web app's broker connection hands them on
            live.on_event(event)
    clock.set(NIGHT + timedelta(minutes=2))
    live.check("r-002", "ida", "visit_needed", "awake")
    clock.set(NIGHT + timedelta(minutes=3))
    before = live.round()
    live.stop()
    restarted = RoundService(test_index, events, alarms, checks, clock).start()
    try:
        after = restarted.round()
    finally:
        restarted.stop()
        checks.close()
        alarms.close()
        ingestor.close()
    assert after == before
    one = resident(after, "r-001")
    assert (one["state"]["diaper_level"], one["state"]["in_bed"]) == (60.0, True)  # type: ignore[index]
    assert one["state"]["dose"] == "due"  # type: ignore[index]
    assert resident(after, "r-002")["last_check"]["result"] == "visit_needed"  # type: ignore[index]
