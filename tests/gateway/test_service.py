"""The gateway against a real Mosquitto: exactly-once storage through crashes, restarts,
redeliveries and bad input; shared subscriptions; MQTT 3.1.1."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from app.broker import LocalBroker, MosquittoBroker
from carehub.clock import FakeClock
from carehub.mqtt import Protocol
from carehub.settings import MqttTarget
from carehub.site import SiteIndex
from carehub.topics import TopicMap
from gateway.pipeline import Ingestor
from gateway.service import GatewayConfig, GatewayService
from gateway.store.sqlite import SqliteEventStore
from tests.gateway.conftest import SITE, T0, native
from tests.support.mqttprobe import MqttProbe

pytestmark = pytest.mark.broker
_ids = itertools.count()


def wait_until(check: Callable[[], bool], timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.02)


def seqs_stored(db: Path, device_id: str = "fall-a1") -> list[int]:
    """Every stored seq of a device, read through a fresh connection (committed rows only)."""
    reader = SqliteEventStore(db)
    try:
        events = reader.query_events(SITE, T0 - timedelta(days=1), T0 + timedelta(days=1))
        return sorted(e.seq for e in events if e.device_id == device_id and e.seq is not None)
    finally:
        reader.close()


class Hub:
    """Starts gateways on one SQLite file; stops whatever is left at the end."""

    def __init__(self, index: SiteIndex, db: Path, host: str, port: int) -> None:
        self.index, self.db = index, db
        self.target = MqttTarget(host, port)
        self.running: list[GatewayService] = []

    def start(
        self, service_cls: type[GatewayService] = GatewayService, **kw: Any
    ) -> GatewayService:
        count_gaps = kw.pop("count_gaps", True)
        prefix = kw.pop("prefix", "carehub")
        clock = kw.pop("clock", None)
        config = GatewayConfig(target=self.target, prefix=prefix, **kw)
        ingestor = Ingestor(self.index, SqliteEventStore(self.db), prefix, count_gaps=count_gaps)
        service = service_cls(ingestor, config, clock=clock)
        service.start()
        assert service.wait_ready(10), "gateway did not connect and subscribe"
        self.running.append(service)
        return service

    def crash(self, service: GatewayService) -> None:
        service.abort()
        store = service.ingestor.store
        assert isinstance(store, SqliteEventStore)
        store.abandon()
        self.running.remove(service)

    def stop(self, service: GatewayService) -> None:
        service.stop()
        service.ingestor.close()
        self.running.remove(service)

    def close(self) -> None:
        for service in list(self.running):
            self.stop(service)


@pytest.fixture
def hub_on_mosquitto(
    test_index: SiteIndex, tmp_path: Path, mosquitto: MosquittoBroker
) -> Iterator[Hub]:
    hub = Hub(test_index, tmp_path / "hub.db", mosquitto.host, mosquitto.port)
    yield hub
    hub.close()


@pytest.fixture
def own_probe(mosquitto: MosquittoBroker) -> Iterator[MqttProbe]:
    p = MqttProbe(mosquitto.host, mosquitto.port)
    yield p
    p.close()


def publish_many(probe: MqttProbe, topic: str, seqs: range, pause_every: int = 0) -> None:
    for seq in seqs:
        probe.publish(topic, native(seq, "fall_cleared", T0 + timedelta(seconds=seq)))


class NoAckGateway(GatewayService):
    """Commits but never acknowledges: every message comes back after a crash."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.subscriber.acknowledge = lambda *_a: None  # type: ignore[method-assign]


