"""The container's broker config and the multi-site bridge, exercised by real Mosquittos: an
edge broker configured as docker-compose.yml runs it, bridged to a central broker."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from app.broker import find_mosquitto, free_port
from app.brokerconfig import config_text, mosquitto_hash, write_broker_config
from carehub.site import Site, SiteIndex
from deploy.mosquitto import bridge
from tests.conftest import NO_MOSQUITTO
from tests.deploy.support import Broker, runnable

ROOT = Path(__file__).resolve().parents[2]
DEPLOY_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
CONTAINER = "/mosquitto/generated"
SITE = "testhjem"


def directives(text: str) -> dict[str, list[str]]:
    """mosquitto.conf → {keyword: [values]} (comments and blank lines dropped)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            out.setdefault(key, []).append(value)
    return out


def test_container_config_has_every_setting_broker_config_writes(tmp_path: Path) -> None:
    """The compose broker cannot use the generated mosquitto.conf (host paths), so it must
    not drift from it: same directives, same values, paths moved to the container's."""
    generated = directives(config_text(tmp_path, 1883).replace(str(tmp_path), CONTAINER))
    deployed = directives(DEPLOY_CONF.read_text())
    for key, values in generated.items():
        if key == "user":  # who runs the host's broker; the compose file sets the container's
            continue
        assert deployed.get(key) == values, key
    assert deployed["include_dir"] == ["/mosquitto/config/conf.d"]
    tls = directives((ROOT / "deploy/mosquitto/conf.d/tls.conf.example").read_text())
    generated_tls = directives(config_text(tmp_path, 1883, 8883).replace(str(tmp_path), CONTAINER))
    for key in ("cafile", "certfile", "keyfile", "tls_version"):
        assert tls[key] == generated_tls[key], key


def test_edge_bridge_forwards_only_events_alarms_and_dead_letters() -> None:
    text = bridge.edge_bridge_text(SITE, bridge.Remote.parse("central.example.dk"), "pw")
    conf = directives(text)
    assert conf["topic"] == [
        f"carehub/{SITE}/events/# out 1",
        f"carehub/{SITE}/alarms/# out 1",
        f"carehub/{SITE}/deadletter out 1",
    ]
    assert conf["address"] == ["central.example.dk:8883"]
    assert conf["bridge_cafile"] == ["/mosquitto/generated/bridge/ca.crt"]
    assert conf["bridge_insecure"] == ["false"]
    assert conf["cleansession"] == ["false"]
    assert "devices" not in text
    with pytest.raises(bridge.BridgeConfigError, match="lower-case"):
        bridge.edge_bridge_text("Sol Haven", bridge.Remote("h", 1), "pw")
    with pytest.raises(bridge.BridgeConfigError, match="host:port"):
        bridge.Remote.parse("central:tls")


def test_bridge_cli_takes_the_password_from_the_environment_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "conf.d" / "bridge.conf"
    args = ["edge", "--site", SITE, "--remote", "central:8883", "--out", str(out)]
    monkeypatch.delenv(bridge.PASSWORD_ENV, raising=False)
    assert bridge.main(args) == 2
    assert bridge.PASSWORD_ENV in capsys.readouterr().err
    monkeypatch.setenv(bridge.PASSWORD_ENV, "s3cret")
    assert bridge.main(args) == 0
    assert "remote_password s3cret" in out.read_text()
    assert out.stat().st_mode & 0o777 == 0o600
    central = tmp_path / "central"
    assert bridge.main(["central", "--sites", f"{SITE},b", "--out", str(central)]) == 0
    creds = json.loads((central / "credentials.json").read_text())
    assert set(creds) == {"carehub-central", f"bridge-{SITE}", "bridge-b"}
    assert bridge.main(["central", "--sites", f"{SITE},b", "--out", str(central)]) == 0
    assert json.loads((central / "credentials.json").read_text()) == creds  # kept
    conf = (central / "mosquitto.conf").read_text()
    assert f"password_file {CONTAINER}/passwd" in conf
    assert "listener 8883" in conf


# --- real brokers --------------------------------------------------------------------------


@dataclass
class Sites:
    """An edge broker (the compose config) bridged to a central one, and their logins."""

    edge: Broker
    central: Broker
    edge_creds: dict[str, str]
    central_creds: dict[str, str]


