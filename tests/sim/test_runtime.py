"""The simulated devices on a real Mosquitto: what a subscriber receives is the seeded stream,
message for message; a broker that goes away and comes back loses no QoS 1 message; devices
announce themselves, leave a will, log in with their own credentials and reach the webhook."""

from __future__ import annotations

import json
import logging
import subprocess
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from app.broker import LocalBroker, MosquittoBroker, find_mosquitto, free_port, reachable
from app.brokerconfig import write_broker_config
from carehub.clock import FakeClock, ScaledClock
from carehub.mqtt import Protocol
from carehub.settings import MqttTarget
from carehub.site import Site, SiteIndex
from firmware_sim.faults import Faults
from firmware_sim.runtime import Simulator
from gateway.pipeline import Ingestor
from gateway.store.sqlite import SqliteEventStore
from gateway.webhook import webhook_router
from tests.sim.support import NIGHT
from tests.support.mqttprobe import MqttProbe, Received
from tests.support.server import ServerThread

pytestmark = pytest.mark.broker

UP = "carehub/testhjem/devices/+/up"
ZIGBEE = "zigbee2mqtt/bed-b1-window"
BED_MAT = "zigbee2mqtt/bedmat-b1"
VENDOR_DEVICES = {ZIGBEE: "diaper-r003", BED_MAT: "bed-r003"}


def received_by_topic(probe: MqttProbe) -> dict[str, list[bytes]]:
    got: dict[str, list[bytes]] = defaultdict(list)
    for m in probe.messages:
        got[m.topic].append(m.payload)
    return got


