"""Faults on production's broker config (`carehub broker-config`: logins and ACL, autosave every
30 s, 1,000 in flight, 100,000 queued), with the hub as the README and docs/deployment.md run it:
`carehub run all` with hub.env, or `run gateway` + `run rules` + `run api` each with its own
login.

Fall sensors each fall once and never repeat, so a lost fall shows; every scenario counts
lost, duplicated and recovered alarms, asserts fall → alarm latency (generously: timing
belongs in bench/) and writes a row to test-artifacts/faults.jsonl.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from carehub.site import load_site
from services.alarms.model import Outcome
from services.alarms.service import AlarmService
from tests.support.procs import Proc, carehub_env
from tests.support.prodbroker import ProductionBroker, close

pytestmark = [pytest.mark.broker, pytest.mark.mosquitto_only]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SITE = "prodhjem"
FALLS = [f"fall-{i:03d}" for i in range(20)]
FLOOD = "flood-valid"
GARBAGE = "flood-garbage"
RADAR = "radar-000"
"""A radar whose payload has no seq: only the retain flag tells a replay from a new fall."""
LATENCY_BOUND_S = 10.0
"""Generous on a shared 2-core machine; the figures, not this bound, say how fast."""


def site_file(path: Path) -> Path:
    """Twenty fall sensors that each fall once, and two fall sensors that flood."""
    devices = [*FALLS, FLOOD, GARBAGE, RADAR]
    rooms = [f"a-{i:03d}" for i in range(len(devices))]
    doc = {
        "site": SITE,
        "name": "Production fault home",
        "locale": "en",
        "wards": [{"id": "a", "name": "Ward A", "rooms": rooms}],
        "residents": [{"id": f"r-{i:03d}", "room": room} for i, room in enumerate(rooms)],
        "devices": [
            {
                "id": device,
                "kind": "fall",
                "model": "mmwave-radar" if device == RADAR else "carehub-v1",
                "room": rooms[i],
                "heartbeat_seconds": 3600,
            }
            for i, device in enumerate(devices)
        ],
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def fall(device: str) -> bytes:
    return json.dumps({"v": 1, "ts": _now(), "seq": 1, "type": "fall", "confidence": 0.9}).encode()


def up(device: str) -> str:
    return f"carehub/{SITE}/devices/{device}/up"


@dataclass
class Stack:
    """The generated broker and the hub's processes in one layout, sharing one SQLite file."""

    tmp: Path
    broker: ProductionBroker
    layout: str
    env: dict[str, str]
    procs: dict[str, Proc] = field(default_factory=dict)

    @property
    def db(self) -> Path:
        return Path(self.env["CAREHUB_DB"])

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        try:
            with sqlite3.connect(self.db, timeout=60) as conn:
                return conn.execute(sql).fetchall()
        except sqlite3.OperationalError:
            return []

    def alarms(self) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        for (body,) in self.query("SELECT body FROM alarms"):
            alarm = json.loads(body)
            key = (alarm["rule"], alarm["device_id"])
            out[key] = out.get(key, 0) + 1
        return out

    def wait_ready(self, timeout: float = 40) -> None:
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

    def make(layout: str, failpoints: dict[str, str] | None = None) -> Stack:
        site = site_file(tmp_path / "site.yaml")
        broker = ProductionBroker(load_site(site), tmp_path / "broker")
        env = carehub_env(
            CAREHUB_SITE_FILE=str(site),
            CAREHUB_DB=str(tmp_path / "state" / "carehub.db"),
            CAREHUB_LOG_LEVEL="WARNING",
            CAREHUB_SECRET_KEY=secrets.token_urlsafe(32),
            CAREHUB_HTTP_PORT="0",
        )
        stack = Stack(tmp_path, broker, layout, env)
        stacks.append(stack)
        parts = {"all": broker.hub_env()} if layout == "one" else {}
        if layout == "parts":
            parts = {
                p: {"CAREHUB_MQTT_URL": broker.part_url(p)} for p in ("gateway", "rules", "api")
            }
        for part, extra in parts.items():
            part_env = {**env, **extra}
            armed = (failpoints or {}).get(part)
            if armed:
                part_env["CAREHUB_FAILPOINTS"] = armed
            stack.procs[part] = Proc(["run", part], part_env, tmp_path / f"{part}.log")
        stack.wait_ready()
        return stack

    yield make
    for stack in stacks:
        for proc in stack.procs.values():
            if proc.alive:
                proc.stop()
        stack.broker.stop()