@pytest.mark.mosquitto_only
def test_committed_but_unacknowledged_messages_are_not_stored_twice(
    hub_on_mosquitto: Hub, own_probe: MqttProbe
) -> None:
    hub = hub_on_mosquitto
    first = hub.start(NoAckGateway, client_id="gw-noack")
    publish_many(own_probe, f"carehub/{SITE}/devices/fall-a1/up", range(50))
    wait_until(lambda: len(seqs_stored(hub.db)) == 50, what="50 stored")
    hub.crash(first)
    second = hub.start(client_id="gw-noack")  # same session: the broker redelivers all 50
    wait_until(
        lambda: second.metrics().get("carehub_gateway_duplicates_total", 0) >= 50,
        what="50 redeliveries recognised",
    )
    assert seqs_stored(hub.db) == list(range(50))


@pytest.mark.mosquitto_only
def test_every_message_stored_once_across_a_gateway_crash(
    hub_on_mosquitto: Hub, own_probe: MqttProbe
) -> None:
    hub = hub_on_mosquitto
    # a long commit interval leaves messages ingested but neither committed nor acknowledged
    gw = hub.start(client_id="gw-crash", commit_interval_s=0.3, commit_batch=10_000)
    topic = f"carehub/{SITE}/devices/fall-a1/up"
    publisher = threading.Thread(target=publish_many, args=(own_probe, topic, range(400)))
    publisher.start()
    wait_until(lambda: len(seqs_stored(hub.db)) >= 50, what="some stored")
    hub.crash(gw)
    publisher.join()
    hub.start(client_id="gw-crash")
    # seq 400, published now, reaches the gateway after every redelivery of its session
    publish_many(own_probe, topic, range(400, 401))
    wait_until(lambda: 400 in seqs_stored(hub.db), timeout=20, what="the marker stored")
    assert seqs_stored(hub.db) == list(range(401))


@pytest.mark.mosquitto_only
def test_broker_restart_loses_and_duplicates_nothing(
    hub_on_mosquitto: Hub, mosquitto: MosquittoBroker, own_probe: MqttProbe
) -> None:
    hub = hub_on_mosquitto
    gw = hub.start(client_id="gw-restart")
    topic = f"carehub/{SITE}/devices/fall-a1/up"
    publish_many(own_probe, topic, range(30))
    wait_until(lambda: len(seqs_stored(hub.db)) == 30, what="first 30")
    mosquitto.restart()
    wait_until(own_probe.client.is_connected, timeout=15, what="probe reconnect")
    publish_many(own_probe, topic, range(30, 60))
    wait_until(lambda: len(seqs_stored(hub.db)) == 60, timeout=20, what="all 60 after restart")
    assert seqs_stored(hub.db) == list(range(60))
    assert gw.metrics()["carehub_gateway_mqtt_connects_total"] >= 2


@pytest.mark.mosquitto_only
def test_shared_subscription_splits_load_and_stores_each_event_once(
    hub_on_mosquitto: Hub, own_probe: MqttProbe
) -> None:
    hub = hub_on_mosquitto
    a = hub.start(client_id="gw-a", shared_group="gw", count_gaps=False)
    b = hub.start(client_id="gw-b", shared_group="gw", count_gaps=False)
    topic = f"carehub/{SITE}/devices/fall-a1/up"
    publish_many(own_probe, topic, range(200))
    wait_until(lambda: len(seqs_stored(hub.db)) >= 200, timeout=20, what="200 stored")

    def taken() -> tuple[float, float]:
        return tuple(  # type: ignore[return-value]
            g.metrics().get("carehub_gateway_messages_in_total", 0) for g in (a, b)
        )

    # Markers until each member has taken one: a member gets its messages in publish order,
    # so by then any second delivery of the 200 has reached it and would be counted.
    before, seq = taken(), 200
    while True:
        publish_many(own_probe, topic, range(seq, seq + 1))
        wait_until(lambda n=seq: n in seqs_stored(hub.db), what=f"marker {seq} stored")
        now = taken()
        if now[0] > before[0] and now[1] > before[1]:
            break
        assert seq < 250, "one member took no marker"
        seq += 1
    assert seqs_stored(hub.db) == list(range(seq + 1))
    got_a, got_b = taken()
    assert got_a > 0
    assert got_b > 0
    assert got_a + got_b == seq + 1
    assert a.metrics().get("carehub_gateway_seq_gaps_total", 0) == 0


