"""No alarm lost and none shown twice under faults: the production processes (`carehub run
gateway`, `carehub run rules`) on a real Mosquitto with persistence, and real fall devices that
repeat `fall` until help comes (docs/devices.md).

Each scenario lets a ward's fall sensors fire while something breaks, then counts, per device,
the fall alarms in the alarm store and on MQTT, as the Jepsen checker counts messages: lost
(no alarm), duplicated (more than one alarm for one fall), recovered (the first uplink was in
flight during the fault and the alarm still came). Figures go to test-artifacts/faults.jsonl.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from app.broker import MosquittoBroker
from tests.support.mqttprobe import MqttProbe
from tests.support.procs import Proc, carehub_env

pytestmark = [pytest.mark.broker, pytest.mark.mosquitto_only]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SITE = "faulthjem"
REPEAT_S = 1.0
"""Fall devices repeat every 30 s in the field; here every second, so a test takes seconds."""


def site_file(path: Path, rooms: int, heartbeat_s: float = 60, escalate_min: float = 2) -> Path:
    """A ward of `rooms` single rooms, each with a resident and a fall sensor."""
    ids = [f"a-{i:03d}" for i in range(rooms)]
    doc = {
        "site": SITE,
        "name": "Fault test home",
        "locale": "en",
        "escalation": {"high_minutes": escalate_min, "reminder_high_minutes": None},
        "wards": [{"id": "a", "name": "Ward A", "rooms": ids}],
        "residents": [{"id": f"r-{i:03d}", "room": room} for i, room in enumerate(ids)],
        "devices": [
            {
                "id": f"fall-{i:03d}",
                "kind": "fall",
                "model": "carehub-v1",
                "room": room,
                "heartbeat_seconds": heartbeat_s,
            }
            for i, room in enumerate(ids)
        ],
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class FallDevices:
    """Fall sensors on one MQTT connection each... (sharing one here: topics differ, ACL is
    off): each repeats `fall` with a new seq every REPEAT_S until its alarm is seen."""

    def __init__(self, broker: MosquittoBroker, devices: list[str]) -> None:
        self.devices = devices
        self.first_sent: dict[str, float] = {}
        self.helped: set[str] = set()
        self.helped_at: dict[str, float] = {}
        self._seq = dict.fromkeys(devices, 0)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id="fault-devices",
            protocol=paho.MQTTv5,
        )
        self.client.max_queued_messages_set(0)
        self.client.on_message = self._on_alarm
        self.client.on_connect = lambda c, *_: c.subscribe(f"carehub/{SITE}/alarms/#", qos=1)
        self.client.reconnect_delay_set(0.2, 1.0)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self._thread: threading.Thread | None = None

    def _on_alarm(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        if not msg.payload:
            return
        alarm = json.loads(msg.payload)
        if alarm.get("rule") == "fall":
            with self._lock:
                self.helped.add(alarm["device_id"])
                self.helped_at.setdefault(alarm["device_id"], time.monotonic())

    def fall(self, device: str) -> None:
        """The device detects a fall: it reports now and repeats until help is seen."""
        with self._lock:
            self.first_sent.setdefault(device, time.monotonic())
        self._send(device)

    def _send(self, device: str) -> None:
        with self._lock:
            self._seq[device] += 1
            seq = self._seq[device]
        payload = {
            "v": 1,
            "seq": seq,
            "ts": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "type": "fall",
            "confidence": 0.9,
        }
        self.client.publish(f"carehub/{SITE}/devices/{device}/up", json.dumps(payload), qos=1)

    def start_repeating(self) -> None:
        def run() -> None:
            while not self._stop.wait(REPEAT_S):
                with self._lock:
                    waiting = [d for d in self.first_sent if d not in self.helped]
                for device in waiting:
                    self._send(device)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def all_helped(self) -> bool:
        with self._lock:
            return set(self.first_sent) <= self.helped

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Stack:
    """A broker, the gateway and rules processes, and the SQLite file they share."""

    tmp: Path
    broker: MosquittoBroker
    site: Path
    db: Path
    env: dict[str, str]
    gateway: Proc
    rules: Proc
    procs: list[Proc] = field(default_factory=list)

    def fall_alarms(self) -> dict[str, list[dict[str, Any]]]:
        """Fall alarms per device, from the alarm store."""
        with sqlite3.connect(self.db, timeout=60) as conn:
            rows = conn.execute("SELECT body FROM alarms").fetchall()
        out: dict[str, list[dict[str, Any]]] = {}
        for (body,) in rows:
            alarm = json.loads(body)
            if alarm["rule"] == "fall":
                out.setdefault(alarm["device_id"], []).append(alarm)
        return out

    def part_states(self) -> dict[str, str]:
        """What the gateway's and the rules engine's heartbeats say."""
        out = {}
        for part in ("gateway", "rules"):
            try:
                data = json.loads((self.db.parent / "heartbeats" / f"{part}.json").read_text())
                out[part] = str(data.get("state"))
            except (OSError, ValueError):
                out[part] = "unreadable"
        return out

    def wait_ready(self, timeout: float = 30) -> None:
        beats = self.db.parent / "heartbeats"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = []
            for part in ("gateway", "rules"):
                try:
                    data = json.loads((beats / f"{part}.json").read_text())
                    states.append(data.get("state"))
                except (OSError, ValueError):
                    states.append(None)
            if states == ["ok", "ok"]:
                return
            for proc in (self.gateway, self.rules):
                if not proc.alive:
                    pytest.fail(f"{proc.args} died:\n{proc.output()}")
            time.sleep(0.1)
        pytest.fail("gateway and rules not ready:\n" + self.gateway.output() + self.rules.output())


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    stacks: list[Stack] = []

    def make(rooms: int = 20, **site_args: Any) -> Stack:
        broker = MosquittoBroker(workdir=tmp_path / "broker")
        site = site_file(tmp_path / "site.yaml", rooms, **site_args)
        db = tmp_path / "state" / "carehub.db"
        env = carehub_env(
            CAREHUB_SITE_FILE=str(site),
            CAREHUB_DB=str(db),
            CAREHUB_MQTT_URL=f"mqtt://{broker.host}:{broker.port}",
            CAREHUB_LOG_LEVEL="WARNING",
        )
        stack = Stack(
            tmp_path,
            broker,
            site,
            db,
            env,
            Proc(["run", "gateway"], env, tmp_path / "gateway.log"),
            Proc(["run", "rules"], env, tmp_path / "rules.log"),
        )
        stacks.append(stack)
        stack.wait_ready()
        return stack

    yield make
    for stack in stacks:
        for proc in (stack.gateway, stack.rules):
            if proc.alive:
                proc.stop()
        stack.broker.cleanup()


def check(
    name: str,
    stack: Stack,
    devices: FallDevices,
    fault_window: tuple[float, float],
    timeout: float = 60,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Wait until every fallen resident has help (or time runs out), then count."""
    deadline = time.monotonic() + timeout
    while not devices.all_helped() and time.monotonic() < deadline:
        time.sleep(0.1)
    alarms = stack.fall_alarms()
    fell = sorted(devices.first_sent)
    lost = [d for d in fell if not alarms.get(d)]
    duplicated = [d for d in fell if len(alarms.get(d, [])) > 1]
    in_fault = [d for d in fell if fault_window[0] <= devices.first_sent[d] <= fault_window[1]]
    figures = {
        "scenario": name,
        "falls": len(fell),
        "alarms": sum(len(v) for v in alarms.values()),
        "lost": len(lost),
        "duplicated": len(duplicated),
        "in_flight_during_fault": len(in_fault),
        "recovered": len([d for d in in_fault if alarms.get(d)]),
        "shown_on_mqtt": len(devices.helped & set(fell)),
        "max_fall_to_alarm_s": round(
            max(
                (devices.helped_at[d] - devices.first_sent[d] for d in devices.helped_at), default=0
            ),
            2,
        ),
        **(extra or {}),
    }
    ARTIFACTS.mkdir(exist_ok=True)
    with (ARTIFACTS / "faults.jsonl").open("a") as out:
        out.write(json.dumps(figures) + "\n")
    assert lost == [], figures
    assert duplicated == [], figures
    assert figures["shown_on_mqtt"] == len(fell), figures
    return figures


