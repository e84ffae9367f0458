"""services/timeseries/: alarm changes and freed hours as points in the dashboards' layout,
checked through influxdb-client's own line protocol; a real InfluxDB only when
CAREHUB_TEST_INFLUX_URL (+ _TOKEN, _ORG, _BUCKET) names a disposable bucket."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from carehub.clock import FakeClock
from carehub.errors import ConfigError
from carehub.settings import Settings
from carehub.site import Site, SiteIndex
from gateway.store import influx_schema as s
from services.reports.freed_hours import AlarmRecord, FreedHoursInput, freed_hours_report
from services.reports.service import json_safe_report
from services.rules.engine import RulesEngine
from services.timeseries import (
    AlarmChangeWriter,
    FreedHoursJob,
    TimeseriesUnavailableError,
    TimeseriesWriter,
    alarm_change_point,
    envelope_point,
    freed_hours_points,
    last_complete_night,
    write_nights,
)
from tests.deploy.lineprotocol import Line, lines_of, parse_line
from tests.deploy.support import FakeWrites, assert_in_schema, central, offline_writer
from tests.services.conftest import NIGHT

LABEL = date(2026, 11, 22)
"""The night starting 22:00 CET on 22 Nov = 21:00 UTC."""
INFLUX_ENV = ("URL", "TOKEN", "ORG", "BUCKET")


def personal_names(site: Site) -> list[str]:
    """Every resident name the site file holds: none may reach the time series."""
    return [r.name for r in site.residents if r.name]


# --- alarm changes -------------------------------------------------------------------------


def _fall_acked_resolved(engine: RulesEngine, world: Any) -> str:
    service, clock, make_event = world
    (change,) = engine.handle(make_event("fall-a1", "fall", NIGHT, confidence=0.9))
    clock.advance(40)
    service.acknowledge(change.alarm_id, "anna")
    clock.advance(300)
    service.resolve(change.alarm_id, "anna", "assisted", "helped back to bed")
    return str(change.alarm_id)


def test_alarm_change_points_follow_the_schema_and_carry_no_names(
    alarm_world: tuple[RulesEngine, Any], test_site: Site
) -> None:
    engine, world = alarm_world
    alarm_id = _fall_acked_resolved(engine, world)
    envelopes = world[0].changes_since(0)
    lines = lines_of([envelope_point(e) for e in envelopes])
    for line in lines:
        assert_in_schema(line)
    assert [(ln.tags["change"], ln.tags["reason"], ln.tags["state"]) for ln in lines] == [
        ("new", "raised", "raised"),
        ("update", "acknowledged", "acknowledged"),
        ("end", "resolved", "resolved"),
    ]
    raised, acked, resolved = lines
    assert raised.tags["resident_id"] == "r-001"
    assert (raised.tags["rule"], raised.tags["kind"], raised.tags["priority"]) == (
        "fall",
        "fall",
        "high",
    )
    assert raised.fields[s.ALARM_CHANGE_FIELD_ALARM_ID] == alarm_id
    assert raised.fields[s.ALARM_CHANGE_FIELD_ACTIVE] is True
    assert acked.fields[s.ALARM_CHANGE_FIELD_ACKNOWLEDGE_S] == 40.0
    assert resolved.tags["outcome"] == "assisted"
    assert resolved.fields[s.ALARM_CHANGE_FIELD_RESPONSE_S] == 300.0
    assert resolved.fields[s.ALARM_CHANGE_FIELD_OPEN_S] == 340.0
    assert resolved.fields[s.ALARM_CHANGE_FIELD_ACTIVE] is False
    assert [ln.fields[s.ALARM_CHANGE_FIELD_CHANGE_ID] for ln in lines] == [
        e["change_id"] for e in envelopes
    ]
    stamp = (NIGHT + timedelta(seconds=340) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
        microseconds=1
    )
    assert resolved.time == stamp  # the change's own time, in µs
    text = "\n".join(p.to_line_protocol() for p in map(envelope_point, envelopes))
    for secret in ("anna", "helped back to bed", *personal_names(test_site)):
        assert secret not in text


def test_a_bare_alarm_dict_implies_its_change() -> None:
    alarm = {
        "alarm_id": "a-1",
        "site": "testhjem",
        "rule": "diaper_change",
        "kind": "diaper",
        "priority": "medium",
        "state": "resolved",
        "resident_id": "r-002",
        "room": None,
        "device_id": "diaper-r002",
        "raised_at": "2026-11-22T23:00:00.000000Z",
        "acknowledged_at": None,
        "acknowledged_by": None,
        "escalated_at": None,
        "resolved_at": "2026-11-22T23:30:00.000000Z",
        "resolved_by": "sensor",
        "outcome": None,
        "trigger_event_id": "e-1",
        "count": 3,
    }
    line = parse_line(alarm_change_point(alarm).to_line_protocol())
    assert_in_schema(line)
    assert (line.tags["change"], line.tags["reason"]) == ("end", "sensor_resolved")
    assert "outcome" not in line.tags
    assert "room" not in line.tags
    assert line.fields[s.ALARM_CHANGE_FIELD_COUNT] == 3
    assert line.fields[s.ALARM_CHANGE_FIELD_OPEN_S] == 1800.0
    assert s.ALARM_CHANGE_FIELD_ACKNOWLEDGE_S not in line.fields
    raised = parse_line(
        alarm_change_point({**alarm, "state": "raised", "count": 1}).to_line_protocol()
    )
    assert (raised.tags["change"], raised.tags["reason"]) == ("new", "raised")
    with pytest.raises(ValueError, match="raised_at"):
        alarm_change_point({**alarm, "raised_at": None})


def test_durable_writer_reads_the_change_log_and_loses_nothing_while_influx_is_away(
    alarm_world: tuple[RulesEngine, Any],
) -> None:
    engine, world = alarm_world
    service = world[0]
    _fall_acked_resolved(engine, world)
    fake = FakeWrites(failures=1)
    writer = AlarmChangeWriter(offline_writer(fake), log=service, background=False)
    with pytest.raises(TimeseriesUnavailableError):
        writer.sync()
    assert service.store.cursor("timeseries") == 0  # nothing taken, nothing skipped
    assert writer.sync() == 3
    assert service.store.cursor("timeseries") == service.store.last_change_seq()
    assert writer.sync() == 0  # the cursor moved: nothing is written twice
    assert [ln.tags["reason"] for ln in fake.lines()] == ["raised", "acknowledged", "resolved"]


def test_subscribed_writer_writes_changes_from_its_own_thread(
    alarm_world: tuple[RulesEngine, Any],
) -> None:
    engine, world = alarm_world
    service, _clock, make_event = world
    fake = FakeWrites()
    writer = AlarmChangeWriter(offline_writer(fake), log=service)
    unsubscribe = service.subscribe(writer)
    (change,) = engine.handle(make_event("fall-b1", "fall", NIGHT, confidence=0.9))
    service.wake()  # the rules service does this after each commit
    service.acknowledge(change.alarm_id, "bo")
    deadline = time.monotonic() + 5
    while len(fake.points) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    unsubscribe()
    writer.close()
    assert [ln.tags["reason"] for ln in fake.lines()] == ["raised", "acknowledged"]


def test_memory_writer_buffers_envelopes_until_influx_takes_them(
    alarm_world: tuple[RulesEngine, Any],
) -> None:
    engine, world = alarm_world
    _fall_acked_resolved(engine, world)
    fake = FakeWrites(failures=1)
    ts = offline_writer(fake)
    writer = AlarmChangeWriter(ts, background=False)
    envelopes = world[0].changes_since(0)
    with pytest.raises(TimeseriesUnavailableError):
        writer(envelopes[0])
    assert ts.pending() == 1
    writer(envelopes[1])
    writer.write(envelopes[2]["alarm"])
    assert ts.pending() == 0
    assert [ln.tags["state"] for ln in fake.lines()] == ["raised", "acknowledged", "resolved"]


def test_buffer_is_bounded() -> None:
    fake = FakeWrites(failures=10)
    ts = TimeseriesWriter(
        "http://127.0.0.1:9", "t", "o", "b", retry_delays_s=(), write_api=fake, max_pending=2
    )
    alarm = {
        "alarm_id": "a",
        "site": "x",
        "rule": "fall",
        "kind": "fall",
        "priority": "high",
        "state": "raised",
        "raised_at": "2026-11-22T23:00:00Z",
    }
    ts.add([alarm_change_point(alarm, change_id=i) for i in range(3)])
    assert (ts.pending(), ts.dropped) == (2, 1)
    ts.close()  # a failing last flush is logged, not raised


# --- freed hours ---------------------------------------------------------------------------


def heartbeats(index: SiteIndex, first: date, last: date) -> dict[str, Any]:
    """Every device beating every minute through the nights."""
    lo = index.night_bounds(first)[0].timestamp() - 120
    hi = index.night_bounds(last)[1].timestamp() + 120
    return {d: np.arange(lo, hi, 60.0) for d in index.bindings}


def report(index: SiteIndex, first: date, last: date, ward: str | None = None) -> dict[str, Any]:
    """A real report (docs/freed-hours.md) over full coverage and one fall alarm, as the API gives
    it."""
    fall = AlarmRecord(
        "a1",
        "fall",
        "r-001",
        "a-1",
        "fall-a1",
        NIGHT,
        NIGHT + timedelta(minutes=2),
        "anna",
        NIGHT + timedelta(minutes=12),
        "anna",
        "assisted",
    )
    data = FreedHoursInput(heartbeats(index, first, last), [fall])
    return json_safe_report(freed_hours_report(index, first, last, data, ward))


def test_one_night_report_makes_a_site_point_and_one_per_ward(
    test_index: SiteIndex, test_site: Site
) -> None:
    r = report(test_index, LABEL, LABEL)
    points = freed_hours_points(r)
    lines = lines_of(points)
    for line in lines:
        assert_in_schema(line)
        assert line.time == int(datetime(2026, 11, 22, 21, tzinfo=UTC).timestamp()) * 1_000_000
    site_line, *ward_lines = lines
    assert site_line.tags == {"site": "testhjem", "scope": "site"}
    assert site_line.fields[s.FREED_HOURS_FIELD_TOTAL] == pytest.approx(r["freed_hours_total"])
    assert site_line.fields[s.FREED_HOURS_FIELD_NIGHT_HOURS] == 9.0
    assert site_line.fields[s.FREED_HOURS_FIELD_RESIDENT_NIGHTS] == r["resident_nights"]
    assert site_line.fields[s.FREED_HOURS_FIELD_ENTRIES_AVOIDED] == pytest.approx(
        r["room_entries_avoided"]
    )
    assert {ln.tags["ward"]: ln.fields[s.FREED_HOURS_FIELD_TOTAL] for ln in ward_lines} == {
        w: pytest.approx(v["freed_hours_total"]) for w, v in r["by_ward"].items()
    }
    assert all(ln.tags["scope"] == "ward" for ln in ward_lines)
    text = "\n".join(p.to_line_protocol() for p in points)
    for name in personal_names(test_site):
        assert name not in text


def test_longer_reports_give_night_points_and_ward_reports_ward_points(
    test_index: SiteIndex,
) -> None:
    week = lines_of(freed_hours_points(report(test_index, LABEL, LABEL + timedelta(days=2))))
    assert [ln.tags["scope"] for ln in week] == ["site"] * 3
    assert len({ln.time for ln in week}) == 3
    ward_a = lines_of(freed_hours_points(report(test_index, LABEL, LABEL, ward="a")))
    assert [ln.tags for ln in ward_a] == [{"site": "testhjem", "scope": "ward", "ward": "a"}]


class _Source:
    """A ReportSource over fixed heartbeats and no alarms."""

    def __init__(self, index: SiteIndex) -> None:
        self.index = index

    def device_times(self, lo: datetime, hi: datetime) -> dict[str, Any]:
        return {d: np.arange(lo.timestamp(), hi.timestamp(), 60.0) for d in self.index.bindings}

    def alarms(self, lo: datetime, hi: datetime) -> list[AlarmRecord]:
        return []

    def events(self, lo: datetime, hi: datetime, types: Any) -> list[Any]:
        return []


def test_write_nights_and_the_nightly_job(test_index: SiteIndex) -> None:
    fake = FakeWrites()
    ts = offline_writer(fake)
    assert write_nights(ts, test_index, _Source(test_index), LABEL, LABEL + timedelta(days=1)) == 6
    # 06:59 local on 24 Nov: the night of the 23rd is not over, so the 22nd is the newest
    clock = FakeClock(datetime(2026, 11, 24, 5, 59, tzinfo=UTC))
    assert last_complete_night(test_index, clock.now()) == LABEL
    job = FreedHoursJob(ts, test_index, _Source(test_index), clock, nights=2)
    assert job.run_once() == 6
    nights = sorted({ln.time or 0 for ln in fake.lines()[6:]})
    assert [datetime.fromtimestamp(t / 1e6, UTC).date() for t in nights] == [
        date(2026, 11, 21),
        date(2026, 11, 22),
    ]
    failing = offline_writer(FakeWrites(failures=1))
    with pytest.raises(TimeseriesUnavailableError):
        failing.write_freed_hours(report(test_index, LABEL, LABEL))
    assert failing.pending() == 0  # a report is computed again, never queued


def test_writer_from_settings(tmp_path: Path) -> None:
    assert TimeseriesWriter.from_settings(Settings(db=tmp_path / "x.db")) is None
    with pytest.raises(ConfigError, match="CAREHUB_INFLUX_TOKEN"):
        TimeseriesWriter.from_settings(Settings(influx_url="http://127.0.0.1:9"))
    writer = TimeseriesWriter.from_settings(
        Settings(
            influx_url="http://127.0.0.1:9",
            influx_token="t",
            influx_org="o",
            influx_bucket="b",
        )
    )
    assert writer is not None
    assert (writer.org, writer.bucket) == ("o", "b")
    writer.close()


def gateway_lines() -> list[Line]:
    """What the gateway's InfluxDB store writes for a diaper event (level, battery, rssi and a
    string field), a fall (confidence), a dead letter, a device state and a seq state."""
    from carehub.events import CanonicalEvent, EventType
    from carehub.site import DeviceKind
    from gateway.store.base import DeadLetter, DeviceState, SeqState
    from gateway.store.influx import InfluxEventStore

    store = InfluxEventStore("http://127.0.0.1:9", "t", "o", "b", retry_delays_s=(), timeout_ms=300)
    fake = FakeWrites()
    store._write = fake  # type: ignore[assignment]
    event = CanonicalEvent(
        event_id="e1",
        site="testhjem",
        device_id="diaper-r001",
        kind=DeviceKind.DIAPER,
        type=EventType.SATURATION,
        ts=NIGHT,
        received_at=NIGHT,
        resident_id="r-001",
        room="a-1",
        data={"level": 55.0, "battery": 80, "rssi": -60, "code": "x"},
        seq=4,
    )
    store.add_event(event, "s:4", "d")
    fall = event.model_copy(
        update={
            "event_id": "e2",
            "device_id": "fall-a1",
            "kind": DeviceKind.FALL,
            "type": EventType.FALL,
            "data": {"confidence": 0.93},
            "seq": 7,
        }
    )
    store.add_event(fall, "s:7", "d")
    store.add_dead_letter(DeadLetter.of("testhjem", "t/x", b"{", "not_json", "bad", NIGHT))
    store.put_device_state(
        DeviceState(
            "fall-a1", "testhjem", DeviceKind.FALL, NIGHT, 90.0, -60, True, "message", NIGHT
        )
    )
    store.put_seq_state(SeqState("fall-a1", 41, 3, 1, "abc", NIGHT, {}))
    store.flush()
    store.close()
    return fake.lines()


def test_the_gateway_writes_what_the_schema_names() -> None:
    """The dashboards are checked against the schema; the gateway must write just that."""
    lines = gateway_lines()
    assert {ln.measurement for ln in lines} == set(s.MEASUREMENTS)
    for line in lines:
        assert_in_schema(line)


# --- against a real InfluxDB ---------------------------------------------------------------


def _influx() -> dict[str, str] | None:
    import os

    values = {k.lower(): os.environ.get(f"CAREHUB_TEST_INFLUX_{k}", "") for k in INFLUX_ENV}
    return values if all(values.values()) else None


NO_INFLUX = "InfluxDB tests need CAREHUB_TEST_INFLUX_URL, _TOKEN, _ORG and _BUCKET"
needs_influx = [pytest.mark.influx, pytest.mark.skipif(_influx() is None, reason=NO_INFLUX)]


@pytest.mark.influx
@pytest.mark.skipif(_influx() is None, reason=NO_INFLUX)
def test_points_round_trip_through_a_real_influxdb(
    alarm_world: tuple[RulesEngine, Any], test_index: SiteIndex
) -> None:
    cfg = _influx()
    assert cfg is not None
    site = f"ts-{uuid.uuid4().hex[:8]}"
    engine, world = alarm_world
    _fall_acked_resolved(engine, world)
    envelopes = [{**e, "alarm": {**e["alarm"], "site": site}} for e in world[0].changes_since(0)]
    ts = TimeseriesWriter(cfg["url"], cfg["token"], cfg["org"], cfg["bucket"])
    ts.write([envelope_point(e) for e in envelopes])
    assert ts.write_freed_hours({**report(test_index, LABEL, LABEL), "site": site}) == 3
    query = ts._client.query_api()
    flux = (
        f'from(bucket: "{cfg["bucket"]}") |> range(start: 2026-11-01T00:00:00Z,'
        " stop: 2026-12-01T00:00:00Z)"
        f' |> filter(fn: (r) => r.site == "{site}")'
        ' |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")'
        ' |> group(columns: ["_measurement"])'
    )
    rows = [dict(rec.values) for t in query.query(flux, org=cfg["org"]) for rec in t.records]
    changes = [r for r in rows if r["_measurement"] == s.ALARM_CHANGE_MEASUREMENT]
    nights = [r for r in rows if r["_measurement"] == s.FREED_HOURS_MEASUREMENT]
    assert sorted(r["reason"] for r in changes) == ["acknowledged", "raised", "resolved"]
    assert {r.get("ward") for r in nights} == {None, "a", "b"}
    assert all(r[s.FREED_HOURS_FIELD_TOTAL] is not None for r in nights)
    ts.close()


# --- the central ingest ---------------------------------------------------------------------


def bridged_messages(world: Any, engine: RulesEngine) -> list[tuple[str, bytes]]:
    """What a site's bridge forwards: an event, a heartbeat, an alarm, a dead letter."""
    from gateway.store.base import DeadLetter

    _service, _clock, make_event = world
    fall = make_event("fall-a1", "fall", NIGHT, confidence=0.9)
    beat = make_event("diaper-r001", "heartbeat", NIGHT, battery=14, rssi=-71)
    (change,) = engine.handle(fall)
    letter = DeadLetter.of("testhjem", "carehub/testhjem/devices/x/up", b"{", "not_json", "", NIGHT)
    return [
        (fall.topic("carehub"), fall.model_dump_json().encode()),
        (beat.topic("carehub"), beat.model_dump_json().encode()),
        (f"carehub/testhjem/alarms/{change.alarm_id}", json.dumps(change.alarm).encode()),
        ("carehub/testhjem/deadletter", json.dumps(letter.to_json()).encode()),
        (f"carehub/testhjem/alarms/{change.alarm_id}", b""),  # a retained alarm cleared
    ]


