"""The rules service against a real Mosquitto: events in through the hand-over log, retained
alarms out, a burst, a webhook escalation, and a kill -9 of the rules process in the middle of
a night."""

from __future__ import annotations

import json
import os
import select
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from app.broker import LocalBroker, MosquittoBroker
from carehub.clock import FakeClock
from carehub.mqtt import Protocol
from carehub.settings import MqttTarget
from carehub.site import Escalation, Site, SiteIndex
from services.alarms.notify import WebhookNotifier
from services.alarms.service import AlarmService
from services.alarms.store import AlarmStore
from services.rules.service import RulesConfig, RulesService
from tests.conftest import ROOT
from tests.services.conftest import NIGHT, QUIET, make_event_factory
from tests.support.handover import hand_over
from tests.support.mqttprobe import MqttProbe

SITE = "testhjem"


class Sink:
    """A real local HTTP server that records POSTs; answers with the queued statuses."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.bodies: list[tuple[dict[str, Any], dict[str, str]]] = []
        self.statuses = list(statuses or [])
        self.got = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with sink.got:
                    sink.bodies.append((body, dict(self.headers)))
                    status = sink.statuses.pop(0) if sink.statuses else 204
                    sink.got.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/page"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait(self, count: int, timeout: float = 10) -> list[tuple[dict[str, Any], dict[str, str]]]:
        deadline = time.monotonic() + timeout
        with self.got:
            while len(self.bodies) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"{len(self.bodies)}/{count} POSTs arrived"
                self.got.wait(left)
            return list(self.bodies)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink() -> Iterator[Sink]:
    s = Sink()
    yield s
    s.close()


def retained(broker: LocalBroker, topic_filter: str, protocol: Protocol) -> list[bytes]:
    """What a newly connecting subscriber gets: the retained messages only."""
    fresh = MqttProbe(broker.host, broker.port, protocol=protocol)
    try:
        return [m.payload for m in fresh.retained(topic_filter)]
    finally:
        fresh.close()


class Running:
    """A RulesService on the session broker, with its store, clock and API."""

    def __init__(self, broker: LocalBroker, index: SiteIndex, db: Path, protocol: Protocol) -> None:
        self.prefix = f"t{uuid.uuid4().hex[:8]}"
        self.clock = FakeClock(NIGHT)
        self.db = db
        self.store = AlarmStore(db)
        self.api = AlarmService(self.store, self.clock, poll_s=0.02)
        config = RulesConfig(
            target=MqttTarget(broker.host, broker.port),
            prefix=self.prefix,
            client_id=f"rules-{self.prefix}",
            protocol=protocol,
            tick_s=0.05,
            engine=QUIET,
        )
        self.service = RulesService(config, index, self.store, self.clock, self.api)
        self.service.start()
        assert self.service.wait_ready(10)
        self.make = make_event_factory(index)

    @property
    def alarms_filter(self) -> str:
        return f"{self.prefix}/{SITE}/alarms/#"

    def close(self) -> None:
        self.service.stop()
        self.api.close()
        self.store.close()


@pytest.mark.broker
@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_fall_event_becomes_a_retained_alarm_cleared_on_resolve(
    broker: LocalBroker, probe: MqttProbe, test_index: SiteIndex, tmp_path: Path, protocol: Protocol
) -> None:
    hub = Running(broker, test_index, tmp_path / "carehub.db", protocol)
    try:
        probe.subscribe(hub.alarms_filter)
        hand_over(hub.db, hub.make("fall-a1", "fall", NIGHT, confidence=0.93))
        (live,) = probe.wait_for(hub.alarms_filter)
        alarm = live.json()
        assert (alarm["rule"], alarm["state"], alarm["resident_id"]) == ("fall", "raised", "r-001")
        assert live.topic == f"{hub.prefix}/{SITE}/alarms/{alarm['alarm_id']}"
        (kept,) = retained(broker, hub.alarms_filter, protocol)
        assert json.loads(kept)["alarm_id"] == alarm["alarm_id"]

        hub.api.acknowledge(alarm["alarm_id"], "anna")
        probe.wait_for(hub.alarms_filter, lambda m: b'"acknowledged"' in m.payload)
        hub.api.resolve(alarm["alarm_id"], "anna", "assisted")
        probe.wait_for(hub.alarms_filter, lambda m: m.payload == b"")
        ends = [m.json() for m in probe.messages if m.payload and b'"resolved"' in m.payload]
        assert ends[-1]["outcome"] == "assisted"
        assert retained(broker, hub.alarms_filter, protocol) == []
    finally:
        hub.close()


@pytest.mark.broker
def test_burst_of_100_falls_is_one_alarm_with_count_100(
    broker: LocalBroker,
    probe: MqttProbe,
    test_index: SiteIndex,
    tmp_path: Path,
    mqtt_protocol: Protocol,
) -> None:
    hub = Running(broker, test_index, tmp_path / "carehub.db", mqtt_protocol)
    try:
        probe.subscribe(hub.alarms_filter)
        for i in range(100):  # one transaction each, as the gateway's commits might be
            hand_over(
                hub.db, hub.make("fall-b1", "fall", NIGHT + timedelta(seconds=i), confidence=0.9)
            )
        probe.wait_for(hub.alarms_filter, lambda m: b'"count":100' in m.payload, timeout=10)
        (alarm,) = hub.api.list_alarms("all")
        assert alarm["count"] == 100
        assert len(hub.store.occurrences(alarm["alarm_id"])) == 100
        (kept,) = retained(broker, hub.alarms_filter, mqtt_protocol)
        assert json.loads(kept)["count"] == 100
        metrics = hub.service.metrics()
        assert metrics["carehub_rules_events_total"] == 100
        assert metrics['carehub_alarms{state="raised"}'] == 1
        assert hub.service.connected
    finally:
        hub.close()


@pytest.mark.broker
def test_an_event_that_fails_costs_only_itself_and_its_batch_is_applied_once(
    broker: LocalBroker,
    probe: MqttProbe,
    test_index: SiteIndex,
    tmp_path: Path,
    mqtt_protocol: Protocol,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A batch is applied under one savepoint; when one event fails after writing (a bug in
    a rule), the batch is rolled back and applied again event by event: the bad event leaves
    nothing behind, the others raise their alarms once, none twice."""
    hub = Running(broker, test_index, tmp_path / "carehub.db", mqtt_protocol)
    try:
        probe.subscribe(hub.alarms_filter)
        engine = hub.service.engine
        apply = engine.apply
        poison = hub.make("diaper-r001", "saturation", NIGHT + timedelta(seconds=1), level=95)

        def failing_apply(event: Any) -> None:
            apply(event)  # its diaper alarm is written...
            if event.event_id == poison.event_id:
                raise RuntimeError("a bug in a rule")  # ...and must be undone

        monkeypatch.setattr(engine, "apply", failing_apply)
        hand_over(
            hub.db,
            hub.make("fall-a1", "fall", NIGHT, confidence=0.93),
            poison,
            hub.make("fall-b1", "fall", NIGHT + timedelta(seconds=2), confidence=0.9),
        )
        probe.wait_for(hub.alarms_filter, count=2)
        alarms = hub.api.list_alarms("all")
        assert sorted((a["rule"], a["count"]) for a in alarms) == [("fall", 1), ("fall", 1)]
        for alarm in alarms:
            assert len(hub.store.occurrences(alarm["alarm_id"])) == 1
        metrics = hub.service.metrics()
        assert metrics["carehub_rules_batch_retries_total"] == 1
        assert metrics["carehub_rules_events_total"] == 3
        with sqlite3.connect(hub.db) as conn:
            assert conn.execute("SELECT count(*) FROM handover").fetchone()[0] == 0
            seen = {r[0] for r in conn.execute("SELECT event_id FROM alarm_seen_events")}
        assert poison.event_id not in seen  # rolled back: a redelivery would be applied
        assert len(seen) == 2
    finally:
        hub.close()