def falls_during(
    devices: FallDevices, names: list[str], fault: Callable[[], None], at: int
) -> tuple[float, float]:
    """Fire `names` one every 100 ms; start `fault` in the background after the `at`-th, so
    falls keep coming while it lasts; answer the fault's time window."""
    window = [0.0, 0.0]

    def run_fault() -> None:
        window[0] = time.monotonic()
        fault()
        window[1] = time.monotonic()

    thread = threading.Thread(target=run_fault)
    for i, name in enumerate(names):
        if i == at:
            thread.start()
            time.sleep(0.1)
        devices.fall(name)
        time.sleep(0.1)
    thread.join()
    return window[0], window[1]


@pytest.mark.parametrize("how", ["sigterm", "kill9"])
def test_broker_stopped_and_restarted_mid_night(make_stack: Callable[..., Stack], how: str) -> None:
    stack = make_stack()
    devices = FallDevices(stack.broker, [f"fall-{i:03d}" for i in range(20)])
    devices.start_repeating()

    def fault() -> None:
        stack.broker.stop() if how == "sigterm" else stack.broker.kill()
        time.sleep(2)
        stack.broker.start()

    try:
        window = falls_during(devices, devices.devices, fault, at=8)
        figures = check(f"broker_{how}", stack, devices, window)
    finally:
        devices.close()
    assert figures["falls"] == 20


