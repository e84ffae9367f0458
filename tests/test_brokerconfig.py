"""Generated broker files, exercised by a real Mosquitto: who may publish what."""

from __future__ import annotations

import json
import os
import pwd
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from app.broker import find_mosquitto, free_port, reachable
from app.brokerconfig import mosquitto_hash, write_broker_config
from carehub.site import Site

ROOT = Path(__file__).resolve().parent.parent


def test_hash_is_mosquitto_pbkdf2_format() -> None:
    h = mosquitto_hash("secret", salt=b"0123456789ab")
    assert h.startswith("$7$101$MDEyMzQ1Njc4OWFi$")
    assert mosquitto_hash("secret") != mosquitto_hash("secret")  # salted


def test_files_written_private_and_credentials_kept_unless_rotated(
    tmp_path: Path, test_site: Site
) -> None:
    files = write_broker_config(test_site, tmp_path / "b")
    for path in (files.credentials, files.passwd, files.acl):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    creds = json.loads(files.credentials.read_text())
    assert {"carehub-gateway", "carehub-rules", "carehub-api", "fall-a1", "med-r00x"} <= set(creds)
    assert len(set(creds.values())) == len(creds)  # unique per client
    again = json.loads(write_broker_config(test_site, tmp_path / "b").credentials.read_text())
    assert again == creds
    rotated = json.loads(
        write_broker_config(test_site, tmp_path / "b", keep_existing=False).credentials.read_text()
    )
    assert set(rotated.values()).isdisjoint(creds.values())
    acl = files.acl.read_text()
    assert "user fall-a1\ntopic write carehub/testhjem/devices/fall-a1/up\n" in acl
    assert "user diaper-r003\ntopic write zigbee2mqtt/bed-b1-window\n" in acl
    gateway = acl.split("user carehub-gateway\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert "topic read carehub/testhjem/hub/api/selftest" in gateway  # the admin's self-test
    api = acl.split("user carehub-api\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert "topic write carehub/testhjem/hub/api/#" in api


def test_cli_writes_the_files(tmp_path: Path) -> None:
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "app",
            "broker-config",
            "--site",
            "sites/test.yaml",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "o" / "credentials.json").exists()


@pytest.fixture
def locked_broker(tmp_path: Path, test_site: Site) -> Iterator[tuple[int, dict[str, str]]]:
    binary = find_mosquitto()
    if binary is None:
        pytest.skip("Mosquitto is not installed (apt-get install mosquitto)")
    port = free_port()
    files = write_broker_config(test_site, tmp_path / "broker", port=port)
    conf = files.config.read_text().replace(f"listener {port}", f"listener {port} 127.0.0.1")
    assert f"user {pwd.getpwuid(os.getuid()).pw_name}\n" in conf  # who can read the 0600 files
    files.config.write_text(conf)
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


def _connect(
    port: int, client_id: str, username: str | None, password: str | None
) -> tuple[paho.Client, str]:
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    if username:
        c.username_pw_set(username, password)
    result: list[str] = []
    c.on_connect = lambda _c, _u, _f, rc, _p: result.append("ok" if not rc.is_failure else str(rc))
    try:
        c.connect("127.0.0.1", port)
    except OSError as err:
        return c, f"socket: {err}"
    c.loop_start()
    deadline = time.monotonic() + 5
    while not result and time.monotonic() < deadline:
        time.sleep(0.02)
    return c, result[0] if result else "no answer"


def _subscribe(client: paho.Client, topic: str) -> None:
    """Subscribe with QoS 1 and wait for the SUBACK, so nothing published next is missed."""
    acked = threading.Event()
    client.on_subscribe = lambda *_args: acked.set()
    client.subscribe(topic, qos=1)
    assert acked.wait(5), f"no SUBACK for {topic}"


@pytest.mark.mosquitto_only
def test_anonymous_and_wrong_password_refused(locked_broker: tuple[int, dict[str, str]]) -> None:
    port, creds = locked_broker
    anon, outcome = _connect(port, "anon", None, None)
    assert outcome != "ok"
    anon.loop_stop()
    wrong, outcome = _connect(port, "fall-a1", "fall-a1", creds["fall-a2"])
    assert outcome != "ok"
    wrong.loop_stop()


@pytest.mark.mosquitto_only
def test_device_publishes_only_its_own_topics(locked_broker: tuple[int, dict[str, str]]) -> None:
    port, creds = locked_broker
    listener, outcome = _connect(
        port, "carehub-gateway", "carehub-gateway", creds["carehub-gateway"]
    )
    assert outcome == "ok"
    got: list[tuple[str, bytes]] = []
    arrived = threading.Condition()

    def on_message(_c: paho.Client, _u: Any, m: paho.MQTTMessage) -> None:
        with arrived:
            got.append((m.topic, bytes(m.payload)))
            arrived.notify_all()

    def wait_for(marker: bytes) -> None:
        """Messages from one client reach a subscriber in order: once the marker published
        last is here, anything published before it that the broker let through is too."""
        with arrived:
            assert arrived.wait_for(lambda: any(p == marker for _t, p in got), timeout=5), got

    listener.on_message = on_message
    _subscribe(listener, "carehub/testhjem/devices/+/up")
    own = "carehub/testhjem/devices/fall-a1/up"
    device, outcome = _connect(port, "fall-a1", "fall-a1", creds["fall-a1"])
    assert outcome == "ok"
    device.publish(own, b"{}", qos=1).wait_for_publish(5)
    device.publish("carehub/testhjem/devices/fall-a2/up", b"{}", qos=1).wait_for_publish(
        5
    )  # not its own
    device.publish("carehub/testhjem/events/fall/fall-a1", b"{}", qos=1).wait_for_publish(
        5
    )  # a service's
    device.publish(own, b"marker", qos=1).wait_for_publish(5)
    wait_for(b"marker")
    assert got == [(own, b"{}"), (own, b"marker")]
    # a client id that is not its username is not accepted as someone else
    other, outcome = _connect(port, "fall-a2", "fall-a1", creds["fall-a1"])
    if (
        outcome == "ok"
    ):  # use_username_as_clientid: it connects as fall-a1 and still may not pose as fall-a2
        other.publish("carehub/testhjem/devices/fall-a2/up", b"{}", qos=1).wait_for_publish(5)
        other.publish(own, b"marker 2", qos=1).wait_for_publish(5)
        wait_for(b"marker 2")
        assert got == [(own, b"{}"), (own, b"marker"), (own, b"marker 2")]
    for c in (listener, device, other):
        c.disconnect()
        c.loop_stop()


@pytest.mark.mosquitto_only
def test_only_the_api_sends_self_tests_and_the_gateway_reads_them(
    locked_broker: tuple[int, dict[str, str]],
) -> None:
    port, creds = locked_broker
    topic = "carehub/testhjem/hub/api/selftest"
    gateway, outcome = _connect(
        port, "carehub-gateway", "carehub-gateway", creds["carehub-gateway"]
    )
    assert outcome == "ok"
    got: list[bytes] = []
    gateway.on_message = lambda _c, _u, m: got.append(bytes(m.payload))
    _subscribe(gateway, topic)
    api, outcome = _connect(port, "carehub-api", "carehub-api", creds["carehub-api"])
    assert outcome == "ok"
    device, outcome = _connect(port, "fall-a1", "fall-a1", creds["fall-a1"])
    assert outcome == "ok"
    device.publish(topic, b"from a device", qos=1).wait_for_publish(5)
    api.publish(topic, b"from the api", qos=1).wait_for_publish(5)
    # The device's publish was acknowledged before the API's was sent, and Mosquitto handles
    # messages in the order they arrive: had it let the device's through, it would be first.
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.02)
    assert got == [b"from the api"]
    for c in (gateway, api, device):
        c.disconnect()
        c.loop_stop()


