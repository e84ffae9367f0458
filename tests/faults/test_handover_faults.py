"""The hand-over from a stored event to its alarm under crashes at exact points, and a flood.

Each crash test arms one failpoint (carehub/failpoints.py) in a real `carehub run` process on a
real Mosquitto, sends messages that must each raise exactly one alarm (three falls, a saturated
diaper, a dose that is never taken), lets the process die at that point, starts it again
unarmed and counts the alarms in the alarm store: lost (none), duplicated (more than one),
recovered (present after the restart). The devices here send once and never repeat, so a lost
hand-over shows. In the one-process layout (`carehub run all`) and the parts layout
(`carehub run gateway` + `carehub run rules`). Figures go to test-artifacts/faults.jsonl.
"""

from __future__ import annotations

import json
import secrets
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
SITE = "handoverhjem"
FALLS = ["fall-000", "fall-001", "fall-002"]
EXPECTED = {
    *(("fall", d) for d in FALLS),
    ("diaper_change", "diaper-003"),
    ("dose_missed", "med-004"),
}
"""(rule, device) of every alarm the messages must raise, once each."""
FLOOD_DEVICE = "flood-005"
FLOOD_MESSAGES = 20_000


def site_file(path: Path) -> Path:
    """Six single rooms: three fall sensors, a diaper, a dispenser (3 s dose window), and a
    fall sensor to flood with; hour-long heartbeats, so no silence alarm gets in the way."""
    rooms = [f"a-{i:03d}" for i in range(6)]
    kinds = {
        "fall-000": "fall",
        "fall-001": "fall",
        "fall-002": "fall",
        "diaper-003": "diaper",
        "med-004": "medication",
        FLOOD_DEVICE: "fall",
    }
    doc = {
        "site": SITE,
        "name": "Hand-over test home",
        "locale": "en",
        "rules": {"dose_missed": {"window_minutes": 0.05}},
        "wards": [{"id": "a", "name": "Ward A", "rooms": rooms}],
        "residents": [{"id": f"r-{i:03d}", "room": room} for i, room in enumerate(rooms)],
        "devices": [
            {
                "id": device,
                "kind": kind,
                "model": "carehub-v1",
                "room": rooms[i],
                "heartbeat_seconds": 3600,
            }
            for i, (device, kind) in enumerate(kinds.items())
        ],
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class Devices:
    """The devices' side: one QoS 1 connection, each message sent once."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"devices-{secrets.token_hex(3)}"
        )
        self.client.max_inflight_messages_set(1000)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def send(self, device: str, body: dict[str, Any]) -> paho.MQTTMessageInfo:
        payload = {"v": 1, "ts": _now(), **body}
        return self.client.publish(f"carehub/{SITE}/devices/{device}/up", json.dumps(payload), 1)

    def alarm_worthy(self) -> None:
        """Three falls, a saturated diaper and a dose due now (missed 3 s later); each
        message must raise exactly one alarm."""
        infos = [self.send(d, {"seq": 1, "type": "fall", "confidence": 0.9}) for d in FALLS]
        infos.append(self.send("diaper-003", {"seq": 1, "type": "saturation", "level": 90}))
        infos.append(
            self.send("med-004", {"seq": 1, "type": "dose_due", "dose_id": "n", "due": _now()})
        )
        for info in infos:
            info.wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class Stack:
    """A broker and the hub's processes in one layout, sharing one SQLite file."""

    tmp: Path
    broker: MosquittoBroker
    db: Path
    env: dict[str, str]
    layout: str
    procs: dict[str, Proc] = field(default_factory=dict)

    def proc_for(self, point: str) -> Proc:
        """The process a failpoint lives in."""
        if self.layout == "one":
            return self.procs["all"]
        return self.procs[point.split(".", 1)[0]]

    def query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.db, timeout=60) as conn:
            return conn.execute(sql, args).fetchall()

    def alarms(self) -> dict[tuple[str, str], int]:
        """(rule, device) → alarms in the alarm store."""
        out: dict[tuple[str, str], int] = {}
        try:
            rows = self.query("SELECT body FROM alarms")
        except sqlite3.OperationalError:
            return out  # not created yet
        for (body,) in rows:
            alarm = json.loads(body)
            key = (alarm["rule"], alarm["device_id"])
            out[key] = out.get(key, 0) + 1
        return out

    def backlog(self) -> int:
        try:
            return int(self.query("SELECT COUNT(*) FROM handover")[0][0])
        except sqlite3.OperationalError:
            return 0

    def wait_ready(self, timeout: float = 30) -> None:
        beats = self.db.parent / "heartbeats"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = []
            for part in ("gateway", "rules"):
                try:
                    states.append(json.loads((beats / f"{part}.json").read_text()).get("state"))
                except (OSError, ValueError):
                    states.append(None)
            if states == ["ok", "ok"]:
                return
            for proc in self.procs.values():
                if not proc.alive:
                    pytest.fail(f"{proc.args} died:\n{proc.output()}")
            time.sleep(0.1)
        pytest.fail("not ready:\n" + "\n".join(p.output() for p in self.procs.values()))


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    stacks: list[Stack] = []

    def make(layout: str, failpoint: str | None = None) -> Stack:
        broker = MosquittoBroker(workdir=tmp_path / "broker")
        db = tmp_path / "state" / "carehub.db"
        env = carehub_env(
            CAREHUB_SITE_FILE=str(site_file(tmp_path / "site.yaml")),
            CAREHUB_DB=str(db),
            CAREHUB_MQTT_URL=f"mqtt://{broker.host}:{broker.port}",
            CAREHUB_LOG_LEVEL="WARNING",
            CAREHUB_SECRET_KEY=secrets.token_hex(16),
            CAREHUB_HTTP_PORT="0",
        )
        stack = Stack(tmp_path, broker, db, env, layout)
        parts = ["all"] if layout == "one" else ["gateway", "rules"]
        armed = None
        if failpoint is not None:
            armed = "all" if layout == "one" else failpoint.split(".", 1)[0]
        for part in parts:
            part_env = dict(env)
            if part == armed:
                part_env["CAREHUB_FAILPOINTS"] = f"{failpoint}=crash"
            stack.procs[part] = Proc(["run", part], part_env, tmp_path / f"{part}.log")
        stacks.append(stack)
        stack.wait_ready()
        return stack

    yield make
    for stack in stacks:
        for proc in stack.procs.values():
            if proc.alive:
                proc.stop()
        stack.broker.cleanup()


