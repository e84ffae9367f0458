"""No resident's name leaves the staff pages (docs/security.md): the real hub (gateway + rules on a
real Mosquitto, the web app over real HTTP) runs a night of uplinks from every device in every
vendor format, plus what people do (alarms answered, reports read, a monitoring switch, an
export, a self-test, a refused login, a broken payload). Then every MQTT payload seen on `#`,
every row of every table of the SQLite file (and the file's raw bytes), every file beside it
and every log record (DEBUG) are searched for every resident name of the site file."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import httpx
import pytest

from app.broker import LocalBroker
from app.hub import Hub, HubOptions
from carehub.clock import ScaledClock
from carehub.mqtt import Protocol
from carehub.settings import Settings
from carehub.site import Site
from services.web.app import create_app
from services.web.users import UserStore
from tests.privacy.conftest import api, wait_until
from tests.privacy.night import TZ, Counters, night_uplinks
from tests.support.mqttprobe import MqttProbe, unique_client_prefix
from tests.support.server import ServerThread
from tests.web.conftest import PASSWORD, USERS
from tests.web.test_auth import _browser_login

NIGHT = date(2026, 1, 14)
"""The night the scan replays: a fixed date (no daylight-saving change), not "yesterday"."""
MORNING = datetime(2026, 1, 15, 8, 0, tzinfo=TZ)
"""Where the hub's clock starts; it runs at real speed from there, so timers still fire."""

pytestmark = pytest.mark.broker

WEBHOOK_TOKEN = "webhook-token-for-the-privacy-scan"
EXTRA_NAMES = {"r-002": "Karen Bjerregaard", "r-003": "Poul Østergaard", "r-004": "Inger Skovlund"}
"""Names for the test site's unnamed residents, so every resident has one to leak."""


@pytest.fixture
def named_site(test_site: Site) -> Site:
    """The test site (r-001 is 'Test Person One') with a name for every other resident too."""
    residents = [
        r if r.name else r.model_copy(update={"name": EXTRA_NAMES[r.id]})
        for r in test_site.residents
    ]
    return test_site.model_copy(update={"residents": residents})


@pytest.fixture
def hub_dir(tmp_path: Path) -> Path:
    """Everything the hub writes lives here (the SQLite file, heartbeats)."""
    return tmp_path / "hub"


@pytest.fixture
def scanned_hub(
    hub_dir: Path, broker: LocalBroker, mqtt_protocol: Protocol, named_site: Site
) -> Iterator[tuple[Hub, ServerThread]]:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        db=hub_dir / "hub.db",
        mqtt_url=f"mqtt://{broker.host}:{broker.port}",
        secret_key="s" * 40,
        webhook_token=WEBHOOK_TOKEN,
        http_port=0,  # the webhook's server: any free port, so parallel runs never collide
    )
    users = UserStore(settings.db)
    for name, role in USERS.items():
        users.upsert(name, PASSWORD, role)
    users.close()
    hub = Hub(
        settings,
        named_site,
        ("gateway", "rules"),
        clock=ScaledClock(MORNING, 1.0),
        options=HubOptions(protocol=mqtt_protocol, client_id_prefix=unique_client_prefix()),
    )
    hub.start()
    assert hub.wait_ready()
    server = ServerThread(create_app(hub.api_context())).start()
    yield hub, server
    server.stop()
    hub.stop()


def _names(site: Site) -> list[str]:
    names = [r.name for r in site.residents if r.name]
    assert len(names) == len(site.residents) == 4
    return names


def _leaks(text: str, names: list[str]) -> list[str]:
    low = text.casefold()
    return [n for n in names if n.casefold() in low]


def _alarms_seen(hub: Hub, everything: MqttProbe) -> bool:
    """Whether `everything` has each alarm's latest state: an empty payload (the retained
    message cleared) for a resolved one, else its JSON in that state. The rules part
    publishes the alarms last; the scan reads MQTT once they are in."""
    seen = everything.messages
    for alarm in hub.alarms.list_alarms("all"):
        topic = f"carehub/testhjem/alarms/{alarm['alarm_id']}"
        mine = [m.payload for m in seen if m.topic == topic]
        if alarm["state"] == "resolved":
            if b"" not in mine:
                return False
        elif not any(p and json.loads(p)["state"] == alarm["state"] for p in mine):
            return False
    return True