@pytest.fixture
def bridged(tmp_path: Path, test_site: Site) -> Iterator[Sites]:
    if find_mosquitto() is None:
        pytest.skip(NO_MOSQUITTO)
    central_dir = tmp_path / "central"
    central_creds = bridge.write_central(
        [SITE, "other"], central_dir, config_dir=str(central_dir.resolve()), tls_port=None
    )
    # an observer that may read everything, to see what did (not) arrive
    central_creds["observer"] = "observer-pw"
    with (central_dir / "passwd").open("a") as fh:
        fh.write(f"observer:{mosquitto_hash('observer-pw')}\n")
    with (central_dir / "acl").open("a") as fh:
        fh.write("\nuser observer\ntopic read #\n")
    central_port = free_port()
    conf = (central_dir / "mosquitto.conf").read_text()
    (central_dir / "mosquitto.conf").write_text(runnable(conf, central_port, 1883))

    # the edge: the container's config file, its paths moved to this test's folders
    gen = tmp_path / "edge" / "generated"
    files = write_broker_config(test_site, gen)
    conf_d = tmp_path / "edge" / "conf.d"
    conf_d.mkdir()
    edge_bridge = bridge.edge_bridge_text(
        SITE,
        bridge.Remote("127.0.0.1", central_port),
        central_creds[f"bridge-{SITE}"],
        cafile=None,
    ).replace("restart_timeout 5 60", "restart_timeout 1 1")
    (conf_d / "bridge.conf").write_text(edge_bridge)
    edge_port = free_port()
    edge_conf = tmp_path / "edge" / "mosquitto.conf"
    text = DEPLOY_CONF.read_text().replace(CONTAINER, str(gen.resolve()))
    text = text.replace("/mosquitto/config/conf.d", str(conf_d))
    edge_conf.write_text(runnable(text, edge_port, 1883))

    sites = Sites(
        Broker(edge_port, edge_conf),
        Broker(central_port, central_dir / "mosquitto.conf"),
        json.loads(files.credentials.read_text()),
        central_creds,
    )
    sites.central.start()
    sites.edge.start()
    yield sites
    sites.edge.stop()
    sites.central.stop()


