"""`carehub run central` (services/central.py) against a real central Mosquitto, configured by
deploy/mosquitto/bridge.py as the municipality runs it: two care homes' bridge logins publish
what their bridges forward, the ingest reads it as `carehub-central`.

InfluxDB cannot run here, so the write path is the production one (`CentralIngest`,
`InfluxEventStore`, `TimeseriesWriter`, built by `CentralService.from_settings`) with only
influxdb-client's write API replaced (`FakeWrites`, as in test_timeseries.py); a real InfluxDB
only when CAREHUB_TEST_INFLUX_URL (+ _TOKEN, _ORG, _BUCKET) names a disposable bucket.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from app.broker import free_port
from carehub import heartbeat
from carehub.mqtt import ClientOptions, close, connect_blocking
from carehub.settings import MqttTarget, Settings
from carehub.site import Site
from deploy.mosquitto import bridge
from gateway.store import influx_schema as s
from gateway.store.base import DeadLetter
from services.central import CentralService
from services.rules.engine import RulesEngine
from tests.conftest import HAVE_MOSQUITTO, NO_MOSQUITTO
from tests.deploy.lineprotocol import Line
from tests.deploy.support import Broker, FakeWrites, assert_in_schema, runnable
from tests.services.conftest import NIGHT
from tests.support.procs import CAREHUB, Proc, carehub_env

pytestmark = [
    pytest.mark.broker,
    pytest.mark.mosquitto_only,
    pytest.mark.skipif(not HAVE_MOSQUITTO, reason=NO_MOSQUITTO),
]

INFLUX_ENV = ("URL", "TOKEN", "ORG", "BUCKET")
OFFLINE_INFLUX = {
    "influx_url": "http://127.0.0.1:9",  # nothing listens: only the fakes write
    "influx_token": "t",
    "influx_org": "o",
    "influx_bucket": "b",
}


@dataclass
class Central:
    """The municipality's broker, its logins, and the two care homes that forward to it."""

    broker: Broker
    creds: dict[str, str]
    sites: tuple[str, str]
    state: Path

    def url(self, user: str = bridge.CENTRAL_READER) -> str:
        return f"mqtt://{user}:{self.creds[user]}@127.0.0.1:{self.broker.port}"

    def settings(self, **influx: str) -> Settings:
        return Settings(
            mqtt_url=self.url(),
            db=self.state / "central.db",
            **(influx or OFFLINE_INFLUX),  # type: ignore[arg-type]
        )


@pytest.fixture
def central_broker(tmp_path: Path) -> Iterator[Central]:
    """A central Mosquitto from `bridge.py central` for two sites of this test's own."""
    tag = uuid.uuid4().hex[:6]
    sites = (f"solhaven-{tag}", f"rosenhaven-{tag}")
    folder = tmp_path / "central"
    creds = bridge.write_central(list(sites), folder, config_dir=str(folder), tls_port=None)
    port = free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(runnable(conf.read_text(), port, 1883))
    broker = Broker(port, conf)
    broker.start()
    yield Central(broker, creds, sites, tmp_path / "state")
    broker.stop()


class Bridge:
    """Publishes as a care home's bridge does: its own login, QoS 1."""

    def __init__(self, central: Central, site: str) -> None:
        user = bridge.bridge_user(site)
        self.client = connect_blocking(
            MqttTarget.parse(central.url(user)), ClientOptions(client_id=user)
        )

    def publish(self, messages: list[tuple[str, bytes]]) -> None:
        for topic, payload in messages:
            info = self.client.publish(topic, payload, qos=1)
            info.wait_for_publish(5)
            assert info.rc == paho.MQTT_ERR_SUCCESS

    def close(self) -> None:
        close(self.client)


def raise_alarm(engine: RulesEngine, world: Any) -> dict[str, Any]:
    """An alarm as the rules engine publishes it (JSON, docs/alarms.md)."""
    _service, _clock, make_event = world
    (change,) = engine.handle(make_event("fall-a1", "fall", NIGHT, confidence=0.9))
    return dict(change.alarm)