def forget_retained_vendor_status(
    broker: LocalBroker, index: SiteIndex, protocol: Protocol
) -> None:
    """Vendor topics have no prefix: on the session's shared broker the simulator's tests
    leave retained availability of the test site's vendor devices, which a new gateway
    would count as statuses and devices of its own. Clear them (an empty retained message)."""
    probe = MqttProbe(broker.host, broker.port, protocol=protocol)
    try:
        for topic in TopicMap("unused", index).subscriptions():
            for m in probe.retained(topic):
                probe.publish(m.topic, b"", retain=True)
    finally:
        probe.close()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_bad_input_is_dead_lettered_while_valid_traffic_flows(
    broker: LocalBroker,
    test_index: SiteIndex,
    tmp_path: Path,
    mqtt_protocol: Protocol,
    protocol: Protocol,
) -> None:
    if mqtt_protocol == "3.1.1" and protocol == "5":
        pytest.skip("the embedded broker speaks MQTT 3.1.1 only")
    prefix = f"t{uuid.uuid4().hex[:8]}"
    forget_retained_vendor_status(broker, test_index, mqtt_protocol)
    hub = Hub(test_index, tmp_path / "hub.db", broker.host, broker.port)
    probe = MqttProbe(broker.host, broker.port, protocol=mqtt_protocol)
    try:
        probe.subscribe(f"{prefix}/{SITE}/events/#")
        probe.subscribe(f"{prefix}/{SITE}/deadletter")
        gw = hub.start(client_id=f"gw-{next(_ids)}-{prefix}", prefix=prefix, protocol=protocol)
        up = f"{prefix}/{SITE}/devices"
        probe.publish(f"{up}/fall-a1/up", b"\xff\x00 not json")
        probe.publish(f"{up}/fall-a1/up", native(1, "fall", confidence=0.95))
        probe.publish(f"{up}/fall-a1/up", native(1, "fall", confidence=0.95))  # duplicate
        probe.publish(f"{up}/nobody/up", native(1, "fall", confidence=0.95))
        probe.publish(f"{up}/fall-a1/up", native(2, "fall", confidence=7))
        probe.publish("zigbee2mqtt/bed-b1-window", b'{"water_leak": true, "battery": 50}')
        probe.publish(f"{up}/fall-a1/status", b"offline", retain=False)
        probe.publish(f"{up}/fall-a1/up", native(3, "fall_cleared"))
        events = probe.wait_for(f"{prefix}/{SITE}/events/#", count=3)
        letters = probe.wait_for(f"{prefix}/{SITE}/deadletter", count=3)
        # falls take the urgent lane ahead of the diaper; one device's messages keep their order
        assert sorted(m.topic for m in events) == [
            f"{prefix}/{SITE}/events/diaper/diaper-r003",
            f"{prefix}/{SITE}/events/fall/fall-a1",
            f"{prefix}/{SITE}/events/fall/fall-a1",
        ]
        falls = [m.json() for m in events if "/fall/" in m.topic]
        assert [f["type"] for f in falls] == ["fall", "fall_cleared"]
        first = falls[0]
        assert (first["type"], first["seq"], first["resident_id"]) == ("fall", 1, "r-001")
        assert first["data"] == {"confidence": 0.95}
        reasons = {m.json()["reason"]: m for m in letters}
        assert set(reasons) == {"not_json", "unknown_device", "impossible_value"}
        binary = reasons["not_json"].json()
        assert binary["encoding"] == "base64"
        assert binary["topic"] == f"{up}/fall-a1/up"
        wait_until(lambda: gw.metrics().get("carehub_gateway_duplicates_total") == 1)
        # the status is routine: the urgent fall_cleared behind it may be committed first
        offline = 'carehub_gateway_status_total{status="offline"}'
        wait_until(lambda: offline in gw.metrics(), what="the offline status counted")
        metrics = gw.metrics()
        assert metrics['carehub_gateway_rejected_total{reason="not_json"}'] == 1
        assert metrics[offline] == 1
        # the fall_cleared (seq 3) came after the refused seq 2, and its event is out
        wait_until(lambda: seqs_stored(hub.db) == [1, 3], what="seqs 1 and 3 stored")
        hub.close()
        reader = SqliteEventStore(hub.db)
        assert len(reader.dead_letters(10)) == 3
        reader.close()
    finally:
        hub.close()
        probe.close()


