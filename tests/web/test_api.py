"""The HTTP API (docs/web-app.md) over a real hub (gateway + rules on a real Mosquitto, real
SQLite): the role × route matrix cell by cell, read from the OpenAPI document, and every status code
the alarm, device and report routes promise."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.broker import LocalBroker
from app.hub import Hub
from carehub.mqtt import Protocol
from tests.support.mqttprobe import MqttProbe
from tests.support.server import ServerThread
from tests.web.conftest import bearer

pytestmark = pytest.mark.broker

PUBLIC = {"/healthz", "/metrics", "/login", "/api/token", "/logout"}
"""Open to anyone (health and metrics for the hub's own network; see docs/security.md)."""
ROLE_OF_PREFIX = {"/api/reports": "manager", "/reports": "manager", "/api/admin": "admin"}
ROLES = ("staff", "manager", "admin")
USER_OF_ROLE = {"staff": "sofie", "manager": "mads", "admin": "ida"}


def required_role(path: str) -> str:
    for prefix, role in ROLE_OF_PREFIX.items():
        if path.startswith(prefix):
            return role
    return "staff"


def api_operations(base: str) -> list[tuple[str, str]]:
    spec = httpx.get(f"{base}/openapi.json", headers=bearer(base, "sofie")).json()
    ops = []
    for path, item in spec["paths"].items():
        for method in item:
            if path in PUBLIC or path.startswith(("/api/webhooks", "/ack/")):
                continue
            ops.append((method.upper(), path))
    return ops


def call(base: str, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    url = base + path.replace("{alarm_id}", "no-such-alarm")
    body = {"outcome": "assisted"} if path.endswith("/resolve") else None
    with httpx.Client(timeout=10) as client:
        if path.endswith("/stream"):
            with client.stream(method, url, headers=headers) as r:
                return r
        return client.request(method, url, headers=headers, json=body)


def raise_fall(hub: Hub, broker: LocalBroker, protocol: Protocol, device: str) -> dict[str, Any]:
    probe = MqttProbe(broker.host, broker.port, protocol=protocol)
    try:
        probe.publish(
            f"carehub/testhjem/devices/{device}/up",
            {
                "v": 1,
                "seq": 1,
                "ts": datetime.now(UTC).isoformat(),
                "type": "fall",
                "confidence": 0.8,
            },
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            for alarm in hub.alarms.list_alarms("active"):
                if alarm["device_id"] == device:
                    return alarm
            time.sleep(0.05)
    finally:
        probe.close()
    pytest.fail("no alarm")


def test_every_api_route_is_401_without_credentials_and_403_below_its_role(
    live_hub: tuple[Hub, ServerThread],
) -> None:
    _, server = live_hub
    base = server.url
    ops = api_operations(base)
    assert ("GET", "/api/alarms") in ops
    assert ("GET", "/api/reports/freed-hours") in ops
    tokens = {role: bearer(base, USER_OF_ROLE[role]) for role in ROLES}
    cells = 0
    for method, path in ops:
        r = call(base, method, path, {})
        assert r.status_code == 401, (method, path, r.status_code)
        assert r.headers.get("www-authenticate", "").lower().startswith("bearer")
        r = call(base, method, path, {"Authorization": "Bearer forged.token.value"})
        assert r.status_code == 401, (method, path)
        need = ROLES.index(required_role(path))
        for rank, role in enumerate(ROLES):
            r = call(base, method, path, tokens[role])
            if rank < need:
                assert r.status_code == 403, (method, path, role, r.status_code)
            else:
                assert r.status_code not in (401, 403), (method, path, role, r.status_code)
                assert r.status_code < 500, (method, path, role, r.text)
            cells += 1
    assert cells == len(ops) * len(ROLES)


def test_pages_by_role(live_hub: tuple[Hub, ServerThread]) -> None:
    _, server = live_hub
    for path in ("/", "/devices", "/reports"):
        r = httpx.get(server.url + path)
        assert r.status_code == 303
        assert r.headers["location"].startswith("/login")
    with httpx.Client(base_url=server.url) as staff:
        _staff_pages(staff)


def _staff_pages(staff: httpx.Client) -> None:
    page = staff.get("/login")
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    r = staff.post(
        "/login",
        data={"username": "sofie", "password": "correct-horse-battery", "csrf": csrf},
    )
    assert r.status_code == 303
    assert staff.get("/").status_code == 200
    assert staff.get("/devices").status_code == 200
    assert staff.get("/reports").status_code == 403


def test_alarm_routes_answer_404_409_422_as_specified(
    live_hub: tuple[Hub, ServerThread], broker: LocalBroker, mqtt_protocol: Protocol
) -> None:
    hub, server = live_hub
    base = server.url
    h = bearer(base, "sofie")
    alarm = raise_fall(hub, broker, mqtt_protocol, "fall-a1")
    aid = alarm["alarm_id"]
    listed = httpx.get(f"{base}/api/alarms", headers=h).json()
    assert [a["alarm_id"] for a in listed] == [aid]
    assert set(listed[0]) >= {
        "alarm_id", "site", "rule", "kind", "priority", "state", "resident_id", "room",
        "device_id", "raised_at", "acknowledged_at", "acknowledged_by", "escalated_at",
        "resolved_at", "resolved_by", "outcome", "trigger_event_id", "count",
    }  # fmt: skip
    assert httpx.get(f"{base}/api/alarms?state=bogus", headers=h).status_code == 422
    assert httpx.get(f"{base}/api/alarms?since=yesterday", headers=h).status_code == 422
    assert httpx.post(f"{base}/api/alarms/nope/ack", headers=h).status_code == 404
    r = httpx.post(f"{base}/api/alarms/{aid}/resolve", headers=h, json={"outcome": "maybe"})
    assert r.status_code == 422
    r = httpx.post(f"{base}/api/alarms/{aid}/ack", headers=h)
    assert r.status_code == 200
    assert r.json()["acknowledged_by"] == "sofie"
    assert httpx.post(f"{base}/api/alarms/{aid}/ack", headers=h).status_code == 409
    r = httpx.post(
        f"{base}/api/alarms/{aid}/resolve",
        headers=h,
        json={"outcome": "assisted", "note": "helped back to bed"},
    )
    assert r.status_code == 200
    assert r.json()["state"] == "resolved"
    r = httpx.post(f"{base}/api/alarms/{aid}/resolve", headers=h, json={"outcome": "assisted"})
    assert r.status_code == 409
    assert httpx.get(f"{base}/api/alarms", headers=h).json() == []
    everything = httpx.get(f"{base}/api/alarms?state=all", headers=h).json()
    assert [a["outcome"] for a in everything] == ["assisted"]


def test_devices_report_state_from_the_gateway(
    live_hub: tuple[Hub, ServerThread], broker: LocalBroker, mqtt_protocol: Protocol
) -> None:
    hub, server = live_hub
    raise_fall(hub, broker, mqtt_protocol, "fall-b1")
    devices = httpx.get(f"{server.url}/api/devices", headers=bearer(server.url, "sofie")).json()
    by_id = {d["device_id"]: d for d in devices}
    assert set(by_id) == set(hub.index.bindings)
    assert by_id["fall-b1"]["last_seen"] is not None
    assert by_id["fall-b1"]["room"] == "b-1"
    assert by_id["diaper-r002"]["last_seen"] is None
    assert "Test Person One" not in str(devices)  # names only on the staff pages


def test_reports_validate_their_query_and_are_audited(
    live_hub: tuple[Hub, ServerThread],
) -> None:
    hub, server = live_hub
    base = server.url
    h = bearer(base, "mads")
    r = httpx.get(f"{base}/api/reports/freed-hours?from=2026-11-10&to=2026-11-01", headers=h)
    assert r.status_code == 422
    r = httpx.get(
        f"{base}/api/reports/freed-hours?from=2026-11-01&to=2026-11-02&ward=zz", headers=h
    )
    assert r.status_code == 422
    r = httpx.get(f"{base}/api/reports/freed-hours?from=yesterday", headers=h)
    assert r.status_code == 422
    r = httpx.get(f"{base}/api/reports/freed-hours?from=2026-11-01&to=2026-11-02", headers=h)
    assert r.status_code == 200
    # no device sent anything on either night: both asked, neither measured
    assert (r.json()["nights"], r.json()["unmeasured_nights"]) == (0, ["2026-11-01", "2026-11-02"])
    r = httpx.get(f"{base}/api/reports/freed-hours.csv?from=2026-11-01&to=2026-11-02", headers=h)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    r = httpx.get(f"{base}/api/reports/utilisation?from=2026-11-01&to=2026-11-02", headers=h)
    assert r.status_code == 200
    reads = [e for e in hub.alarms.audit_log() if e.action == "report_read"]
    assert [(e.actor, e.detail["report"]) for e in reads] == [
        ("mads", "freed-hours"),
        ("mads", "freed-hours.csv"),
        ("mads", "utilisation"),
    ]


def test_every_route_of_the_openapi_document_is_documented(
    live_hub: tuple[Hub, ServerThread],
) -> None:
    from pathlib import Path

    _, server = live_hub
    doc = (Path(__file__).resolve().parents[2] / "docs" / "web-app.md").read_text()
    spec = httpx.get(f"{server.url}/openapi.json", headers=bearer(server.url, "sofie")).json()
    for path, item in spec["paths"].items():
        for method in item:
            assert (
                f"{method.upper()} {path}" in doc
                or f"`{method.upper()} {path}" in doc
                or (path in doc and method.upper() in doc)
            ), f"{method.upper()} {path} is not in docs/web-app.md"