def forwarded(site: str, alarm: dict[str, Any], world: Any, n: int) -> list[tuple[str, bytes]]:
    """What a site's bridge forwards: a fall, a heartbeat, an alarm, a dead letter."""
    _service, _clock, make_event = world
    fall = make_event("fall-a1", "fall", NIGHT, seq=100 + n, confidence=0.9)
    beat = make_event("diaper-r001", "heartbeat", NIGHT, seq=200 + n, battery=14, rssi=-71)
    letter = DeadLetter.of(site, f"carehub/{site}/devices/x/up", b"{", "not_json", "", NIGHT)
    out = []
    for event in (fall, beat):
        mine = event.model_copy(update={"site": site})
        out.append((mine.topic("carehub"), mine.model_dump_json().encode()))
    alarm_topic = f"carehub/{site}/alarms/{alarm['alarm_id']}"
    out.append((alarm_topic, json.dumps({**alarm, "site": site}).encode()))
    out.append((f"carehub/{site}/deadletter", json.dumps(letter.to_json()).encode()))
    return out


def bad(site: str, good: list[tuple[str, bytes]], other: str) -> list[tuple[str, bytes]]:
    """Payloads the ingest cannot use: not JSON, not an object, an event of another site."""
    fall_topic, fall = good[0]
    alarm_topic = good[2][0]
    posing = json.loads(fall)
    posing["site"] = other
    return [
        (fall_topic, b"{not json"),
        (alarm_topic, b"[1, 2]"),
        (f"carehub/{site}/deadletter", b'"just a string"'),
        (fall_topic, json.dumps(posing).encode()),
    ]


def start(central: Central, fake: FakeWrites, **config: Any) -> CentralService:
    """The production part, built from settings; only influxdb-client's write API is fake."""
    service = CentralService.from_settings(central.settings(), **config)
    service.ingest.events._write = fake
    service.ingest.writer._write = fake
    service.start()
    assert service.wait_ready(10), "the central ingest did not connect and subscribe"
    return service