@pytest.mark.broker
def test_escalation_posts_to_the_webhook(
    broker: LocalBroker,
    probe: MqttProbe,
    test_site: Site,
    tmp_path: Path,
    mqtt_protocol: Protocol,
    sink: Sink,
) -> None:
    index = SiteIndex(
        test_site.model_copy(
            update={"escalation": Escalation(target={"kind": "webhook", "url": sink.url})}
        )
    )
    hub = Running(broker, index, tmp_path / "carehub.db", mqtt_protocol)
    try:
        hand_over(hub.db, hub.make("fall-b1", "fall", NIGHT, confidence=0.9))
        hub.clock.advance(timedelta(minutes=2))
        ((body, headers),) = sink.wait(1)
        assert (body["state"], body["rule"], body["device_id"]) == ("escalated", "fall", "fall-b1")
        assert headers["X-CareHub-Reason"] == "escalated"
        assert body["escalated_at"] == "2026-11-22T22:02:00.000000Z"
    finally:
        hub.close()


def test_webhook_retries_server_errors_but_not_refusals() -> None:
    sink = Sink(statuses=[503, 500, 200, 400])
    notifier = WebhookNotifier(sink.url, backoff_s=(0.01, 0.01, 0.01))
    try:
        notifier.submit("escalated", {"alarm_id": "a-1"})
        sink.wait(3)
        notifier.submit("escalated", {"alarm_id": "a-2"})
        sink.wait(4)
        notifier.close()
        assert (notifier.delivered, notifier.failed) == (1, 1)
        assert [b["alarm_id"] for b, _h in sink.bodies] == ["a-1", "a-1", "a-1", "a-2"]
    finally:
        sink.close()


