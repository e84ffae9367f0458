"""The per-resident monitoring switch: its durable, audited history; the rules engine's view of
it (in-process and across processes, through the shared SQLite file); and the live hub: off →
a fall raises nothing, on → it alarms, while the staff screens say "monitoring off"."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from app.broker import LocalBroker
from app.hub import Hub
from carehub import heartbeat
from carehub.clock import FakeClock
from carehub.mqtt import Protocol
from carehub.site import SiteIndex, load_site
from services.alarms.store import AlarmStore
from services.privacy.monitoring import MonitoringStore
from services.rules.engine import RulesEngine
from services.rules.monitoring import CACHE_S, MonitoringSwitch
from tests.conftest import ROOT
from tests.privacy.conftest import api, publish_fall, wait_until
from tests.services.conftest import NIGHT, QUIET, make_event_factory
from tests.support.handover import hand_over
from tests.support.mqttprobe import MqttProbe
from tests.support.procs import Proc, carehub_env
from tests.support.server import ServerThread
from tests.web.test_auth import _browser_login

AT = datetime(2026, 11, 22, 22, 0, tzinfo=UTC)


def test_switch_history_is_durable_append_only_and_audited(tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    store = MonitoringStore(db, "testhjem")
    with pytest.raises(ValueError, match="needs a reason"):
        store.set("r-001", False, "ida", "   ", AT)
    store.set("r-001", False, "ida", "In hospital", AT)
    store.set("r-001", True, "ida", None, AT + timedelta(days=3))
    store.set("r-002", False, "ida", "Declined sensors", AT + timedelta(days=4))
    store.close()

    again = MonitoringStore(db, "testhjem")  # a restart loses nothing
    states = again.states()
    assert (states["r-001"].enabled, states["r-002"].enabled) == (True, False)
    assert states["r-002"].reason == "Declined sensors"
    assert [(c.enabled, c.actor, c.reason) for c in again.history("r-001")] == [
        (False, "ida", "In hospital"),
        (True, "ida", None),
    ]
    again.close()
    conn = sqlite3.connect(db)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE resident_monitoring SET enabled = 1")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM resident_monitoring")
    audit = conn.execute("SELECT actor, action, detail FROM audit_log ORDER BY id").fetchall()
    conn.close()
    assert [(a, b) for a, b, _ in audit] == [
        ("ida", "monitoring_off"),
        ("ida", "monitoring_on"),
        ("ida", "monitoring_off"),
    ]
    assert '"reason": "In hospital"' in audit[0][2]


def test_the_rules_process_sees_a_switch_flipped_elsewhere_within_its_cache(
    tmp_path: Path,
) -> None:
    db = tmp_path / "hub.db"
    now = [0.0]
    switch = MonitoringSwitch(db, "testhjem", cache_s=1.0, monotonic=lambda: now[0])
    writer = MonitoringStore(db, "testhjem")  # e.g. the web app in its own process
    assert switch("r-001")
    writer.set("r-001", False, "ida", "In hospital", AT)
    now[0] = 0.5
    assert switch("r-001")  # cached: at most `cache_s` stale
    now[0] = 1.0
    assert not switch("r-001")
    assert switch("r-002")
    writer.set("r-001", True, "ida", None, AT)
    now[0] = 2.0
    assert switch("r-001")
    writer.close()
    switch.close()


def test_engine_raises_nothing_for_a_resident_switched_off_but_marks_it(
    tmp_path: Path, test_index: SiteIndex
) -> None:
    store = AlarmStore(tmp_path / "hub.db")
    off = {"r-001", "r-003"}
    engine = RulesEngine(test_index, store, FakeClock(NIGHT), QUIET, lambda r: r not in off)
    make = make_event_factory(test_index)
    fall = make("fall-a1", "fall", NIGHT, confidence=0.9)  # room a-1: r-001 alone
    assert engine.handle(fall) == []
    (mark,) = store.suppressed("r-001")
    assert (mark["rule"], mark["device_id"], mark["event_id"]) == ("fall", "fall-a1", fall.event_id)
    # a shared room's fall has no single resident: it still alarms (r-004 lives there too)
    shared = engine.handle(make("fall-b1", "fall", NIGHT, confidence=0.9))
    assert [c.alarm["rule"] for c in shared] == ["fall"]
    # other residents are not affected
    other = engine.handle(make("diaper-r002", "saturation", NIGHT, level=90))
    assert [c.alarm["resident_id"] for c in other] == ["r-002"]
    # switched on again: alarms again
    off.clear()
    again = engine.handle(make("fall-a1", "fall", NIGHT + timedelta(seconds=30), confidence=0.9))
    assert [(c.type, c.alarm["resident_id"]) for c in again] == [("new", "r-001")]
    store.close()


def test_alarm_open_before_the_switch_still_counts_repeats(
    tmp_path: Path, test_index: SiteIndex
) -> None:
    store = AlarmStore(tmp_path / "hub.db")
    off: set[str] = set()
    engine = RulesEngine(test_index, store, FakeClock(NIGHT), QUIET, lambda r: r not in off)
    make = make_event_factory(test_index)
    (raised,) = engine.handle(make("fall-a1", "fall", NIGHT, confidence=0.9))
    off.add("r-001")
    (repeat,) = engine.handle(make("fall-a1", "fall", NIGHT + timedelta(seconds=30)))
    assert (repeat.reason, repeat.alarm["alarm_id"]) == ("repeat", raised.alarm["alarm_id"])
    assert store.suppressed("r-001") == []
    store.close()


@pytest.mark.broker
def test_switch_through_the_live_hub(
    live_hub: tuple[Hub, ServerThread], broker: LocalBroker, mqtt_protocol: Protocol
) -> None:
    hub, server = live_hub
    base = server.url
    listed = api(base, "GET", "/api/admin/residents").json()
    assert [r["resident_id"] for r in listed] == ["r-001", "r-002", "r-003", "r-004"]
    assert all(r["monitoring"]["enabled"] for r in listed)
    assert "Test Person One" not in str(listed)  # ids only on the API

    path = "/api/admin/residents/r-001/monitoring"
    assert api(base, "POST", path, json={"enabled": False}).status_code == 422
    assert api(base, "POST", path, json={"enabled": False, "reason": " "}).status_code == 422
    unknown = api(base, "POST", "/api/admin/residents/r-999/monitoring", json={"enabled": True})
    assert unknown.status_code == 404
    r = api(base, "POST", path, json={"enabled": False, "reason": "In hospital"})
    assert r.status_code == 200, r.text
    assert (r.json()["enabled"], r.json()["by"], r.json()["reason"]) == (
        False,
        "ida",
        "In hospital",
    )
    r001 = api(base, "GET", "/api/admin/residents").json()[0]["monitoring"]
    assert (r001["enabled"], r001["changed_by"], r001["reason"]) == (False, "ida", "In hospital")

    # the staff screens say so, by name
    staff = _browser_login(base, "sofie")
    try:
        assert "Monitoring off" in staff.get("/").text
        devices = staff.get("/devices").text
        row = devices.split("fall-a1</small>", 1)[1].split("</tr>", 1)[0]
        assert "Test Person One" in row
        assert "Monitoring off" in row
    finally:
        staff.close()

    # off: the fall is stored and marked, and no alarm is raised
    wait_until(lambda: not hub.rules.monitoring("r-001"), what="the rules engine to see it")
    publish_fall(broker, mqtt_protocol, "fall-a1", 1)
    wait_until(lambda: hub.alarms.store.suppressed("r-001"), what="the suppressed fall")
    assert hub.alarms.list_alarms("active") == []
    assert hub.gateway.ingestor.metrics()["carehub_gateway_events_total"] >= 1

    # on again: the next fall alarms (the rules engine looks again within a second)
    r = api(base, "POST", path, json={"enabled": True})
    assert r.status_code == 200
    wait_until(lambda: hub.rules.monitoring("r-001"), what="the rules engine to see the switch")
    publish_fall(broker, mqtt_protocol, "fall-a1", 2)
    (alarm,) = wait_until(lambda: hub.alarms.list_alarms("active"), what="the fall alarm")
    assert (alarm["rule"], alarm["resident_id"]) == ("fall", "r-001")
    assert [
        (e.actor, e.action, e.detail["resident_id"])
        for e in hub.alarms.audit_log()
        if e.action.startswith("monitoring_")
    ] == [("ida", "monitoring_off", "r-001"), ("ida", "monitoring_on", "r-001")]


def test_admin_routes_need_the_admin_role(server: ServerThread) -> None:
    for user in ("sofie", "mads"):
        assert api(server.url, "GET", "/api/admin/residents", user=user).status_code == 403
    assert httpx.get(f"{server.url}/api/admin/residents").status_code == 401
    # a hub without the privacy service (the bare web app) says so instead of failing
    assert api(server.url, "GET", "/api/admin/residents").status_code == 503


@pytest.mark.broker
@pytest.mark.mosquitto_only
def test_a_rules_process_of_its_own_sees_the_switch(tmp_path: Path, broker: LocalBroker) -> None:
    db = tmp_path / "state" / "hub.db"
    env = carehub_env(
        CAREHUB_SITE_FILE=str(ROOT / "sites" / "test.yaml"),
        CAREHUB_DB=str(db),
        CAREHUB_MQTT_URL=f"mqtt://{broker.host}:{broker.port}",
        CAREHUB_MQTT_PREFIX="xproc",
        CAREHUB_LOG_LEVEL="WARNING",
        # the test site's phones get Web Push, whose acknowledge links the rules part signs
        CAREHUB_SECRET_KEY="m" * 40,
    )
    rules = Proc(["run", "rules"], env, tmp_path / "rules.log")
    switch = None
    probe = MqttProbe(broker.host, broker.port)
    try:
        wait_until(
            lambda: heartbeat.read(db.parent / "heartbeats", "rules") == "ok",
            timeout=30,
            what=f"the rules process: {rules.output()}",
        )
        switch = MonitoringStore(db, "testhjem")  # the web app's side, in this process
        switch.set("r-001", False, "ida", "In hospital", datetime.now(UTC))
        make = make_event_factory(SiteIndex(load_site(ROOT / "sites" / "test.yaml")))

        def fall(seq: int) -> str:
            """A stored fall, handed over as the gateway would (docs/handover.md); the
            canonical event on MQTT only wakes the rules process early."""
            event = make("fall-a1", "fall", datetime.now(UTC), seq=seq, confidence=0.9)
            hand_over(db, event)
            probe.publish(event.topic("xproc"), event.model_dump_json())
            return event.event_id

        first = fall(10_001)
        store = AlarmStore(db)
        try:
            wait_until(
                lambda: any(s["event_id"] == first for s in store.suppressed("r-001")),
                what="the other process to suppress the fall",
            )
            switch.set("r-001", True, "ida", None, datetime.now(UTC))
            time.sleep(CACHE_S + 0.2)  # the other process looks again within a second
            second = fall(10_002)
            alarm = wait_until(
                lambda: next(
                    (
                        a
                        for a in store.list_alarms(active_only=True)
                        if a.trigger_event_id == second
                    ),
                    None,
                ),
                what="the fall alarm from the other process",
            )
            assert (alarm.rule, alarm.resident_id) == ("fall", "r-001")
        finally:
            store.close()
    finally:
        probe.close()
        if switch is not None:
            switch.close()
        assert rules.stop() == 0, rules.output()