def wait_until(check: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def by_site(fake: FakeWrites, measurement: str) -> dict[str, list[Line]]:
    out: dict[str, list[Line]] = {}
    for line in fake.lines():
        if line.measurement == measurement:
            out.setdefault(line.tags["site"], []).append(line)
    return out


def event_ids(fake: FakeWrites) -> set[tuple[str, str]]:
    return {
        (ln.tags["site"], str(ln.fields["event_id"]))
        for ln in fake.lines()
        if ln.measurement == s.EVENT_MEASUREMENT
    }


def expected_ids(messages: list[tuple[str, bytes]]) -> set[tuple[str, str]]:
    return {
        (json.loads(p)["site"], json.loads(p)["event_id"]) for t, p in messages if "/events/" in t
    }


def test_points_of_both_sites_arrive_and_bad_payloads_are_dropped(
    central_broker: Central,
    alarm_world: tuple[RulesEngine, Any],
    test_site: Site,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    engine, world = alarm_world
    alarm = raise_alarm(engine, world)
    sol, ros = central_broker.sites
    fake = FakeWrites()
    service = start(central_broker, fake)
    homes = {site: Bridge(central_broker, site) for site in central_broker.sites}
    try:
        good_sol = forwarded(sol, alarm, world, 1)
        good_ros = forwarded(ros, alarm, world, 2)
        homes[sol].publish(bad(sol, good_sol, ros)[:2])
        homes[sol].publish(good_sol)
        homes[ros].publish(good_ros)
        homes[sol].publish(bad(sol, good_sol, ros)[2:])  # and the flow goes on after them
        late = forwarded(ros, alarm, world, 3)[:1]
        homes[ros].publish(late)

        wanted = expected_ids(good_sol + good_ros + late)
        wait_until(lambda: event_ids(fake) >= wanted, "both sites' events in InfluxDB")
        wait_until(lambda: service.metrics().get(_refused(sol)) == 4, "4 refused")
        assert event_ids(fake) == wanted
        for line in fake.lines():
            assert_in_schema(line)
        changes = by_site(fake, s.ALARM_CHANGE_MEASUREMENT)
        letters = by_site(fake, s.DEAD_LETTER_MEASUREMENT)
        states = by_site(fake, s.DEVICE_STATE_MEASUREMENT)
        assert set(changes) == set(letters) == set(states) == {sol, ros}
        assert all(len(changes[site]) == 1 for site in (sol, ros))
        beat = [ln for ln in states[ros] if ln.tags["device_id"] == "diaper-r001"]
        assert beat[0].fields["battery"] == 14.0
        metrics = service.metrics()
        assert metrics[f'carehub_central_messages_total{{site="{sol}"}}'] == 4
        assert metrics[f'carehub_central_messages_total{{site="{ros}"}}'] == 5
        assert metrics.get(_refused(ros), 0) == 0
        assert metrics.get("carehub_central_errors_total", 0) == 0
        wait_until(lambda: service.metrics()["carehub_central_pending"] == 0, "all committed")
        beats = heartbeat.heartbeat_dir(central_broker.settings().db)
        wait_until(lambda: heartbeat.read(beats, "central") == "ok", "a healthy heartbeat")
    finally:
        for home in homes.values():
            home.close()
        service.stop()
    assert heartbeat.read(beats, "central") == "not running"
    # everything was acknowledged, the refused messages too: a restart gets nothing again
    again = FakeWrites()
    service = start(central_broker, again)
    # a fall published now reaches the ingest after whatever its session still held
    home = Bridge(central_broker, sol)
    try:
        marker = forwarded(sol, alarm, world, 9)[:1]
        home.publish(marker)
        wait_until(lambda: event_ids(again), "the new fall written")
    finally:
        home.close()
        service.stop()
    assert event_ids(again) == expected_ids(marker)
    # the new fall and the device state it brings; nothing of the acknowledged ones
    assert sorted(ln.measurement for ln in again.lines()) == sorted(
        [s.EVENT_MEASUREMENT, s.DEVICE_STATE_MEASUREMENT]
    )
    for name in (r.name for r in test_site.residents if r.name):
        assert name not in caplog.text


def _refused(site: str) -> str:
    return f'carehub_central_refused_total{{site="{site}"}}'


class Down(FakeWrites):
    """InfluxDB refusing every write."""

    def write(self, bucket: str, org: str, record: list[Any]) -> None:
        self.calls += 1
        raise ConnectionRefusedError("influxdb is away")


@pytest.mark.parametrize("how", ["stop", "crash"])
def test_nothing_is_acknowledged_until_influxdb_took_it(
    central_broker: Central, alarm_world: tuple[RulesEngine, Any], how: str
) -> None:
    engine, world = alarm_world
    alarm = raise_alarm(engine, world)
    sol, ros = central_broker.sites
    homes = {site: Bridge(central_broker, site) for site in central_broker.sites}
    first = forwarded(sol, alarm, world, 1) + forwarded(ros, alarm, world, 2)
    while_down = forwarded(ros, alarm, world, 3)
    down = Down()
    service = start(central_broker, down)
    beats = heartbeat.heartbeat_dir(central_broker.settings().db)
    try:
        homes[sol].publish(first[:4])
        homes[ros].publish(first[4:])
        wait_until(lambda: down.calls >= 2, "InfluxDB to be tried")
        wait_until(
            lambda: heartbeat.read(beats, "central").startswith("store failing"),
            "the heartbeat to say InfluxDB fails",
        )
        assert service.metrics()["carehub_central_commits_total"] == 0
    finally:
        if how == "stop":
            service.stop()  # its last flush fails too: the messages stay with the broker
        else:
            service.abort()
            service.ingest.events._client.close()
            service.ingest.writer._client.close()
    homes[ros].publish(while_down)  # queued in the ingest's session while it is away
    for home in homes.values():
        home.close()
    back = FakeWrites()
    service = start(central_broker, back)
    try:
        wanted = expected_ids(first + while_down)
        wait_until(lambda: event_ids(back) >= wanted, "every event after the restart")
        assert set(by_site(back, s.ALARM_CHANGE_MEASUREMENT)) == {sol, ros}
        assert set(by_site(back, s.DEAD_LETTER_MEASUREMENT)) == {sol, ros}
    finally:
        service.stop()


def test_the_cli_runs_central_without_a_site_file_and_stops_on_sigterm(
    central_broker: Central, alarm_world: tuple[RulesEngine, Any], tmp_path: Path
) -> None:
    """`carehub run central` as its container runs it, with InfluxDB away: it connects, its
    health says the store fails once a message came, SIGTERM stops it, and what it could not
    write is delivered to the next start."""
    engine, world = alarm_world
    alarm = raise_alarm(engine, world)
    sol = central_broker.sites[0]
    state = tmp_path / "cli-state"
    env = carehub_env(
        CAREHUB_MQTT_URL=central_broker.url(),
        CAREHUB_DB=str(state / "central.db"),
        CAREHUB_INFLUX_URL="http://127.0.0.1:9",
        CAREHUB_INFLUX_TOKEN="t",
        CAREHUB_INFLUX_ORG="o",
        CAREHUB_INFLUX_BUCKET="b",
        CAREHUB_LOG_LEVEL="INFO",
    )

    def health() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CAREHUB, "health", "central"], env=env, capture_output=True, text=True, check=False
        )

    proc = Proc(["run", "central"], env, tmp_path / "central.log")
    home = Bridge(central_broker, sol)
    try:
        wait_until(lambda: health().returncode == 0, "a healthy `carehub health central`")
        messages = forwarded(sol, alarm, world, 1)
        home.publish(messages)
        failing = wait_until(
            lambda: (r := health()).returncode == 1 and "store failing" in r.stdout and r,
            "health to report InfluxDB failing",
        )
        assert failing.stdout.startswith("central: store failing")
    finally:
        home.close()
        code = proc.stop(signal.SIGTERM, timeout=40)
    assert code == 0, proc.output()
    assert "running central ingest from mqtt://carehub-central:***@" in proc.output()
    assert central_broker.creds["carehub-central"] not in proc.output()
    assert health().stdout.strip() == "central: not running"
    back = FakeWrites()
    service = start(central_broker, back)
    try:
        wanted = expected_ids(messages)
        wait_until(lambda: event_ids(back) >= wanted, "what the CLI could not write")
    finally:
        service.stop()