def test_gateway_kill_9_between_commit_and_acknowledgement(
    make_stack: Callable[..., Stack],
) -> None:
    stack = make_stack()
    devices = FallDevices(stack.broker, [f"fall-{i:03d}" for i in range(20)])
    devices.start_repeating()

    def fault() -> None:
        stack.gateway.kill9()
        time.sleep(1)
        stack.gateway.restart()

    try:
        window = falls_during(devices, devices.devices, fault, at=10)
        check("gateway_kill9", stack, devices, window)
    finally:
        devices.close()


def test_rules_kill_9_with_open_alarms_and_timers(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(escalate_min=0.1)  # escalation timers due 6 s after each alarm
    devices = FallDevices(stack.broker, [f"fall-{i:03d}" for i in range(20)])
    devices.start_repeating()
    try:
        for name in devices.devices[:10]:
            devices.fall(name)
        deadline = time.monotonic() + 15
        while len(stack.fall_alarms()) < 10 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(stack.fall_alarms()) == 10  # open alarms with escalation timers pending
        begin = time.monotonic()
        stack.rules.kill9()
        for name in devices.devices[10:]:
            devices.fall(name)  # these arrive while the rules engine is dead
        time.sleep(1)
        stack.rules.restart()
        figures = check("rules_kill9", stack, devices, (begin, time.monotonic()))
        assert figures["recovered"] == 10
        deadline = time.monotonic() + 20
        escalated: dict[str, list[dict[str, Any]]] = {}
        while time.monotonic() < deadline:
            escalated = {
                d: a for d, a in stack.fall_alarms().items() if a[0]["escalated_at"] is not None
            }
            if len(escalated) == 20:
                break
            time.sleep(0.2)
        assert len(escalated) == 20, "every unacknowledged fall escalates, once"
        with sqlite3.connect(stack.db) as conn:
            changes = conn.execute("SELECT count(*) FROM alarm_changes WHERE reason = 'escalated'")
            assert changes.fetchone()[0] == 20
    finally:
        devices.close()


@pytest.mark.timeout(180)
def test_sqlite_locked_for_30_seconds(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    devices = FallDevices(stack.broker, [f"fall-{i:03d}" for i in range(10)])
    devices.start_repeating()
    staff = MqttProbe(stack.broker.host, stack.broker.port)  # a nurse-call bridge, say
    staff.subscribe(f"carehub/{SITE}/provisional/#")
    locker = sqlite3.connect(stack.db, timeout=60, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        begin = time.monotonic()
        fell: dict[str, float] = {}
        for name in devices.devices:
            devices.fall(name)
            fell[name] = time.monotonic()
            time.sleep(0.05)
        # staff hear of every fall while nothing can be stored: one provisional alarm each
        announced = staff.wait_for(
            f"carehub/{SITE}/provisional/fall/+", lambda m: bool(m.payload), timeout=10, count=10
        )
        first: dict[str, float] = {}
        for m in announced:
            alarm = m.json()
            assert alarm["provisional"] is True
            assert alarm["rule"] == "fall"
            first.setdefault(alarm["device_id"], m.at)
        assert set(first) == set(devices.devices)
        provisional_max_s = max(first[d] - fell[d] for d in first)
        # and a technical alarm says the store is failing
        (technical,) = staff.wait_for(
            f"carehub/{SITE}/provisional/store/gateway", lambda m: bool(m.payload), timeout=10
        )
        assert technical.json()["rule"] == "store_failing"
        # the staff screen must learn within 10 s that the hub cannot store
        noticed = None
        while noticed is None and time.monotonic() - begin < 10:
            states = stack.part_states()
            if any(s.startswith("store not answering") for s in states.values()):
                noticed = time.monotonic() - begin
            time.sleep(0.2)
        assert noticed is not None, stack.part_states()
        time.sleep(max(0.0, 30 - (time.monotonic() - begin)))
        locker.execute("COMMIT")
        released = time.monotonic()
        figures = check(
            "sqlite_locked_30s",
            stack,
            devices,
            (begin, released),
            timeout=90,
            extra={
                "degraded_shown_after_s": round(noticed, 1),
                "provisional_alarm_max_s": round(provisional_max_s, 2),
            },
        )
        assert figures["recovered"] == 10
        # once stored, the real alarms stand alone: every provisional one is cleared
        # (a (re)connecting gateway also clears any ghost of the site's other fall sensors)
        wanted = {f"carehub/{SITE}/provisional/fall/{d}" for d in devices.devices}
        cleared = staff.wait_for(
            f"carehub/{SITE}/provisional/fall/+",
            lambda m: not m.payload and m.topic in wanted,
            timeout=10,
            count=len(wanted),
        )
        assert {m.topic.rsplit("/", 1)[1] for m in cleared} == set(devices.devices)
        staff.wait_for(f"carehub/{SITE}/provisional/store/gateway", lambda m: not m.payload)
        assert stack.gateway.alive
        assert stack.rules.alive
    finally:
        locker.close()
        devices.close()
        staff.close()


def test_silent_sensors_alarm_within_supervision_plus_10_s_in_100_of_100(
    make_stack: Callable[..., Stack],
) -> None:
    """100 trials at once: 100 sensors with a 1 s heartbeat fall silent at random moments."""
    stack = make_stack(rooms=100, heartbeat_s=1)
    rng = random.Random(7)
    client = MqttProbe(stack.broker.host, stack.broker.port)
    silent_at: dict[str, float] = {}

    def raised() -> dict[str, float]:
        first: dict[str, float] = {}
        for m in client.messages:
            alarm = m.json() if m.payload else None
            if alarm and alarm.get("rule") == "sensor_silent":
                first.setdefault(alarm["device_id"], m.at)
        return first

    client.subscribe(f"carehub/{SITE}/alarms/#")
    stops = {f"fall-{i:03d}": 2 + rng.random() * 6 for i in range(100)}
    t0 = time.monotonic()
    seq = dict.fromkeys(stops, 0)
    try:
        while time.monotonic() - t0 < 9:
            now = time.monotonic() - t0
            for device, stop_after in stops.items():
                if now < stop_after:
                    seq[device] += 1
                    client.publish(
                        f"carehub/{SITE}/devices/{device}/up",
                        {
                            "v": 1,
                            "seq": seq[device],
                            "ts": datetime.now(UTC).isoformat(),
                            "type": "heartbeat",
                            "battery": 90,
                            "rssi": -60,
                        },
                    )
                    silent_at[device] = time.monotonic()
            time.sleep(max(0.0, 0.5 - (time.monotonic() - t0 - now)))
        deadline = time.monotonic() + 20
        while len(raised()) < 100 and time.monotonic() < deadline:
            time.sleep(0.2)
        raised_at = raised()
    finally:
        client.close()
    supervision = 3 * 1.0
    delays = {d: raised_at[d] - silent_at[d] for d in raised_at}
    within = [d for d, delay in delays.items() if delay <= supervision + 10]
    figures = {
        "scenario": "silent_sensor_100_trials",
        "trials": 100,
        "alarmed_within_supervision_plus_10s": len(within),
        "max_delay_s": round(max(delays.values(), default=float("nan")), 2),
        "supervision_s": supervision,
    }
    ARTIFACTS.mkdir(exist_ok=True)
    with (ARTIFACTS / "faults.jsonl").open("a") as out:
        out.write(json.dumps(figures) + "\n")
    assert len(within) == 100, figures
