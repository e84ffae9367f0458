"""The board's provisional alarms over a real alarm store (SQLite): a provisional fall is
hidden once the store has spoken about its device, so a ghost left retained by a gateway that
died never comes back after its stored alarm was resolved (services/web/provisional.py)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from carehub.clock import FakeClock
from carehub.site import Priority, SiteIndex
from carehub.timefmt import rfc3339
from carehub.topics import SiteTopics
from services.alarms.model import Alarm, AlarmState
from services.alarms.service import AlarmService
from services.alarms.store import AlarmStore
from services.rules.engine import RulesEngine
from services.web.provisional import BoardAlarms
from tests.services.conftest import NIGHT, QUIET, make_event_factory

TOPICS = SiteTopics("carehub", "testhjem")


@pytest.fixture
def parts(
    tmp_path: Path, test_index: SiteIndex
) -> Iterator[tuple[RulesEngine, AlarmService, FakeClock]]:
    clock = FakeClock(NIGHT)
    store = AlarmStore(tmp_path / "alarms.db")
    service = AlarmService(store, clock)
    yield RulesEngine(test_index, store, clock, QUIET), service, clock
    service.close()
    store.close()


def provisional(device: str, seen_minutes: float) -> bytes:
    at = rfc3339(NIGHT + timedelta(minutes=seen_minutes))
    alarm = {
        "alarm_id": f"provisional-{device}",
        "rule": "fall",
        "device_id": device,
        "state": "raised",
        "raised_at": at,
        "last_seen_at": at,
        "provisional": True,
    }
    return json.dumps(alarm).encode()


def test_a_provisional_fall_is_hidden_by_its_stored_alarm_active_or_resolved_after_it(
    parts: tuple[RulesEngine, AlarmService, FakeClock], test_index: SiteIndex
) -> None:
    engine, service, clock = parts
    board = BoardAlarms(service, "carehub", "testhjem")
    live: list[dict[str, Any]] = []
    board.subscribe(live.append)

    def shown() -> list[str]:
        return [a["alarm_id"] for a in board.list_alarms("active", None) if a.get("provisional")]

    board.on_message(TOPICS.provisional_fall("fall-a1"), provisional("fall-a1", 0))
    assert shown() == ["provisional-fall-a1"]  # the store has said nothing yet

    # the store answers: the stored alarm is raised and replaces the provisional one
    engine.handle(make_event_factory(test_index)("fall-a1", "fall", NIGHT, confidence=0.9))
    assert shown() == []
    (stored,) = service.list_alarms("active")

    # a nurse resolves it; the gateway dies before clearing its retained provisional alarm,
    # and the web app (re)reads the ghost from the broker
    clock.set(NIGHT + timedelta(minutes=5))
    service.resolve(stored["alarm_id"], "sofie", "assisted", None)
    deadline = time.monotonic() + 5
    while not any(e["type"] == "end" for e in live):  # the alarm service's feed thread
        assert time.monotonic() < deadline, "the resolve never reached the live stream"
        time.sleep(0.01)
    live.clear()
    board.on_message(TOPICS.provisional_fall("fall-a1"), provisional("fall-a1", 1))
    assert shown() == []
    assert [e for e in live if e["alarm"].get("provisional")] == []
    with pytest.raises(Exception, match="not stored yet"):
        board.acknowledge("provisional-fall-a1", "sofie")  # never shown, never taken

    # a new fall after that resolve, while the store hangs again, is shown
    board.on_message(TOPICS.provisional_fall("fall-a1"), provisional("fall-a1", 6))
    assert shown() == ["provisional-fall-a1"]
    assert [e["type"] for e in live if e["alarm"].get("provisional")] == ["update"]
    # another device's provisional fall is not hidden by fall-a1's alarm
    board.on_message(TOPICS.provisional_fall("fall-b1"), provisional("fall-b1", 1))
    assert sorted(shown()) == ["provisional-fall-a1", "provisional-fall-b1"]


def test_an_imported_alarm_never_resolved_does_not_hide_a_provisional_fall(
    parts: tuple[RulesEngine, AlarmService, FakeClock],
) -> None:
    """A `closed` alarm (imported history, docs/freed-hours.md) of the same device and rule
    is not the store speaking about this fall: the provisional fall stays shown."""
    _engine, service, _clock = parts
    closed = Alarm(
        alarm_id="imported-fall",
        site="testhjem",
        rule="fall",
        kind="fall",
        priority=Priority.HIGH,
        state=AlarmState.ACKNOWLEDGED,
        device_id="fall-a1",
        raised_at=NIGHT,
        acknowledged_at=NIGHT + timedelta(minutes=1),
        acknowledged_by="anna",
    )
    with service.store.transaction():
        assert service.store.import_alarm(closed)
    assert service.list_alarms("all")[0]["state"] == "closed"
    board = BoardAlarms(service, "carehub", "testhjem")
    board.on_message(TOPICS.provisional_fall("fall-a1"), provisional("fall-a1", 2))
    assert [a["alarm_id"] for a in board.list_alarms("active", None)] == ["provisional-fall-a1"]