def test_the_cli_refuses_to_start_without_influxdb_settings(central_broker: Central) -> None:
    env = carehub_env(CAREHUB_MQTT_URL=central_broker.url(), CAREHUB_INFLUX_URL="http://x:8086")
    r = subprocess.run(
        [*CAREHUB, "run", "central"], env=env, capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 2, r.stderr
    assert "CAREHUB_INFLUX_TOKEN, CAREHUB_INFLUX_ORG, CAREHUB_INFLUX_BUCKET" in r.stderr
    assert "CAREHUB_INFLUX_URL" not in r.stderr.split("set ", 1)[1]
    assert "CAREHUB_SITE_FILE" not in r.stderr  # it serves every site: no site file
    assert "--site" not in r.stderr
    env = carehub_env(CAREHUB_MQTT_URL=central_broker.url())
    r = subprocess.run(
        [*CAREHUB, "run", "central"], env=env, capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 2
    assert "set CAREHUB_INFLUX_URL, CAREHUB_INFLUX_TOKEN" in r.stderr
    r = subprocess.run(
        [*CAREHUB, "run", "central,gateway"], env=env, capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 2
    assert "central runs alone" in r.stderr


# --- against a real InfluxDB ---------------------------------------------------------------


def _influx() -> dict[str, str] | None:
    import os

    values = {k.lower(): os.environ.get(f"CAREHUB_TEST_INFLUX_{k}", "") for k in INFLUX_ENV}
    return values if all(values.values()) else None


NO_INFLUX = "InfluxDB tests need CAREHUB_TEST_INFLUX_URL, _TOKEN, _ORG and _BUCKET"


@pytest.mark.influx
@pytest.mark.skipif(_influx() is None, reason=NO_INFLUX)
def test_both_sites_reach_a_real_influxdb(
    central_broker: Central, alarm_world: tuple[RulesEngine, Any]
) -> None:
    cfg = _influx()
    assert cfg is not None
    engine, world = alarm_world
    alarm = raise_alarm(engine, world)
    sol, ros = central_broker.sites
    settings = central_broker.settings(**{f"influx_{k}": v for k, v in cfg.items()})
    service = CentralService.from_settings(settings)
    service.start()
    homes = {site: Bridge(central_broker, site) for site in central_broker.sites}
    try:
        assert service.wait_ready(10)
        homes[sol].publish(forwarded(sol, alarm, world, 1))
        homes[ros].publish(forwarded(ros, alarm, world, 2))
        wait_until(
            lambda: (
                sum(v for k, v in service.metrics().items() if k.startswith("carehub_central_mess"))
                == 8
            ),
            "8 messages written",
        )
    finally:
        for home in homes.values():
            home.close()
        service.stop()
    from influxdb_client.client.influxdb_client import InfluxDBClient

    query = InfluxDBClient(url=cfg["url"], token=cfg["token"], org=cfg["org"])
    flux = (
        f'from(bucket: "{cfg["bucket"]}") |> range(start: 2026-11-01T00:00:00Z,'
        " stop: 2200-01-01T00:00:00Z)"
        f' |> filter(fn: (r) => r.site == "{sol}" or r.site == "{ros}")'
        ' |> keep(columns: ["_measurement", "site"]) |> group() |> distinct(column: "site")'
    )
    try:
        tables = query.query_api().query(flux, org=cfg["org"])
        found = {rec.get_value() for t in tables for rec in t.records}
    finally:
        query.close()
    assert found == {sol, ros}