def test_webhook_never_blocks_the_caller() -> None:
    """A receiver that does not answer costs the rules loop nothing."""
    notifier = WebhookNotifier("http://127.0.0.1:9/none", timeout_s=0.2, backoff_s=(0.01,))
    started = time.perf_counter()
    for i in range(20):
        notifier.submit("escalated", {"alarm_id": f"a-{i}"})
    assert time.perf_counter() - started < 0.1
    notifier.close(timeout=10)
    assert notifier.failed == 20


# --- kill -9 ---------------------------------------------------------------------------------

FAST_SITE = """
escalation: {high_minutes: 0.1, reminder_high_minutes: null}
rules: {dose_missed: {window_minutes: 0.1}}
"""
"""The test site with a 6 s escalation and a 6 s dose window, so timers outlive the kill."""


class RulesProcess:
    """`python -m services.rules` as its own process, to kill."""

    def __init__(self, site_file: Path, db: Path, broker: MosquittoBroker, prefix: str) -> None:
        env = {**os.environ, "CAREHUB_LOG_LEVEL": "WARNING"}
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "services.rules", "--site", str(site_file), "--db", str(db),
                "--mqtt-url", f"mqtt://{broker.host}:{broker.port}", "--prefix", prefix,
                "--tick", "0.1", "--client-id", f"rules-{prefix}",
            ],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 20)
        line = self.proc.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            self.proc.kill()
            _out, err = self.proc.communicate()
            self._closed(0)
            pytest.fail(f"rules process not ready: {line!r} {err.decode()[-2000:]}")

    def _closed(self, code: int) -> int:
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        return code

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self._closed(self.proc.wait(10))

    def terminate(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self._closed(self.proc.wait(20))


@pytest.mark.broker
@pytest.mark.mosquitto_only
def test_kill_9_loses_nothing_and_duplicates_nothing(
    mosquitto: MosquittoBroker, test_site: Site, tmp_path: Path
) -> None:
    site_file = tmp_path / "site.yaml"
    site_file.write_text((ROOT / "sites" / "test.yaml").read_text() + FAST_SITE)
    db = tmp_path / "carehub.db"
    prefix = f"k{uuid.uuid4().hex[:8]}"
    alarms_filter = f"{prefix}/{SITE}/alarms/#"
    make = make_event_factory(SiteIndex(test_site))
    probe = MqttProbe(mosquitto.host, mosquitto.port)
    probe.subscribe(alarms_filter)
    store = AlarmStore(db)
    rules = RulesProcess(site_file, db, mosquitto, prefix)
    try:
        now = datetime.now(UTC)
        falls = [
            make("fall-b1", "fall", now + timedelta(seconds=i), confidence=0.9) for i in range(5)
        ]
        hand_over(db, falls[0])
        hand_over(db, make("med-r001", "dose_due", now, dose_id="night"))
        probe.wait_for(alarms_filter, lambda m: b'"fall"' in m.payload)
        deadline = time.monotonic() + 5
        while store.get_timer("dose:med-r001:night") is None:  # the dose_due is committed
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert {t.kind for t in store.timers()} >= {"escalate", "dose"}

        rules.kill9()  # with an open alarm, an escalation and a dose window pending
        for event in [falls[0], *falls[1:]]:  # a redelivered duplicate, and 4 new repeats
            hand_over(db, event)
        rules = RulesProcess(site_file, db, mosquitto, prefix)

        probe.wait_for(alarms_filter, lambda m: b'"dose_missed"' in m.payload, timeout=15)
        probe.wait_for(
            alarms_filter,
            lambda m: b'"escalated"' in m.payload and b'"count":5' in m.payload,
            timeout=15,
        )
        active = store.list_alarms(active_only=True)
        assert sorted(a.rule for a in active) == ["dose_missed", "fall"]
        (fall,) = [a for a in active if a.rule == "fall"]
        assert (fall.count, fall.state.value) == (5, "escalated")
        changes = store.changes_after(0)
        assert [c.reason for c in changes if c.alarm_id == fall.alarm_id].count("escalated") == 1
        assert len([c for c in changes if c.reason == "raised"]) == 2

        # the web app in this (another) process acknowledges; the rules process publishes it
        AlarmService(store).acknowledge(fall.alarm_id, "anna")
        probe.wait_for(alarms_filter, lambda m: b'"acknowledged_by":"anna"' in m.payload)
        assert rules.terminate() == 0
    finally:
        if rules.proc.poll() is None:
            rules.kill9()
        probe.close()
        store.close()


@pytest.mark.broker
def test_bed_exit_raises_and_resolves_on_a_real_broker_in_seconds(
    broker: LocalBroker, probe: MqttProbe, test_site: Site, tmp_path: Path
) -> None:
    """`bed_exit` at 0.05 min (3 s) on the hub's real-time clock: out of bed, the alarm comes
    by itself, back in bed resolves it, and the broker's retained alarm is cleared."""
    from carehub.clock import ScaledClock
    from carehub.site import BedExitRule, Rules

    index = SiteIndex(
        test_site.model_copy(update={"rules": Rules(bed_exit=BedExitRule(minutes=0.05))})
    )
    prefix = f"t{uuid.uuid4().hex[:8]}"
    clock = ScaledClock(NIGHT, 1)
    db = tmp_path / "carehub.db"
    store = AlarmStore(db)
    api = AlarmService(store, clock, poll_s=0.02)
    config = RulesConfig(
        target=MqttTarget(broker.host, broker.port),
        prefix=prefix,
        client_id=f"rules-{prefix}",
        tick_s=0.05,
        engine=QUIET,
    )
    service = RulesService(config, index, store, clock, api)
    service.start()
    try:
        assert service.wait_ready(10)
        make = make_event_factory(index)
        alarms = f"{prefix}/{SITE}/alarms/#"
        probe.subscribe(alarms)
        handed = time.monotonic()  # the clock runs at real speed from here on
        up = clock.now()
        hand_over(db, make("bed-r001", "out_of_bed", up))
        (raised,) = probe.wait_for(alarms, lambda m: b'"bed_exit"' in m.payload, timeout=10)
        assert raised.at - handed >= 3.0  # not before its time: received 3 s on, not sooner
        alarm = raised.json()
        assert (alarm["rule"], alarm["state"], alarm["resident_id"]) == (
            "bed_exit",
            "raised",
            "r-001",
        )
        waited = datetime.fromisoformat(alarm["raised_at"].replace("Z", "+00:00")) - up
        assert timedelta(seconds=3) <= waited < timedelta(seconds=4)
        hand_over(db, make("bed-r001", "in_bed", clock.now()))
        probe.wait_for(alarms, lambda m: m.payload == b"", timeout=10)
        (ended,) = [a for a in api.list_alarms("all") if a["rule"] == "bed_exit"]
        assert (ended["state"], ended["resolved_by"]) == ("resolved", "sensor")
    finally:
        service.stop()
        api.close()
        store.close()
