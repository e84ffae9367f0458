"""The per-resident export through the live hub: the resident's events, alarms and the access
log about them (actions on their alarms, report reads in scope, earlier exports), audited."""

from __future__ import annotations

from typing import Any

import pytest

from app.broker import LocalBroker
from app.hub import Hub
from carehub.mqtt import Protocol
from tests.privacy.conftest import api, publish_fall, wait_until
from tests.support.server import ServerThread

pytestmark = pytest.mark.broker


def _alarm_of(hub: Hub, device: str) -> dict[str, Any]:
    alarm: dict[str, Any] = wait_until(
        lambda: next((a for a in hub.alarms.list_alarms("all") if a["device_id"] == device), None),
        what=f"an alarm from {device}",
    )
    return alarm


def test_export_holds_the_residents_data_and_who_saw_it(
    live_hub: tuple[Hub, ServerThread], broker: LocalBroker, mqtt_protocol: Protocol
) -> None:
    hub, server = live_hub
    base = server.url
    publish_fall(broker, mqtt_protocol, "fall-a1", 1)  # room a-1: r-001 alone
    publish_fall(broker, mqtt_protocol, "fall-b1", 1)  # room b-1: r-003 and r-004
    own = _alarm_of(hub, "fall-a1")
    shared = _alarm_of(hub, "fall-b1")
    assert api(base, "POST", f"/api/alarms/{own['alarm_id']}/ack", user="sofie").is_success
    r = api(
        base,
        "POST",
        f"/api/alarms/{own['alarm_id']}/resolve",
        user="sofie",
        json={"outcome": "assisted"},
    )
    assert r.is_success
    period = "from=2026-11-01&to=2026-11-02"
    for path in (
        f"/api/reports/freed-hours?{period}",  # site-wide: about everyone
        f"/api/reports/freed-hours?{period}&ward=a",  # r-001's ward
        f"/api/reports/freed-hours?{period}&ward=b",  # not about r-001
        f"/api/reports/utilisation?{period}",
    ):
        assert api(base, "GET", path, user="mads").is_success
    switch = "/api/admin/residents/r-001/monitoring"
    assert api(base, "POST", switch, json={"enabled": False, "reason": "In hospital"}).is_success
    # the rules engine looks at the switch at most once a second (MonitoringSwitch)
    wait_until(lambda: not hub.rules.monitoring("r-001"), what="the rules engine to see it")
    publish_fall(broker, mqtt_protocol, "fall-a1", 2)
    wait_until(lambda: hub.alarms.store.suppressed("r-001"), what="the suppressed fall")
    assert api(base, "POST", switch, json={"enabled": True}).is_success

    r = api(base, "GET", "/api/admin/residents/r-001/export")
    assert r.status_code == 200, r.text
    assert r.headers["content-disposition"].startswith(
        'attachment; filename="carehub-export-r-001-'
    )
    doc = r.json()
    assert (doc["resident_id"], doc["room"], doc["ward"]) == ("r-001", "a-1", "a")
    assert doc["generated_by"] == "ida"
    assert "Test Person One" not in r.text  # pseudonymous, like every store

    falls = [e for e in doc["events"] if e["type"] == "fall"]
    assert [(e["device_id"], e["seq"], e["monitoring_off"]) for e in falls] == [
        ("fall-a1", 1, False),
        ("fall-a1", 2, True),
    ]
    assert {e["resident_id"] for e in doc["events"]} == {"r-001"}
    assert [a["alarm_id"] for a in doc["alarms"]] == [own["alarm_id"]]
    assert doc["alarms"][0]["via_room"] is False
    assert [s["rule"] for s in doc["suppressed_while_monitoring_off"]] == ["fall"]
    assert [(c["enabled"], c["reason"]) for c in doc["monitoring"]["history"]] == [
        (False, "In hospital"),
        (True, None),
    ]

    log = [(e["actor"], e["action"], e["detail"].get("ward")) for e in doc["access_log"]]
    assert log == [
        ("sofie", "acknowledge", None),
        ("sofie", "resolve", None),
        ("mads", "report_read", None),
        ("mads", "report_read", "a"),
        ("mads", "report_read", None),
        ("ida", "monitoring_off", None),
        ("ida", "monitoring_on", None),
    ]

    # the export is audited, and the next export shows it
    again = api(base, "GET", "/api/admin/residents/r-001/export").json()
    exports = [e for e in again["access_log"] if e["action"] == "resident_export"]
    assert [(e["actor"], e["detail"]) for e in exports] == [("ida", {"resident_id": "r-001"})]
    audited = [e for e in hub.alarms.audit_log() if e.action == "resident_export"]
    assert len(audited) == 2

    # a shared room's alarm belongs to each of its residents
    r003 = api(base, "GET", "/api/admin/residents/r-003/export").json()
    assert [(a["alarm_id"], a["via_room"]) for a in r003["alarms"]] == [(shared["alarm_id"], True)]
    assert all(e["resident_id"] == "r-003" for e in r003["events"])
    assert [
        e["detail"].get("ward") for e in r003["access_log"] if e["action"] == "report_read"
    ] == [
        None,
        "b",
        None,
    ]


def test_export_of_an_unknown_resident_is_404_and_needs_admin(
    live_hub: tuple[Hub, ServerThread],
) -> None:
    _hub, server = live_hub
    assert api(server.url, "GET", "/api/admin/residents/r-999/export").status_code == 404
    r = api(server.url, "GET", "/api/admin/residents/r-001/export", user="mads")
    assert r.status_code == 403