def test_received_at_and_silence_follow_the_injected_clock(
    broker: LocalBroker, test_index: SiteIndex, tmp_path: Path, mqtt_protocol: Protocol
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    forget_retained_vendor_status(broker, test_index, mqtt_protocol)
    clock = FakeClock(T0)
    hub = Hub(test_index, tmp_path / "hub.db", broker.host, broker.port)
    probe = MqttProbe(broker.host, broker.port, protocol=mqtt_protocol)
    try:
        gw = hub.start(
            client_id=f"gw-clock-{prefix}", prefix=prefix, protocol=mqtt_protocol, clock=clock
        )
        probe.publish(f"{prefix}/{SITE}/devices/fall-a1/up", native(1, "heartbeat", battery=50))
        wait_until(lambda: any(s.online for s in gw.ingestor.device_states()), what="online")
        (state,) = gw.ingestor.device_states()
        assert state.last_seen == T0
        clock.advance(timedelta(seconds=179))
        assert gw.check_silence() == []  # 3 heartbeats of 60 s not yet missed
        clock.advance(timedelta(seconds=2))
        assert gw.check_silence() == ["fall-a1"]
        assert gw.ingestor.device_states()[0].online is False
    finally:
        hub.close()
        probe.close()


def test_callback_errors_are_logged_not_raised(
    test_index: SiteIndex, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ingestor = Ingestor(test_index, SqliteEventStore(tmp_path / "x.db"))

    def broken(*_a: Any, **_k: Any) -> Any:
        raise RuntimeError("boom")

    ingestor.ingest = broken  # type: ignore[method-assign]
    service = GatewayService(ingestor, GatewayConfig(MqttTarget("127.0.0.1", 1)))
    msg = paho.MQTTMessage(mid=1, topic=b"carehub/testhjem/devices/fall-a1/up")
    msg.payload = b"{}"
    service.subscriber._on_message(None, None, msg)  # type: ignore[arg-type]
    service.subscriber.commit_pending()  # one broken message stops nothing
    assert "could not be handled" in caplog.text
    assert service.metrics()["carehub_gateway_ingest_errors_total"] == 1
    ingestor.close()


def test_shared_subscription_filters_and_vendor_topics(
    test_index: SiteIndex, tmp_path: Path
) -> None:
    ingestor = Ingestor(test_index, SqliteEventStore(tmp_path / "x.db"))
    config = GatewayConfig(MqttTarget("127.0.0.1", 1), shared_group="gw")
    filters = GatewayService(ingestor, config).filters()
    assert filters == [
        f"$share/gw/carehub/{SITE}/devices/+/up",
        f"$share/gw/carehub/{SITE}/devices/+/status",
        "$share/gw/zigbee2mqtt/bed-b1-window",
        "$share/gw/zigbee2mqtt/bed-b1-window/availability",
        "$share/gw/zigbee2mqtt/bedmat-b1",
        "$share/gw/zigbee2mqtt/bedmat-b1/availability",
        f"$share/gw/carehub/{SITE}/hub/api/selftest",  # the admin's self-test (docs/security.md)
    ]
    with pytest.raises(ValueError, match="MQTT 5"):
        GatewayService(
            ingestor, GatewayConfig(MqttTarget("h", 1), protocol="3.1.1", shared_group="g")
        )
    ingestor.close()