def test_central_ingest_writes_what_a_sites_own_hub_writes(
    alarm_world: tuple[RulesEngine, Any],
) -> None:
    engine, world = alarm_world
    fake = FakeWrites()
    ingest = central(fake)
    assert ingest.subscriptions() == [
        "carehub/+/events/#",
        "carehub/+/alarms/#",
        "carehub/+/deadletter",
    ]
    for topic, payload in bridged_messages(world, engine):
        assert ingest.handle(topic, payload), topic
    ingest.flush()
    lines = fake.lines()
    for line in lines:
        assert_in_schema(line)
    by = {m: [ln for ln in lines if ln.measurement == m] for m in s.ALL_MEASUREMENTS}
    assert sorted(ln.tags["type"] for ln in by[s.EVENT_MEASUREMENT]) == ["fall", "heartbeat"]
    assert [ln.tags["reason"] for ln in by[s.ALARM_CHANGE_MEASUREMENT]] == ["raised"]
    assert [ln.tags["reason"] for ln in by[s.DEAD_LETTER_MEASUREMENT]] == ["not_json"]
    states = {ln.tags["device_id"]: ln.fields for ln in by[s.DEVICE_STATE_MEASUREMENT]}
    assert states["diaper-r001"]["battery"] == 14.0
    assert "online" not in states["fall-a1"]  # known at the care home only
    assert by[s.DEVICE_SEQ_MEASUREMENT] == []


def test_central_ingest_drops_what_it_cannot_use(alarm_world: tuple[RulesEngine, Any]) -> None:
    engine, world = alarm_world
    fake = FakeWrites()
    ingest = central(fake)
    messages = dict(bridged_messages(world, engine)[:1])
    ((topic, payload),) = messages.items()
    assert not ingest.handle(topic.replace("testhjem", "other"), payload)  # posing as a site
    assert not ingest.handle(topic, b"{not json")
    assert not ingest.handle("carehub/testhjem/devices/fall-a1/up", b"{}")
    assert not ingest.handle("carehub/testhjem/deadletter", b'{"reason": "x"}')
    assert ingest.refused == 4
    ingest.flush()
    assert fake.points == []