class Client:
    """A paho client that records what it receives."""

    def __init__(self, port: int, user: str, password: str, *, persistent: bool = False) -> None:
        self.got: list[tuple[str, bytes, bool]] = []
        self.c = paho.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=paho.MQTTv5)
        self.c.username_pw_set(user, password)
        connected: list[Any] = []
        self.c.on_connect = lambda _c, _u, _f, rc, _p: connected.append(rc)
        self.c.on_message = lambda _c, _u, m: self.got.append((m.topic, bytes(m.payload), m.retain))
        session = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        session.SessionExpiryInterval = 3600 if persistent else 0
        self.c.connect("127.0.0.1", port, clean_start=not persistent, properties=session)
        self.c.loop_start()
        wait_for(lambda: bool(connected), f"{user} could not connect")
        assert not connected[0].is_failure, f"{user}: {connected[0]}"

    def subscribe(self, *topics: str) -> None:
        done: list[int] = []
        self.c.on_subscribe = lambda *_a: done.append(1)
        for topic in topics:
            self.c.subscribe(topic, qos=1)
        wait_for(lambda: len(done) == len(topics), "not subscribed")

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def topics(self) -> list[str]:
        return [t for t, _, _ in self.got]

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def wait_for(check: Any, why: str, timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, why
        time.sleep(0.02)


def _bridge_up(edge: Broker, creds: dict[str, str]) -> Client:
    """Wait for the bridge's own notification (retained "1") on the edge."""
    api = Client(edge.port, "carehub-api", creds["carehub-api"])
    api.subscribe(f"carehub/{SITE}/hub/bridge/state")
    # retained if it connected before we subscribed, live if after
    wait_for(lambda: api.got[-1:] and api.got[-1][1] == b"1", f"no bridge: {edge.log.read_text()}")
    return api


@pytest.mark.mosquitto_only
def test_edge_forwards_events_alarms_and_dead_letters_and_keeps_device_topics(
    bridged: Sites,
) -> None:
    api = _bridge_up(bridged.edge, bridged.edge_creds)
    observer = Client(bridged.central.port, "observer", "observer-pw")
    observer.subscribe("#")
    central = Client(
        bridged.central.port, "carehub-central", bridged.central_creds["carehub-central"]
    )
    central.subscribe("carehub/+/events/#", "carehub/+/alarms/#", "carehub/+/deadletter")
    gateway = Client(bridged.edge.port, "carehub-gateway", bridged.edge_creds["carehub-gateway"])
    rules = Client(bridged.edge.port, "carehub-rules", bridged.edge_creds["carehub-rules"])
    device = Client(bridged.edge.port, "fall-a1", bridged.edge_creds["fall-a1"])

    device.publish(f"carehub/{SITE}/devices/fall-a1/up", b'{"v":1}')
    device.publish(f"carehub/{SITE}/devices/fall-a1/status", b"online", retain=True)
    gateway.publish(f"carehub/{SITE}/events/fall/fall-a1", b'{"event_id":"e1"}')
    gateway.publish(f"carehub/{SITE}/deadletter", b'{"reason":"not_json"}')
    rules.publish(f"carehub/{SITE}/alarms/a-1", b'{"alarm_id":"a-1"}', retain=True)
    expected = [
        f"carehub/{SITE}/events/fall/fall-a1",
        f"carehub/{SITE}/deadletter",
        f"carehub/{SITE}/alarms/a-1",
    ]
    wait_for(lambda: len(central.got) >= 3, f"central got only {central.topics()}")
    assert central.topics() == expected
    # The device's messages reached the edge before the others (each publish waits for its
    # PUBACK) and the bridge forwards in order: once the observer has the last one, a
    # forwarded device message would be there too.
    wait_for(lambda: expected[-1] in observer.topics(), f"observer: {observer.topics()}")
    assert [t for t in observer.topics() if "/devices/" in t] == []
    assert [t for t in observer.topics() if t.startswith("carehub/")] == expected
    late = Client(bridged.central.port, "observer", "observer-pw")
    late.subscribe(f"carehub/{SITE}/alarms/#")  # an active alarm stays retained centrally
    wait_for(lambda: bool(late.got), "the alarm was not retained at the central broker")
    assert late.got[0][2] is True
    for c in (api, observer, central, gateway, rules, device, late):
        c.close()


@pytest.mark.mosquitto_only
def test_a_site_bridge_may_write_only_its_own_site(bridged: Sites) -> None:
    observer = Client(bridged.central.port, "observer", "observer-pw")
    observer.subscribe("#")
    pose = Client(bridged.central.port, f"bridge-{SITE}", bridged.central_creds[f"bridge-{SITE}"])
    pose.publish("carehub/other/events/fall/x", b"{}")
    pose.publish(f"carehub/{SITE}/devices/fall-a1/up", b"{}")
    pose.publish(f"carehub/{SITE}/events/fall/fall-a1", b"{}")
    # a last allowed one: the broker handles one client's messages in order, so once it is
    # here a refused one before it would have arrived too
    pose.publish(f"carehub/{SITE}/events/fall/fall-b1", b"{}")
    wait_for(lambda: len(observer.got) >= 2, "the allowed messages did not arrive")
    assert observer.topics() == [
        f"carehub/{SITE}/events/fall/fall-a1",
        f"carehub/{SITE}/events/fall/fall-b1",
    ]
    pose.close()
    observer.close()


@pytest.mark.mosquitto_only
def test_events_published_while_the_central_broker_is_down_arrive_later(
    bridged: Sites,
) -> None:
    _bridge_up(bridged.edge, bridged.edge_creds).close()
    # a persistent session at the central broker, as the central ingest keeps one
    observer = Client(bridged.central.port, "observer", "observer-pw", persistent=True)
    observer.subscribe(f"carehub/{SITE}/events/#")
    observer.close()
    bridged.central.stop()  # the line to the municipality is down
    gateway = Client(bridged.edge.port, "carehub-gateway", bridged.edge_creds["carehub-gateway"])
    for i in range(3):
        gateway.publish(f"carehub/{SITE}/events/fall/fall-a1", f'{{"n":{i}}}'.encode())
    bridged.central.start()
    observer = Client(bridged.central.port, "observer", "observer-pw", persistent=True)
    wait_for(lambda: len(observer.got) >= 3, f"got {observer.got}", timeout=10)
    assert [p for _, p, _ in observer.got] == [b'{"n":0}', b'{"n":1}', b'{"n":2}']
    gateway.close()
    observer.close()


@pytest.mark.mosquitto_only
def test_what_a_site_forwards_becomes_the_central_points(
    bridged: Sites, test_index: SiteIndex
) -> None:
    """Edge gateway → bridge → central broker → central ingest → InfluxDB line protocol."""
    from gateway.store import influx_schema as s
    from gateway.store.base import DeadLetter
    from tests.deploy.support import FakeWrites, assert_in_schema, central
    from tests.services.conftest import NIGHT, make_event_factory

    api = _bridge_up(bridged.edge, bridged.edge_creds)
    fake = FakeWrites()
    ingest = central(fake)
    reader = Client(
        bridged.central.port, "carehub-central", bridged.central_creds["carehub-central"]
    )
    reader.subscribe(*ingest.subscriptions())
    gateway = Client(bridged.edge.port, "carehub-gateway", bridged.edge_creds["carehub-gateway"])
    event = make_event_factory(test_index)("fall-a1", "fall", NIGHT, confidence=0.8)
    letter = DeadLetter.of(SITE, f"carehub/{SITE}/devices/x/up", b"\xff", "not_json", "", NIGHT)
    gateway.publish(event.topic("carehub"), event.model_dump_json().encode())
    gateway.publish(f"carehub/{SITE}/deadletter", json.dumps(letter.to_json()).encode())
    wait_for(lambda: len(reader.got) >= 2, "nothing reached the central broker")
    for topic, payload, _retain in reader.got:
        assert ingest.handle(topic, payload), topic
    ingest.flush()
    lines = fake.lines()
    for line in lines:
        assert_in_schema(line)
    assert {ln.measurement for ln in lines} == {
        s.EVENT_MEASUREMENT,
        s.DEVICE_STATE_MEASUREMENT,
        s.DEAD_LETTER_MEASUREMENT,
    }
    (point,) = [ln for ln in lines if ln.measurement == s.EVENT_MEASUREMENT]
    assert point.tags["site"] == SITE
    assert point.fields["event_id"] == event.event_id
    for c in (api, reader, gateway):
        c.close()


def test_central_broker_has_the_site_brokers_size_and_queue_limits(tmp_path: Path) -> None:
    """The central broker takes every home's bridge: it keeps the same limits as a site's."""
    central = directives(bridge.central_config_text(str(tmp_path)))
    site = directives(config_text(tmp_path, 1883))
    for key in ("max_packet_size", "message_size_limit", "max_queued_bytes"):
        assert central.get(key) == site[key], key
