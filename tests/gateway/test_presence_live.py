"""Presence devices live (docs/devices.md): staff_in / staff_out from a native device and the
nurse-call button travel over a real broker through the gateway into the store, come out as
canonical events, and the before/after report (docs/freed-hours.md) pairs them into visits."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from app.broker import LocalBroker
from carehub.mqtt import Protocol
from carehub.settings import MqttTarget
from carehub.site import SiteIndex
from carehub.visits import Visit
from gateway.pipeline import Ingestor
from gateway.service import GatewayConfig, GatewayService
from gateway.store.sqlite import SqliteEventStore
from gateway.store.visits import VisitStore, visits_between_in
from services.reports.service import StoreReportSource, before_after
from tests.support.mqttprobe import MqttProbe

pytestmark = pytest.mark.broker
SITE = "testhjem"
NIGHT = date(2026, 11, 22)  # 22:00-07:00 CET = 21:00-06:00 UTC


def utc(day: int, hh: int, mm: int) -> datetime:
    return datetime(2026, 11, day, hh, mm, tzinfo=UTC)


@pytest.fixture
def gateway(
    test_index: SiteIndex, tmp_path: Path, broker: LocalBroker, mqtt_protocol: Protocol
) -> Iterator[tuple[GatewayService, str]]:
    prefix = f"p{uuid.uuid4().hex[:8]}"
    config = GatewayConfig(
        target=MqttTarget(broker.host, broker.port),
        prefix=prefix,
        client_id=f"gw-presence-{prefix}",
        protocol=mqtt_protocol,
    )
    service = GatewayService(
        Ingestor(test_index, SqliteEventStore(tmp_path / "hub.db"), prefix), config
    )
    service.start()
    assert service.wait_ready(10), "gateway did not connect and subscribe"
    yield service, prefix
    service.stop()
    service.ingestor.close()


def test_presence_presses_over_the_broker_become_visits(
    gateway: tuple[GatewayService, str],
    broker: LocalBroker,
    mqtt_protocol: Protocol,
    test_index: SiteIndex,
    tmp_path: Path,
) -> None:
    service, prefix = gateway
    probe = MqttProbe(broker.host, broker.port, protocol=mqtt_protocol)
    try:
        probe.subscribe(f"{prefix}/{SITE}/events/presence/#")

        def native(seq: int, at: datetime, etype: str, **extra: str) -> None:
            body = {
                "v": 1,
                "seq": seq,
                "ts": at.isoformat().replace("+00:00", "Z"),
                "type": etype,
                **extra,
            }
            probe.publish(f"{prefix}/{SITE}/devices/presence-a1/up", body)

        def button(n: int, at: datetime, ev: str) -> None:
            body = {
                "unit": "presence-b1",
                "n": n,
                "t": int(at.timestamp()),
                "ev": ev,
                "tag": "N-17",
            }
            probe.publish(f"{prefix}/{SITE}/devices/presence-b1/up", body)

        # a-1 (r-001): in 23:00, out 23:12 local -> 12 + 2 = 14 min
        native(1, utc(22, 22, 0), "staff_in", staff="badge-3")
        native(2, utc(22, 22, 12), "staff_out")
        native(2, utc(22, 22, 12), "staff_out")  # a redelivery: stored once
        # b-1 (r-003, r-004): in 02:00 and no PRESENCE_OFF -> closes after 60 min: 62 / 2 each
        button(7, utc(23, 1, 0), "PRESENCE_ON")
        button(8, utc(23, 5, 0), "ALIVE")
        deadline = time.monotonic() + 10
        while len(probe.messages) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        events = [json.loads(m.payload) for m in probe.messages]
        assert sorted((e["device_id"], e["type"]) for e in events) == [
            ("presence-a1", "staff_in"),
            ("presence-a1", "staff_out"),
            ("presence-b1", "heartbeat"),
            ("presence-b1", "staff_in"),
        ]
        by_type = {(e["device_id"], e["type"]): e for e in events}
        assert by_type[("presence-a1", "staff_in")]["resident_id"] == "r-001"
        assert by_type[("presence-a1", "staff_in")]["data"] == {"staff": "badge-3"}
        assert by_type[("presence-b1", "staff_in")]["resident_id"] is None  # a shared room
        assert by_type[("presence-b1", "staff_in")]["room"] == "b-1"
        assert service.metrics().get("carehub_gateway_duplicates_total") == 1
    finally:
        probe.close()
    db = tmp_path / "hub.db"
    visits = VisitStore(db, SITE)  # the before period: a round sheet, r-001 and r-003
    visits.add_many(
        [
            Visit(SITE, utc(1, 22, 0), utc(1, 22, 18), resident_id="r-001"),  # 20 min
            Visit(SITE, utc(1, 23, 0), utc(1, 23, 8), resident_id="r-003"),  # 10 min
        ]
    )
    visits.close()
    reader = SqliteEventStore(db)
    try:
        source = StoreReportSource(
            SITE, reader, lambda lo, hi: [], visits=visits_between_in(db, SITE)
        )
        report = before_after(test_index, source, (date(2026, 11, 1),) * 2, (NIGHT, NIGHT))
    finally:
        reader.close()
    after = report["after"]
    # r-001 14; r-003 and r-004 31 each; r-002's room a-2 has no presence device
    assert after["resident_nights"] == 3
    assert after["work_minutes_per_resident_night"] == pytest.approx((14 + 31 + 31) / 3)
    assert after["visits_per_resident_night"] == pytest.approx(2 / 3)
    assert report["before"]["work_minutes_per_resident_night"] == pytest.approx(15)
    assert report["difference"]["work_minutes_per_resident_night"]["mean"] == pytest.approx(
        15 - 76 / 3
    )