def record(figures: dict[str, Any]) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with (ARTIFACTS / "faults.jsonl").open("a") as out:
        out.write(json.dumps(figures) + "\n")
    print(json.dumps(figures))  # the figures belong in the test output too


@pytest.mark.timeout(180)
@pytest.mark.parametrize("layout", ["one", "parts"])
@pytest.mark.parametrize(
    "point",
    ["gateway.after_commit", "gateway.after_publish", "rules.before_commit", "rules.after_commit"],
)
def test_crash_at_failpoint_loses_and_duplicates_no_alarm(
    make_stack: Callable[..., Stack], layout: str, point: str
) -> None:
    stack = make_stack(layout, point)
    staff = MqttProbe(stack.broker.host, stack.broker.port)
    staff.subscribe(f"carehub/{SITE}/alarms/#")
    devices = Devices(stack.broker)
    victim = stack.proc_for(point)
    try:
        devices.alarm_worthy()
        deadline = time.monotonic() + 20
        while victim.alive and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not victim.alive, f"{point} never fired:\n{victim.output()}"
        before_restart = stack.alarms()
        victim.env = {k: v for k, v in victim.env.items() if k != "CAREHUB_FAILPOINTS"}
        victim.restart()

        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            published = {
                (a["rule"], a["device_id"]) for a in (m.json() for m in staff.messages if m.payload)
            }
            if set(stack.alarms()) >= EXPECTED and published >= EXPECTED:
                break
            time.sleep(0.1)
        time.sleep(2)  # room for a duplicate to show
        alarms = stack.alarms()
        published = {
            (a["rule"], a["device_id"]) for a in (m.json() for m in staff.messages if m.payload)
        }
        raised = stack.query("SELECT COUNT(*) FROM alarm_changes WHERE reason = 'raised'")[0][0]
        figures = {
            "scenario": f"handover_{layout}_{point}",
            "expected": len(EXPECTED),
            "alarms": sum(alarms.values()),
            "lost": len(EXPECTED - set(alarms)),
            "duplicated": sum(n - 1 for n in alarms.values() if n > 1),
            "recovered": len((EXPECTED & set(alarms)) - set(before_restart)),
            "published": len(EXPECTED & published),
            "raised_changes": raised,
            "backlog_after": stack.backlog(),
        }
        record(figures)
        assert figures["lost"] == 0, figures
        assert figures["duplicated"] == 0, figures
        assert set(alarms) == EXPECTED, figures
        assert raised == len(EXPECTED), figures
        assert published >= EXPECTED, figures
        assert figures["backlog_after"] == 0, figures
    finally:
        devices.close()
        staff.close()