def wait_for_count(probe: MqttProbe, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while len(probe.messages) < count:
        assert time.monotonic() < deadline, (len(probe.messages), count)
        time.sleep(0.05)


def run_night(
    index: SiteIndex, broker: LocalBroker, protocol: Protocol, seed: int
) -> tuple[dict[str, list[bytes]], dict[str, list[bytes]]]:
    """One seeded night at full speed: (what a subscriber got, the pure stream) per topic."""
    start, until = index.night_bounds(NIGHT)
    probe = MqttProbe(broker.host, broker.port, protocol=protocol)
    probe.subscribe(UP)
    probe.subscribe(ZIGBEE)
    probe.subscribe(BED_MAT)
    sim = Simulator(
        index.site,
        MqttTarget(host=broker.host, port=broker.port),
        clock=FakeClock(start),
        seed=seed,
        start=start,
        until=until,
        fastest=True,
        protocol=protocol,
    )
    expected: dict[str, list[bytes]] = defaultdict(list)
    for e in sim.emissions():
        if e.channel == "mqtt" and e.what != "status":
            expected[e.topic].append(e.payload)
    sim.start()
    try:
        assert sim.done.wait(60)
        wait_for_count(probe, sum(len(v) for v in expected.values()))
    finally:
        sim.stop()
        probe.close()
    return received_by_topic(probe), expected


def test_a_seeded_night_arrives_the_same_twice(
    test_index: SiteIndex, broker: LocalBroker, mqtt_protocol: Protocol
) -> None:
    first, expected = run_night(test_index, broker, mqtt_protocol, seed=11)
    second, _ = run_night(test_index, broker, mqtt_protocol, seed=11)
    assert sum(len(v) for v in first.values()) > 4000
    assert first == expected  # per device, in order, byte for byte: the pure stream
    assert second == first


@pytest.mark.mosquitto_only
def test_broker_loss_and_return_loses_no_qos1_message(
    test_index: SiteIndex, mosquitto: MosquittoBroker
) -> None:
    start = test_index.night_bounds(NIGHT)[0]
    until = start + timedelta(minutes=30)
    probe = MqttProbe(mosquitto.host, mosquitto.port, persistent=True)  # misses nothing
    probe.subscribe(UP)
    sim = Simulator(
        test_index.site,
        MqttTarget(host=mosquitto.host, port=mosquitto.port),
        clock=ScaledClock(start, 600),  # 30 simulated minutes in 3 real seconds
        start=start,
        until=until,
    )
    expected: dict[str, set[int]] = defaultdict(set)
    for e in sim.emissions():
        if e.topic.endswith("/up") and e.channel == "mqtt" and b'"seq"' in e.payload:
            expected[e.device_id].add(json.loads(e.payload)["seq"])
    sim.start()
    assert sim.wait_connected()
    outage = threading.Event()

    def break_broker() -> None:
        time.sleep(0.8)
        mosquitto.stop()  # SIGTERM: Mosquitto saves the subscriber's queued session
        time.sleep(1.2)
        mosquitto.start()
        outage.set()

    breaker = threading.Thread(target=break_broker)
    breaker.start()
    try:
        queued_seen = 0
        while not outage.is_set():
            queued_seen = max(queued_seen, sim.stats().queued)
            time.sleep(0.05)
        breaker.join()
        assert sim.done.wait(30)
        got: dict[str, set[int]] = defaultdict(set)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            got.clear()
            for m in probe.messages:
                body = m.json()
                if isinstance(body, dict) and "seq" in body:
                    got[m.topic.split("/")[-2]].add(body["seq"])
            if all(expected[d] <= got[d] for d in expected):
                break
            time.sleep(0.2)
        assert sim.wait_connected(15)  # every device found its way back
    finally:
        sim.stop()
        probe.close()
    missing = {d: sorted(expected[d] - got[d])[:5] for d in expected if expected[d] - got[d]}
    assert missing == {}
    assert queued_seen > 0  # messages did wait in the devices while the broker was away


def status_probe(broker: LocalBroker, protocol: Protocol) -> MqttProbe:
    probe = MqttProbe(broker.host, broker.port, protocol=protocol)
    probe.subscribe("carehub/testhjem/devices/+/status")
    probe.subscribe(f"{ZIGBEE}/availability")
    probe.subscribe(f"{BED_MAT}/availability")
    return probe


def online(m: Received) -> bool:
    return m.payload in (b"online", b'{"state":"online"}')


def offline(m: Received) -> bool:
    return m.payload in (b"offline", b'{"state":"offline"}')


def test_devices_announce_themselves_and_say_goodbye(
    test_index: SiteIndex, broker: LocalBroker, mqtt_protocol: Protocol
) -> None:
    probe = status_probe(broker, mqtt_protocol)
    start = test_index.night_bounds(NIGHT)[0]
    sim = Simulator(
        test_index.site,
        MqttTarget(host=broker.host, port=broker.port),
        clock=ScaledClock(start, 1),
        start=start,
        until=start + timedelta(seconds=5),
        protocol=mqtt_protocol,
    )
    sim.start()
    try:
        assert sim.wait_connected()
        up = probe.wait_for("#", online, count=12)
        assert sim.stats().online == sim.stats().devices == 12
        assert all(m.qos == 1 for m in up)
    finally:
        sim.stop()
    down = probe.wait_for("#", offline, count=10)
    assert {m.topic for m in down} == {m.topic for m in up}
    assert sim.stats().online == 0
    probe.close()
    late = status_probe(broker, mqtt_protocol)  # a newcomer learns the state from retained
    try:
        seen = late.wait_for("#", offline, count=10)
        assert all(m.retain for m in seen)
    finally:
        late.close()


@pytest.mark.mosquitto_only
def test_a_silent_device_leaves_its_will_and_flaky_ones_come_back(
    test_index: SiteIndex, mosquitto: MosquittoBroker
) -> None:
    probe = status_probe(mosquitto, "5")
    probe.subscribe(UP)
    start = test_index.night_bounds(NIGHT)[0]
    sim = Simulator(
        test_index.site,
        MqttTarget(host=mosquitto.host, port=mosquitto.port),
        clock=FakeClock(start),
        start=start,
        until=start + timedelta(hours=6),
        fastest=True,
        faults=Faults(silent=0.3, flaky=1.0),
        seed=5,
    )
    plan = list(sim.emissions())
    dead = {e.device_id for e in plan if e.what == "fault:silent"} - {"med-r004"}
    drops = [e for e in plan if e.what == "fault:disconnect"]
    assert dead
    assert drops
    sim.start()
    try:
        assert sim.done.wait(60)
        living = [d for d in sim.devices.values() if not d.dead]
        assert sim.wait_connected(20)  # the flaky ones reconnected
        assert sim.stats().online == len(living)
        assert sim.stats().queued == 0

        def down() -> set[str]:
            last: dict[str, bytes] = {}
            for m in list(probe.messages):
                if m.topic.endswith("/status"):
                    last[m.topic.split("/")[-2]] = m.payload
                elif m.topic.endswith("/availability"):
                    last[VENDOR_DEVICES[m.topic.removesuffix("/availability")]] = m.payload
            return {d for d, word in last.items() if word in (b"offline", b'{"state":"offline"}')}

        # the broker spoke the will of each dead device; the others are back online (the
        # last announcements may still be on their way to the probe: wait for them)
        deadline = time.monotonic() + 15
        while down() != dead and time.monotonic() < deadline:
            time.sleep(0.05)
        assert down() == dead
    finally:
        sim.stop()
        probe.close()
    wills = [m for m in probe.messages if offline(m)]
    assert len(wills) > len(dead)  # each flaky drop, too, made the broker say offline
    reconnects = [m for m in probe.messages if online(m)]
    # every living device announced itself, and again after a reconnect; a dead one may
    # have died before its first connection (a slow machine) and never said online
    assert len(reconnects) > len(living)


@pytest.fixture
def locked_broker(tmp_path: Path, test_site: Site) -> Iterator[tuple[int, dict[str, str]]]:
    """A Mosquitto configured by `carehub broker-config`: no anonymous clients, ACLs."""
    binary = find_mosquitto()
    if binary is None:
        pytest.skip("Mosquitto is not installed")
    port = free_port()
    files = write_broker_config(test_site, tmp_path / "broker", port=port)
    conf = files.config.read_text().replace(f"listener {port}", f"listener {port} 127.0.0.1")
    files.config.write_text(conf)  # the generated config already runs as this user
    proc = subprocess.Popen(
        [binary, "-c", str(files.config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 10
    while not reachable("127.0.0.1", port, 0.2):
        assert time.monotonic() < deadline, "mosquitto did not start"
        time.sleep(0.05)
    yield port, json.loads(files.credentials.read_text())
    proc.terminate()
    proc.wait(10)


@pytest.mark.mosquitto_only
def test_each_device_logs_in_with_its_own_credential(
    test_index: SiteIndex, locked_broker: tuple[int, dict[str, str]]
) -> None:
    port, creds = locked_broker
    gateway = MqttTarget("127.0.0.1", port, "carehub-gateway", creds["carehub-gateway"])
    from carehub.mqtt import ClientOptions, close, connect_blocking

    got: list[str] = []
    listener = connect_blocking(gateway, ClientOptions(client_id="carehub-gateway"))
    listener.on_message = lambda _c, _u, m: got.append(m.topic)
    listener.subscribe(UP, qos=1)
    listener.subscribe(ZIGBEE, qos=1)
    time.sleep(0.3)
    start = test_index.night_bounds(NIGHT)[0]
    sim = Simulator(
        test_index.site,
        MqttTarget("127.0.0.1", port),  # no shared login: each device its own
        clock=FakeClock(start),
        start=start,
        until=start + timedelta(minutes=10),
        fastest=True,
        credentials=creds,
    )
    sim.start()
    try:
        assert sim.wait_connected()
        assert sim.done.wait(30)
        deadline = time.monotonic() + 10
        while len({t.split("/")[-2] if "devices" in t else t for t in got}) < 8:
            assert time.monotonic() < deadline, sorted(set(got))
            time.sleep(0.05)
    finally:
        sim.stop()
        close(listener)


def test_vendor_cloud_devices_reach_the_webhook(
    test_index: SiteIndex, broker: LocalBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token = "webhook-test-token"
    ingestor = Ingestor(test_index, SqliteEventStore(tmp_path / "hub.db"))
    app = FastAPI()
    app.include_router(webhook_router(ingestor, SecretStr(token)))
    server = ServerThread(app).start()
    start = test_index.night_bounds(NIGHT)[0] - timedelta(minutes=10)
    target = MqttTarget(host=broker.host, port=broker.port)
    sim = Simulator(
        test_index.site,
        target,
        clock=FakeClock(start),
        start=start,
        until=start + timedelta(minutes=45),
        fastest=True,
        protocol="3.1.1",
        webhook_url=f"{server.url}/api/webhooks/medcloud",
        webhook_token=token,
    )
    posts = [e for e in sim.emissions() if e.channel == "webhook"]
    sim.start()
    try:
        assert sim.done.wait(60)
    finally:
        sim.stop()
        server.stop()
    try:
        assert sim.stats().webhook_posts == len(posts) > 40
        metrics = ingestor.metrics()
        assert metrics["carehub_gateway_messages_accepted_total"] == len(posts)
    finally:
        ingestor.close()
    # without a webhook the vendor-cloud devices are skipped, with one warning
    caplog.set_level(logging.WARNING, logger="firmware_sim.runtime")
    quiet = Simulator(
        test_index.site,
        target,
        clock=FakeClock(start),
        start=start,
        until=start + timedelta(minutes=5),
        fastest=True,
        protocol="3.1.1",
    )
    quiet.start()
    try:
        assert quiet.done.wait(30)
    finally:
        quiet.stop()
    warnings = [r for r in caplog.records if "webhook" in r.getMessage()]
    assert len(warnings) == 1
    assert quiet.stats().webhook_posts == 0


def test_paced_by_the_clock(
    test_index: SiteIndex, broker: LocalBroker, mqtt_protocol: Protocol
) -> None:
    start = test_index.night_bounds(NIGHT)[0]
    clock = ScaledClock(start, 1200)  # 20 simulated minutes a real second
    sim = Simulator(
        test_index.site,
        MqttTarget(host=broker.host, port=broker.port),
        clock=clock,
        start=start,
        until=start + timedelta(minutes=10),
        protocol=mqtt_protocol,
    )
    began = time.monotonic()
    sim.start()
    try:
        seen = []
        while not sim.done.is_set():
            stats = sim.stats()
            if stats.sim_time is not None:
                seen.append((stats.sim_time, clock.now()))
            time.sleep(0.02)
        elapsed = time.monotonic() - began
    finally:
        sim.stop()
    assert 0.4 < elapsed < 5  # half a real second for 10 simulated minutes, not at once
    assert all(sent <= now + timedelta(seconds=1) for sent, now in seen)  # never ahead
    assert sim.stats().sent > 50