@pytest.mark.mosquitto_only
def test_the_gateway_may_hold_many_messages_before_it_acknowledges(
    locked_broker: tuple[int, dict[str, str]],
) -> None:
    """The gateway acknowledges a batch only after its commit: the broker must keep sending
    meanwhile (Mosquitto's default, 20 in flight per client, would throttle ingest to 20
    messages per commit)."""
    port, creds = locked_broker
    gateway = paho.Client(
        CallbackAPIVersion.VERSION2,
        client_id="carehub-gateway",
        protocol=paho.MQTTv5,
        manual_ack=True,
    )
    gateway.username_pw_set("carehub-gateway", creds["carehub-gateway"])
    got: list[int] = []
    gateway.on_message = lambda _c, _u, m: got.append(m.mid)  # never acknowledged
    gateway.connect("127.0.0.1", port)
    gateway.loop_start()
    _subscribe(gateway, "carehub/testhjem/devices/+/up")
    device, outcome = _connect(port, "fall-a1", "fall-a1", creds["fall-a1"])
    assert outcome == "ok"
    for i in range(200):
        device.publish("carehub/testhjem/devices/fall-a1/up", f'{{"seq": {i}}}', qos=1)
    deadline = time.monotonic() + 5
    while len(got) < 200 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(got) == 200
    for c in (gateway, device):
        c.disconnect()
        c.loop_stop()