def record(figures: dict[str, Any]) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    with (ARTIFACTS / "faults.jsonl").open("a") as out:
        out.write(json.dumps(figures) + "\n")
    print(json.dumps(figures))  # the figures belong in the test output too


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Falls:
    """Each fall sensor falls once, one every `every_s`, under its own login; the alarms'
    publish times on the broker give fall → alarm latency."""

    def __init__(self, stack: Stack, every_s: float = 0.5) -> None:
        self.stack = stack
        self.every_s = every_s
        self.sent: dict[str, float] = {}
        self.observer, self.seen = stack.broker.observer(f"carehub/{SITE}/alarms/#")
        self.thread = threading.Thread(target=self._run, name="falls")

    def start(self) -> Falls:
        self.thread.start()
        return self

    def _run(self) -> None:
        for device in FALLS:
            client = self.stack.broker.client(device)
            self.sent[device] = time.monotonic()
            client.publish(up(device), fall(device), 1).wait_for_publish(30)
            close(client)
            time.sleep(self.every_s)

    def wait(self, timeout: float = 120) -> dict[str, float]:
        """Fall → first alarm publish per device, once every fall's alarm is seen."""
        self.thread.join(timeout)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if set(self.latencies()) >= set(FALLS):
                break
            time.sleep(0.1)
        close(self.observer)
        return self.latencies()

    def latencies(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for at, alarm in list(self.seen):
            device = alarm.get("device_id")
            if alarm.get("rule") == "fall" and device in self.sent and device not in out:
                out[device] = at - self.sent[device]
        return out


def figures_of(
    stack: Stack, name: str, latencies: dict[str, float], **extra: Any
) -> dict[str, Any]:
    alarms = stack.alarms()
    expected = {("fall", d) for d in FALLS}
    values = list(latencies.values()) or [float("nan")]
    return {
        "scenario": name,
        "layout": stack.layout,
        "broker": {
            k: stack.broker.setting(k)
            for k in ("autosave_interval", "max_inflight_messages", "max_queued_messages")
        },
        "expected": len(expected),
        "lost": len(expected - set(alarms)),
        "duplicated": sum(n - 1 for n in alarms.values() if n > 1),
        "fall_to_alarm_p50_s": round(statistics.median(values), 3),
        "fall_to_alarm_p99_s": round(percentile(values, 0.99), 3),
        "fall_to_alarm_max_s": round(max(values), 3),
        "fall_to_alarm_s": [round(latencies[d], 3) for d in FALLS if d in latencies],
        **extra,
    }


def check(figures: dict[str, Any], latencies: dict[str, float]) -> None:
    record(figures)
    assert figures["lost"] == 0, figures
    assert figures["duplicated"] == 0, figures
    assert set(latencies) == set(FALLS), figures


def check_latency(figures: dict[str, Any]) -> None:
    """Last, after every count: the bound is known to break under a flood (docs/handover.md,
    "Urgent lane": falls wait in the broker's queue behind the flood), shown as xfail."""
    if figures["fall_to_alarm_max_s"] > LATENCY_BOUND_S:
        pytest.xfail(f"fall → alarm {figures['fall_to_alarm_max_s']} s > {LATENCY_BOUND_S} s")


FLOOD_S = 15.0
FLOOD_RATE = 10_000
"""msg/s of the fast flooder: the target of docs/handover.md."""
FLOOD_FAST_MAX = 70_000
"""7 s at FLOOD_RATE. With the garbage flood's FLOOD_MAX, fewer than the generated config's
`max_queued_messages` (100,000), so no fall can be dropped by the broker whatever the hub's
speed: a lost fall here is the hub's. Past that bound the broker drops (docs/handover.md)."""
FLOOD_MAX = 20_000
FLOOD_RUN = 65_000
"""At most this many lines to one `mosquitto_pub -l`: at QoS 1 it stops after 65,535."""
MOSQUITTO_PUB = shutil.which("mosquitto_pub") or "/usr/bin/mosquitto_pub"


@pytest.mark.timeout(400)
@pytest.mark.parametrize("flooders", ["one_device", "valid_and_garbage"])
@pytest.mark.parametrize("layout", ["one", "parts"])
def test_a_flood_does_not_hold_up_other_falls(
    make_stack: Callable[..., Stack], layout: str, flooders: str
) -> None:
    """(a) One device floods 70,000 heartbeats at 10k msg/s (`one_device`: the target of
    docs/handover.md) and, in `valid_and_garbage`, another 20,000 garbage messages as fast as
    a Python paho client publishes QoS 1 (a client that takes about a core of this machine
    itself), while twenty other devices fall, one every 0.5 s: together within the broker's
    queue bound, so every fall must alarm, and each flooding device raises its technical
    alarm once."""
    stack = make_stack(layout)
    devices = [FLOOD, GARBAGE] if flooders == "valid_and_garbage" else [FLOOD]
    sent = {FLOOD: 0, GARBAGE: 0}
    took = {FLOOD: 0.0, GARBAGE: 0.0}
    stop = threading.Event()

    def flood(device: str, body: Callable[[int], bytes]) -> None:
        client = stack.broker.client(device)
        started = time.monotonic()
        seq = queued = 0
        last = None
        while not stop.is_set() and time.monotonic() - started < FLOOD_S and seq < FLOOD_MAX:
            seq += 1
            info = client.publish(up(device), body(seq), 1)
            if info.rc == 0:
                queued, last = queued + 1, info
        if last is not None:  # paho queues ahead of the wire: wait until the broker has all
            last.wait_for_publish(180)
        sent[device] = queued
        took[device] = time.monotonic() - started
        close(client)

    def heartbeat(seq: int) -> bytes:
        body = {"v": 1, "ts": _now(), "seq": seq, "type": "heartbeat", "battery": 90}
        return json.dumps(body).encode()

    def flood_fast(device: str) -> None:
        """Heartbeats at FLOOD_RATE through `mosquitto_pub -l` (C, QoS 1), paced from here:
        one device at the 10k msg/s the target names, which a Python publisher cannot reach
        beside the hub on this machine, and which unpaced (~35k msg/s) outruns any consumer
        of the broker (docs/handover.md, "Urgent lane")."""
        started = time.monotonic()
        queued = 0
        while (
            not stop.is_set() and queued < FLOOD_FAST_MAX and time.monotonic() - started < FLOOD_S
        ):
            pub = subprocess.Popen(
                [MOSQUITTO_PUB, "-h", stack.broker.host, "-p", str(stack.broker.port),
                 "-u", device, "-P", stack.broker.creds[device], "-q", "1",
                 "-t", up(device), "-l"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            assert pub.stdin is not None
            assert pub.stderr is not None
            this_run = 0
            while not stop.is_set() and time.monotonic() - started < FLOOD_S:
                due = min(int((time.monotonic() - started) * FLOOD_RATE), FLOOD_FAST_MAX)
                n = min(due - queued, FLOOD_RUN - this_run)
                if n > 0:
                    lines = (heartbeat(queued + i) + b"\n" for i in range(n))
                    pub.stdin.write(b"".join(lines))
                    pub.stdin.flush()
                    queued, this_run = queued + n, this_run + n
                if this_run >= FLOOD_RUN or queued >= FLOOD_FAST_MAX:
                    break
                time.sleep(0.01)
            pub.stdin.close()
            err = pub.stderr.read()
            pub.stderr.close()
            assert pub.wait(timeout=120) == 0, err
        sent[device] = queued
        took[device] = time.monotonic() - started

    floods = [threading.Thread(target=flood_fast, args=(FLOOD,))]
    if GARBAGE in devices:
        garbage = (GARBAGE, lambda seq: b"\xff garbage %d" % seq)
        floods.append(threading.Thread(target=flood, args=garbage))
    for thread in floods:
        thread.start()
    time.sleep(2)  # the floods are well under way
    try:
        latencies = Falls(stack).start().wait()
    finally:
        stop.set()
        for thread in floods:
            thread.join()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # the floods' technical alarms, once each
        alarms = stack.alarms()
        if all(alarms.get(("device_fault", d)) for d in devices):
            break
        time.sleep(0.5)
    time.sleep(2)  # room for a duplicate to show
    alarms = stack.alarms()
    figures = figures_of(
        stack,
        f"production_flood_{flooders}",
        latencies,
        flood_sent={d: sent[d] for d in devices},
        flood_rate_per_s={d: round(sent[d] / max(took[d], 1e-9)) for d in devices},
        flooding_alarms={d: alarms.get(("device_fault", d), 0) for d in devices},
    )
    check(figures, latencies)
    assert figures["flooding_alarms"] == dict.fromkeys(devices, 1), figures
    check_latency(figures)


@pytest.mark.timeout(300)
def test_a_rules_part_far_slower_than_the_gateway_loses_nothing(
    make_stack: Callable[..., Stack],
) -> None:
    """(b) The rules part takes 0.5 s over every batch (a `sleep` failpoint before its commit)
    while twenty devices fall, one every 0.2 s: the hand-over log holds what the rules part
    has not reached; nothing is dropped, nothing raised twice."""
    stack = make_stack("parts", failpoints={"rules": "rules.before_commit=sleep(500)"})
    latencies = Falls(stack, every_s=0.2).start().wait()
    figures = figures_of(stack, "production_slow_rules", latencies, rules_batch_delay_s=0.5)
    check(figures, latencies)
    check_latency(figures)


class PatientFalls(Falls):
    """Falls whose sensors, like real firmware, retry until the broker acknowledges."""

    def _run(self) -> None:
        for device in FALLS:
            self.sent[device] = time.monotonic()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    client = self.stack.broker.client(device)
                except (AssertionError, OSError):
                    time.sleep(0.2)  # the broker is down: try again, as firmware does
                    continue
                info = client.publish(up(device), fall(device), 1)
                # paho 2 answers None here (is_published() says); it raises when the message
                # was never queued because the connection went meanwhile
                with contextlib.suppress(RuntimeError, ValueError):
                    info.wait_for_publish(5)
                acknowledged = info.is_published()
                close(client)
                if acknowledged:
                    break
            time.sleep(self.every_s)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGKILL"])
def test_a_broker_restart_in_the_middle_of_falls_loses_none(
    make_stack: Callable[..., Stack], sig: str
) -> None:
    """(c) The broker stops (SIGTERM saves; SIGKILL as a power cut does not) while falls
    arrive and the gateway holds unacknowledged ones; it comes back 1 s later. Every fall
    the broker acknowledged to its sensor alarms once."""
    import signal

    stack = make_stack("one")
    # A broker that has run a while has saved the hub's sessions (autosave every 30 s);
    # SIGUSR1 makes this one save now. Within 30 s of a hub's very first subscription a
    # power cut would lose its session, and with it what arrives before the hub is back
    # (docs/deployment.md, "Your own broker"; the hub logs it as a lost session).
    stack.broker.save()
    falls = PatientFalls(stack, every_s=0.25)
    falls.start()
    time.sleep(2)  # a few falls are through, more are on their way
    stack.broker.stop(getattr(signal, sig))
    time.sleep(1)
    stack.broker.start()
    falls.thread.join(120)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and {("fall", d) for d in FALLS} - set(stack.alarms()):
        time.sleep(0.2)
    time.sleep(2)  # room for a duplicate to show
    raised = _raised_after_fall(stack, falls.sent)
    figures = figures_of(stack, f"production_broker_{sig.lower()}", raised)
    check(figures, raised)
    check_latency(figures)


def _raised_after_fall(stack: Stack, sent: dict[str, float]) -> dict[str, float]:
    """Fall → alarm from the alarm store (the observer's connection does not survive a broker
    restart): raised_at is device time, sent is when the sensor first tried."""
    offset = time.time() - time.monotonic()
    out: dict[str, float] = {}
    for (body,) in stack.query("SELECT body FROM alarms"):
        alarm = json.loads(body)
        device = alarm["device_id"]
        if alarm["rule"] == "fall" and device in sent:
            raised = datetime.fromisoformat(alarm["raised_at"].replace("Z", "+00:00"))
            out[device] = max(0.0, raised.timestamp() - (sent[device] + offset))
    return out


@pytest.mark.timeout(300)
def test_a_retained_fall_replayed_after_a_restart_raises_nothing(
    make_stack: Callable[..., Stack],
) -> None:
    """(d) A radar (no seq in its payload) publishes its fall retained; the alarm is raised,
    and staff resolve it. The hub restarts: the broker replays the retained message to the new
    subscription, and no new fall is raised (docs/devices.md, "Retained messages"). A live
    fall afterwards still alarms, so the test cannot pass by the radar being ignored."""
    stack = make_stack("one")
    radar = stack.broker.client(RADAR)
    body = json.dumps({"presence": 1, "movement": 0, "fall_state": 1}).encode()
    radar.publish(up(RADAR), body, 1, retain=True).wait_for_publish(10)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not stack.alarms().get(("fall", RADAR)):
        time.sleep(0.1)
    first = stack.alarms().get(("fall", RADAR), 0)
    hub = stack.procs["all"]
    hub.stop()
    alarms = AlarmService.open(stack.db)
    try:
        (alarm,) = [a for a in alarms.list_alarms("active") if a["rule"] == "fall"]
        alarms.resolve(alarm["alarm_id"], "sofie", Outcome.ASSISTED)
    finally:
        alarms.close()
    stack.procs["all"] = Proc(["run", "all"], hub.env, stack.tmp / "all-again.log")
    stack.wait_ready()
    time.sleep(3)  # the retained replay has arrived and been judged
    replayed = stack.alarms().get(("fall", RADAR), 0) - first
    clear = json.dumps({"presence": 1, "movement": 1, "fall_state": 0}).encode()
    radar.publish(up(RADAR), clear, 1, retain=True).wait_for_publish(10)
    radar.publish(up(RADAR), body, 1).wait_for_publish(10)  # a new, live fall
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and stack.alarms().get(("fall", RADAR), 0) < first + 1:
        time.sleep(0.1)
    close(radar)
    figures = {
        "scenario": "production_retained_replay",
        "layout": stack.layout,
        "expected": 2,
        "raised_before_restart": first,
        "replayed_as_new": replayed,
        "live_fall_after": stack.alarms().get(("fall", RADAR), 0) - first - replayed,
    }
    figures["lost"] = (1 - min(first, 1)) + (1 - min(figures["live_fall_after"], 1))
    figures["duplicated"] = replayed
    record(figures)
    assert (first, replayed, figures["live_fall_after"]) == (1, 0, 1), figures