def test_no_resident_name_on_mqtt_in_the_store_or_in_the_logs(
    scanned_hub: tuple[Hub, ServerThread],
    hub_dir: Path,
    named_site: Site,
    broker: LocalBroker,
    mqtt_protocol: Protocol,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    hub, server = scanned_hub
    base = server.url
    names = _names(named_site)
    everything = MqttProbe(broker.host, broker.port, protocol=mqtt_protocol)
    everything.subscribe("#")
    device = MqttProbe(broker.host, broker.port, protocol=mqtt_protocol)
    try:
        # last night, from every device, in every format (the webhook vendor over HTTP)
        night = NIGHT
        uplinks = night_uplinks(night, Counters())
        hook = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}
        with httpx.Client(base_url=base, timeout=10) as http:
            for up in uplinks:
                if up.webhook:
                    r = http.post(f"/api/webhooks/{up.webhook}", content=up.payload, headers=hook)
                    assert r.is_success, r.text
                else:
                    device.publish(up.topic, up.payload)
        device.publish("carehub/testhjem/devices/fall-a1/up", b"{not json")  # a dead letter
        mqtt_count = sum(1 for up in uplinks if not up.webhook) + 1
        wait_until(  # every uplink, over MQTT or the webhook, and the broken one
            lambda: (
                hub.gateway.metrics().get("carehub_gateway_messages_in_total", 0)
                >= len(uplinks) + 1
            ),
            timeout=60,
            what="the gateway to take every message",
        )
        published = hub.gateway.metrics()["carehub_gateway_events_published_total"]
        wait_until(lambda: hub.rules.handled >= published, timeout=60, what="the rules engine")

        # what people do: answer an alarm, read reports, switch, export, self-test
        fall = wait_until(
            lambda: next((a for a in hub.alarms.list_alarms("all") if a["rule"] == "fall"), None),
            what="the fall alarm",
        )
        assert api(base, "POST", f"/api/alarms/{fall['alarm_id']}/ack", user="sofie").is_success
        r = api(
            base,
            "POST",
            f"/api/alarms/{fall['alarm_id']}/resolve",
            user="sofie",
            json={"outcome": "assisted", "note": "helped back to bed"},
        )
        assert r.is_success
        period = f"from={night.isoformat()}&to={night.isoformat()}"
        for path in ("freed-hours", "freed-hours.csv", "utilisation", "sensitivity"):
            assert api(base, "GET", f"/api/reports/{path}?{period}", user="mads").is_success
        switch = "/api/admin/residents/r-002/monitoring"
        assert api(base, "POST", switch, json={"enabled": False, "reason": "Away"}).is_success
        assert api(base, "POST", switch, json={"enabled": True}).is_success
        export = api(base, "GET", "/api/admin/residents/r-001/export")
        assert export.is_success
        assert len(export.json()["events"]) > 100
        assert api(base, "POST", "/api/admin/selftest").json()["ok"] is True
        refused = httpx.post(f"{base}/api/token", data={"username": "sofie", "password": "x"})
        assert refused.status_code == 401
        for path in ("/api/alarms?state=all", "/api/devices", "/api/admin/residents"):
            body = api(base, "GET", path).text
            assert _leaks(body, names) == [], path
        assert _leaks(export.text, names) == []

        # the positive control: the staff pages do show the names
        staff = _browser_login(base, "ida")
        try:
            assert set(_leaks(staff.get("/devices").text, names)) == set(names)
            assert set(_leaks(staff.get("/admin").text, names)) == set(names)
            assert "Test Person One" in staff.get("/").text  # the board's resident labels
        finally:
            staff.close()
        wait_until(
            lambda: _alarms_seen(hub, everything),
            timeout=30,
            what="every alarm's latest state on '#', a resolved one's cleared retained message",
        )
        written = {p: p.read_bytes() for p in hub_dir.rglob("*") if p.is_file()}
    finally:
        device.close()
        everything.close()
    assert any(p.suffix == ".json" for p in written)  # the parts' heartbeats, while running
    server.stop()
    hub.stop()  # every part commits and closes: the file is complete

    # MQTT: every topic and payload seen on '#'
    seen = everything.messages
    # uplinks, canonical events, alarms, dead letters (the seq-less vendor devices' identical
    # reports, all sent within seconds here, are one event each: docs/storage.md; dead letters
    # are sampled: past the first of each minute they are counted, not published,
    # docs/security.md)
    assert len(seen) > 1.5 * mqtt_count
    assert {m.topic.split("/")[2] for m in seen if m.topic.startswith("carehub/")} >= {
        "devices",
        "events",
        "alarms",
        "deadletter",
        "hub",
    }
    for m in seen:
        text = m.topic + " " + m.payload.decode("utf-8", "replace")
        assert _leaks(text, names) == [], m.topic

    # SQLite: every row of every table, then the raw bytes of every file the hub wrote
    conn = sqlite3.connect(hub_dir / "hub.db")
    tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert {"events", "alarms", "audit_log", "resident_monitoring", "report_nights"} <= set(tables)
    rows = 0
    for table in tables:
        for row in conn.execute(f'SELECT * FROM "{table}"'):
            rows += 1
            text = " ".join(
                c.decode("utf-8", "replace") if isinstance(c, bytes) else str(c) for c in row
            )
            assert _leaks(text, names) == [], (table, row)
    conn.close()
    assert rows > 2 * mqtt_count
    after = {p: p.read_bytes() for p in hub_dir.rglob("*") if p.is_file()}
    for path, raw in [*written.items(), *after.items()]:
        for name in names:
            assert name.encode() not in raw, (path.name, name)
            assert name.casefold().encode() not in raw.lower(), (path.name, name)

    # logs: every record of every logger, at DEBUG
    assert len(caplog.records) > 10
    for record in caplog.records:
        text = record.getMessage() + (record.exc_text or "")
        assert _leaks(text, names) == [], (record.name, text)
    assert _leaks(caplog.text, names) == []


def test_a_name_would_be_found(named_site: Site) -> None:
    """The scan's own check: a name in any case is caught."""
    names = _names(named_site)
    assert _leaks("… resident TEST PERSON ONE fell …", names) == ["Test Person One"]
    assert _leaks(f"{MORNING} r-001", names) == []