def test_hub_env_gives_each_part_its_own_login(tmp_path: Path, test_site: Site) -> None:
    """`carehub run all` logs each part in with its own login (docs/deployment.md)."""
    from app.hub import broker_logins
    from carehub.settings import Settings

    files = write_broker_config(test_site, tmp_path / "b", port=1999, host="hub.local")
    assert stat.S_IMODE(files.hub_env.stat().st_mode) == 0o600
    creds = json.loads(files.credentials.read_text())
    env = dict(
        line.split("=", 1)
        for line in files.hub_env.read_text().splitlines()
        if line and not line.startswith("#")
    )
    settings = Settings(**{k.removeprefix("CAREHUB_").lower(): v for k, v in env.items()})
    targets = broker_logins(settings, ("gateway", "rules", "api"))
    for part, target in targets.items():
        assert (target.host, target.port) == ("hub.local", 1999)
        assert target.username == f"carehub-{part}"
        assert target.password == creds[f"carehub-{part}"]


def test_one_login_for_several_parts_is_refused_anonymous_is_not() -> None:
    from app.hub import broker_logins
    from carehub.errors import ConfigError
    from carehub.settings import Settings

    shared = Settings(mqtt_url="mqtt://carehub-gateway:pw@h:1883")
    assert broker_logins(shared, ("gateway",))["gateway"].username == "carehub-gateway"
    with pytest.raises(ConfigError, match="CAREHUB_MQTT_RULES_URL"):
        broker_logins(shared, ("gateway", "rules", "api"))
    own = Settings(mqtt_url="mqtt://carehub-gateway:pw@h:1883", mqtt_rules_url="mqtt://r:p@h")
    with pytest.raises(ConfigError, match="api"):  # the api still shares the gateway's
        broker_logins(own, ("gateway", "rules", "api"))
    assert set(broker_logins(Settings(mqtt_url="mqtt://h:1883"), ("gateway", "rules", "api")))


@pytest.mark.mosquitto_only
def test_a_huge_publish_is_refused_by_the_broker_and_never_reaches_the_gateway(
    locked_broker: tuple[int, dict[str, str]],
) -> None:
    """docs/security.md, "MQTT": one 255 MB publish took the gateway to 869 MB. Now the
    broker cuts the sender off unread; a normal message still passes."""
    port, creds = locked_broker
    gateway, outcome = _connect(
        port, "carehub-gateway", "carehub-gateway", creds["carehub-gateway"]
    )
    assert outcome == "ok"
    sizes: list[int] = []
    gateway.on_message = lambda _c, _u, m: sizes.append(len(m.payload))
    gateway.subscribe("carehub/testhjem/devices/+/up", qos=1)
    time.sleep(0.3)
    device, outcome = _connect(port, "fall-a1", "fall-a1", creds["fall-a1"])
    assert outcome == "ok"
    device.publish("carehub/testhjem/devices/fall-a1/up", b"x" * (2 * 1024 * 1024), qos=1)
    time.sleep(1.0)
    device.loop_stop()
    device.disconnect()
    again, outcome = _connect(port, "fall-a1", "fall-a1", creds["fall-a1"])
    assert outcome == "ok"
    again.publish("carehub/testhjem/devices/fall-a1/up", b'{"seq": 1}', qos=1).wait_for_publish(5)
    deadline = time.monotonic() + 5
    while not sizes and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)
    assert sizes == [10]
    for c in (gateway, again):
        c.disconnect()
        c.loop_stop()


def test_the_generated_config_sets_size_and_queue_limits(tmp_path: Path) -> None:
    from app.brokerconfig import config_text

    text = config_text(tmp_path)
    assert "message_size_limit 65536" in text
    assert "max_packet_size 66560" in text
    assert "max_queued_bytes 67108864" in text
