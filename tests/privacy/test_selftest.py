"""The admin's self-test through the real hub: api → Mosquitto → gateway → canonical event →
rules engine → alarm store → the board's SSE stream; and each stage failing on its own."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.hub import Hub
from carehub.clock import FakeClock
from carehub.mqtt import ClientOptions
from carehub.settings import MqttTarget
from carehub.site import SiteIndex
from gateway.pipeline import Ingestor
from gateway.selftest import selftest_event, selftest_event_id
from gateway.store.sqlite import SqliteEventStore
from services.alarms.store import AlarmStore
from services.privacy.selftest import SelfTest
from services.rules.engine import RulesEngine, self_test_alarm_id
from tests.privacy.conftest import api, wait_until
from tests.services.conftest import QUIET
from tests.support.server import ServerThread
from tests.web.conftest import bearer

AT = datetime(2026, 11, 22, 22, 0, tzinfo=UTC)


def _sse_alarms(base: str, into: list[dict[str, Any]], stop: threading.Event) -> None:
    """Collect the board's `alarm` events until told to stop."""
    headers = bearer(base, "sofie")
    with (
        httpx.Client(timeout=httpx.Timeout(10, read=5)) as client,
        client.stream("GET", f"{base}/api/alarms/stream", headers=headers) as r,
    ):
        event = ""
        for line in r.iter_lines():
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event == "alarm":
                into.append(json.loads(line.split(":", 1)[1]))
            if stop.is_set():
                return


@pytest.mark.broker
def test_selftest_passes_end_to_end_reaches_the_board_and_is_resolved(
    live_hub: tuple[Hub, ServerThread],
) -> None:
    hub, server = live_hub
    seen: list[dict[str, Any]] = []
    stop = threading.Event()
    board = threading.Thread(target=_sse_alarms, args=(server.url, seen, stop), daemon=True)
    board.start()
    wait_until(lambda: hub.alarms._listeners, what="the board's SSE subscription")
    r = api(server.url, "POST", "/api/admin/selftest")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True
    assert 0 < body["elapsed_ms"] < 10_000
    alarm = hub.alarms.get(body["alarm_id"])
    assert (alarm["rule"], alarm["priority"], alarm["kind"]) == ("self_test", "low", "technical")
    assert alarm["resident_id"] is None
    assert (alarm["state"], alarm["outcome"], alarm["resolved_by"]) == (
        "resolved",
        "no_action_needed",
        "ida",
    )
    # the board heard it raised and ended, over SSE
    wait_until(
        lambda: (
            {e["type"] for e in seen if e["alarm"]["alarm_id"] == body["alarm_id"]}
            >= {"new", "end"}
        ),
        what="the self-test alarm on the board's stream",
    )
    stop.set()
    board.join(timeout=10)  # it leaves at the next ping (every 3 s)
    assert not board.is_alive()
    actions = [(e.actor, e.action) for e in hub.alarms.audit_log()]
    assert ("ida", "resolve") in actions
    assert ("ida", "self_test") in actions
    # the self-test is not care: it is neither stored as an event nor in a report
    assert hub.gateway.ingestor.metrics()["carehub_gateway_selftests_total"] == 1
    report = api(server.url, "GET", "/api/reports/utilisation", user="mads").json()
    assert "self_test" not in report["alarms"]["by_rule"]


@pytest.mark.broker
def test_selftest_names_the_stage_that_failed(live_hub: tuple[Hub, ServerThread]) -> None:
    hub, server = live_hub
    privacy = server.app.state.ctx.privacy
    privacy.selftest.timeout_s = 1.5  # a failing stage otherwise takes the full 10 s
    # the rules engine is down: the gateway still makes the event, nobody raises the alarm
    hub.rules.stop()
    r = api(server.url, "POST", "/api/admin/selftest")
    assert r.status_code == 504
    assert r.json()["ok"] is False
    assert r.json()["stage"] == "no_alarm"
    # the gateway is down too: the request reaches the broker, no event comes of it
    hub.gateway.stop()
    r = api(server.url, "POST", "/api/admin/selftest")
    assert (r.status_code, r.json()["stage"]) == (504, "no_event")
    failures = [e.detail["stage"] for e in hub.alarms.audit_log() if e.action == "self_test"]
    assert failures == ["no_alarm", "no_event"]


@pytest.mark.broker
def test_selftest_without_a_broker_is_not_published(live_hub: tuple[Hub, ServerThread]) -> None:
    from app.hub import _BrokerWatch

    hub, _server = live_hub
    nowhere = _BrokerWatch(MqttTarget("127.0.0.1", 1), ClientOptions(client_id="carehub-api"))
    test = SelfTest(nowhere, hub.alarms, "testhjem", "carehub", timeout_s=1.0)
    result = test.run("ida")
    assert (result.ok, result.stage) == (False, "not_published")
    assert result.to_json()["stage"] == "not_published"
    assert result.elapsed_ms < 1000  # nothing to wait for without a connection


def test_gateway_makes_a_system_event_it_does_not_store(
    tmp_path: Path, test_index: SiteIndex
) -> None:
    store = SqliteEventStore(tmp_path / "hub.db")
    ingestor = Ingestor(test_index, store)
    topic = "carehub/testhjem/hub/api/selftest"
    assert topic in ingestor.topics.subscriptions()
    body = json.dumps({"selftest_id": "abc12345", "requested_by": "ida"}).encode()
    result = ingestor.ingest(topic, body, AT)
    (event,) = result.events
    assert (event.kind, event.type, event.device_id) == ("system", "self_test", "hub")
    assert (event.resident_id, event.room, event.ts) == (None, None, AT)
    assert event.event_id == selftest_event_id("testhjem", "abc12345")
    assert event.topic("carehub") == "carehub/testhjem/events/system/hub"
    bad = ingestor.ingest(topic, b'{"selftest_id": "x; DROP"}', AT)
    assert bad.rejected
    assert bad.reason == "invalid_field"
    ingestor.flush()
    assert store.query_events("testhjem", AT - timedelta(days=1), AT + timedelta(days=1)) == []
    assert [d.reason for d in store.dead_letters()] == ["invalid_field"]
    ingestor.close()


def test_rules_engine_raises_one_low_alarm_per_selftest_and_nothing_else(
    tmp_path: Path, test_index: SiteIndex
) -> None:
    alarms = AlarmStore(tmp_path / "hub.db")
    engine = RulesEngine(test_index, alarms, FakeClock(AT), QUIET)
    body = json.dumps({"selftest_id": "abc12345", "requested_by": "ida"}).encode()
    event = selftest_event("testhjem", body, AT)
    (change,) = engine.handle(event)
    assert change.alarm_id == self_test_alarm_id("testhjem", event.event_id)
    assert (change.alarm["rule"], change.alarm["priority"]) == ("self_test", "low")
    assert engine.handle(event) == []  # a redelivery is the same test
    assert alarms.timers() == []  # no silence supervision of a device called 'hub'
    second = selftest_event("testhjem", body.replace(b"abc12345", b"def67890"), AT)
    assert len(engine.handle(second)) == 1  # each test its own alarm
    alarms.close()