def heartbeats_and_rate_limited(stack: Stack) -> tuple[int, int]:
    """The flooder's heartbeats stored, and the messages the gateway refused as over budget.

    The refusals are counted from the gateway's own counter (its heartbeat file carries its
    metrics): past the first few a minute, dead letters are sampled, counted but not stored
    (docs/security.md)."""
    beats = stack.query(
        "SELECT COUNT(*) FROM events WHERE device_id = ? AND type = 'heartbeat'", (FLOOD_DEVICE,)
    )[0][0]
    try:
        status = json.loads((stack.db.parent / "heartbeats" / "gateway.json").read_text())
    except (OSError, ValueError):
        return int(beats), 0
    metrics = status.get("metrics") or status.get("status", {}).get("metrics") or {}
    limited = metrics.get('carehub_gateway_rejected_total{reason="rate_limited"}', 0)
    return int(beats), int(limited)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("layout", ["one", "parts"])
def test_flood_of_heartbeats_does_not_hold_up_another_devices_fall(
    make_stack: Callable[..., Stack], layout: str
) -> None:
    stack = make_stack(layout)
    staff = MqttProbe(stack.broker.host, stack.broker.port)
    staff.subscribe(f"carehub/{SITE}/alarms/#")
    flood = Devices(stack.broker)
    fall = Devices(stack.broker)
    fell_at: list[float] = []

    def run_flood() -> None:
        for seq in range(1, FLOOD_MESSAGES + 1):
            flood.send(FLOOD_DEVICE, {"seq": seq, "type": "heartbeat", "battery": 90, "rssi": -60})
            if seq == FLOOD_MESSAGES // 4:  # the flood is well under way
                fell_at.append(time.monotonic())
                fall.send("fall-000", {"seq": 1, "type": "fall", "confidence": 0.9})

    started = time.monotonic()
    thread = threading.Thread(target=run_flood)
    thread.start()
    try:
        (alarm,) = staff.wait_for(
            f"carehub/{SITE}/alarms/#",
            lambda m: bool(m.payload) and m.json().get("rule") == "fall",
            timeout=120,
        )
        latency = alarm.at - fell_at[0]
        thread.join()
        sent_s = time.monotonic() - started
        deadline = time.monotonic() + 180
        stored = 0
        beats = limited = 0
        while time.monotonic() < deadline:
            # Over its rate budget (docs/devices.md) the flooder's heartbeats are dead letters
            # `rate_limited`; every message is accounted for as one or the other.
            beats, limited = heartbeats_and_rate_limited(stack)
            stored = stack.query("SELECT COUNT(*) FROM events")[0][0]
            if beats + limited == FLOOD_MESSAGES and stack.backlog() == 0:
                break
            time.sleep(0.5)
        drained_s = time.monotonic() - started
        handled = stack.query(
            "SELECT COUNT(*) FROM events e JOIN alarm_seen_events s ON s.event_id = e.event_id"
        )[0][0]
        figures = {
            "scenario": f"handover_flood_{layout}",
            "flood_messages": FLOOD_MESSAGES,
            "flood_sent_s": round(sent_s, 1),
            "stored": stored,
            "heartbeats_stored": beats,
            "rate_limited": limited,
            "rules_handled": handled,
            "lost": stored - handled,
            "backlog_after": stack.backlog(),
            "fall_alarms": stack.alarms().get(("fall", "fall-000"), 0),
            "fall_to_alarm_s": round(latency, 3),
            "drained_s": round(drained_s, 1),
        }
        record(figures)
        assert beats + limited == FLOOD_MESSAGES, figures
        assert limited > 0, figures  # one device this loud is over its budget
        assert figures["lost"] == 0, figures
        assert figures["fall_alarms"] == 1, figures
        assert latency < 15, figures  # generous: timing belongs in bench/, not in tests
    finally:
        thread.join()
        flood.close()
        fall.close()
        staff.close()
