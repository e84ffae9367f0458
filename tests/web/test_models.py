"""The API's answer models describe the JSON the services already produce, key for key and in
order: validating an answer through them, as FastAPI does with a `response_model`, changes
nothing."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from carehub.site import Priority, SiteIndex
from carehub.subscriber import Delivery
from gateway.emergency import ProvisionalAlarms
from gateway.pipeline import Ingestor
from gateway.store.sqlite import SqliteEventStore
from services.alarms.model import Alarm, AlarmState, Outcome
from services.web.context import HubContext
from services.web.models import AlarmPublic, DevicePublic, ProvisionalAlarmPublic
from services.web.routes.devices import device_rows

AT = datetime(2026, 11, 24, 23, 0, tzinfo=UTC)


def _through(model: Any, value: Any) -> Any:
    adapter: TypeAdapter[Any] = TypeAdapter(model)
    return adapter.dump_python(adapter.validate_python(value), mode="json")


def _same(before: Any, after: Any) -> None:
    assert after == before
    assert json.dumps(after) == json.dumps(before)  # the key order too


def test_a_stored_alarm_passes_unchanged() -> None:
    assert list(AlarmPublic.model_fields) == list(Alarm.model_fields)
    alarm = Alarm(
        alarm_id="a1",
        site="testhjem",
        rule="fall",
        kind="fall",
        priority=Priority.HIGH,
        state=AlarmState.RESOLVED,
        resident_id="r-001",
        room="a-1",
        device_id="fall-a1",
        raised_at=AT,
        acknowledged_at=AT + timedelta(minutes=1),
        acknowledged_by="sofie",
        resolved_at=AT + timedelta(minutes=4),
        resolved_by="sofie",
        outcome=Outcome.ASSISTED,
        trigger_event_id="e1",
        count=2,
        last_seen_at=AT + timedelta(seconds=30),
        note="helped back to bed",
    )
    _same(alarm.to_json(), _through(AlarmPublic, alarm.to_json()))


def test_provisional_alarms_pass_unchanged_beside_stored_ones(
    tmp_path: Path, test_index: SiteIndex
) -> None:
    ingestor = Ingestor(test_index, SqliteEventStore(tmp_path / "hub.db"))
    announcer = ProvisionalAlarms(ingestor, test_index)
    sent: list[bytes] = []
    fall = {"v": 1, "seq": 1, "ts": "2026-11-24T23:00:00Z", "type": "fall", "confidence": 0.9}
    delivery = Delivery(
        1, 1, 1, "carehub/testhjem/devices/fall-a1/up", json.dumps(fall).encode(), AT, False
    )
    announcer.announce([delivery], lambda _topic, payload, _retain: sent.append(payload))
    announcer.store_state("stalled", AT, lambda _topic, payload, _retain: sent.append(payload))
    ingestor.close()
    provisional = [json.loads(p) for p in sent]
    assert [a["rule"] for a in provisional] == ["fall", "store_failing"]
    stored = Alarm(
        alarm_id="a1", site="testhjem", rule="fall", kind="fall", priority=Priority.HIGH,
        raised_at=AT,
    ).to_json()  # fmt: skip
    listed = [stored, *provisional]
    _same(listed, _through(list[AlarmPublic | ProvisionalAlarmPublic], listed))


def test_devices_pass_unchanged(web_ctx: HubContext) -> None:
    states = [
        {
            "device_id": "fall-a1",
            "kind": "fall",
            "last_seen": "2026-11-24T22:59:00+00:00",
            "battery": 80.0,
            "rssi": -61,
            "online": True,
        }
    ]
    ctx = dataclasses.replace(web_ctx, devices=lambda: states)
    rows = device_rows(ctx, with_names=False)
    assert list(DevicePublic.model_fields) == list(rows[0])
    _same(rows, _through(list[DevicePublic], rows))
