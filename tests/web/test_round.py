"""The digital round over a real hub (broker, gateway, rules, web app) and in Chromium at
360 px: sensors that vouch read ok with the state shown, silent ones read visit by name, a
digital check is recorded (CSRF on cookie sessions, like every state change) and shown."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from app.broker import LocalBroker
from app.hub import Hub
from tests.support.mqttprobe import MqttProbe
from tests.support.server import ServerThread
from tests.web.conftest import bearer
from tests.web.test_browser_basic import ARTIFACTS, browser, login, phone

__all__ = ["browser", "phone"]  # fixtures shared with the basic browser tests

pytestmark = pytest.mark.broker


def _z() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture
def vouched(live_hub: tuple[Hub, ServerThread], broker: LocalBroker) -> str:
    """Every sensor of r-001 speaks now; r-002's never have. Answers the base URL."""
    _hub, server = live_hub
    probe = MqttProbe(broker.host, broker.port)
    up = "carehub/testhjem/devices/{}/up"
    headers = bearer(server.url, "sofie")
    deadline = time.monotonic() + 20
    seq = 500
    try:
        while True:  # the web app's broker connection may still be subscribing: say it again
            for device, body in (
                ("fall-a1", {"type": "heartbeat", "battery": 90}),
                ("diaper-r001", {"type": "saturation", "level": 20}),
                ("med-r001", {"type": "heartbeat", "battery": 80}),
                ("bed-r001", {"type": "in_bed"}),
            ):
                seq += 1
                probe.publish(up.format(device), {"v": 1, "seq": seq, "ts": _z(), **body})
            time.sleep(0.5)
            body = httpx.get(f"{server.url}/api/round", headers=headers).json()
            one = _resident(body, "r-001")
            if one["state"]["in_bed"] is True and len(one["sensors"]["online"]) == 4:
                break
            assert time.monotonic() < deadline, (one, body["at"])
    finally:
        probe.close()
    return server.url


def _resident(body: dict[str, Any], rid: str) -> dict[str, Any]:
    found: dict[str, Any] = next(r for r in body["residents"] if r["resident_id"] == rid)
    return found


def test_round_api_ok_visit_and_a_recorded_check(
    vouched: str, live_hub: tuple[Hub, ServerThread]
) -> None:
    headers = bearer(vouched, "sofie")
    body = httpx.get(f"{vouched}/api/round", headers=headers).json()
    one = _resident(body, "r-001")
    assert one["verdict"] == "ok", one["reasons"]
    assert one["state"]["diaper_level"] == 20.0
    assert "Test Person One" not in str(body)  # names only on the page
    two = _resident(body, "r-002")
    assert two["verdict"] == "visit"
    assert "Fall sensor fall-a2 is offline" in two["reasons"]
    assert "fall-a2" in two["sensors"]["offline"]
    da = httpx.get(f"{vouched}/api/round?ward=a&lang=da", headers=headers).json()
    assert "Faldsensor fall-a2 svarer ikke" in _resident(da, "r-002")["reasons"]
    assert {r["ward"] for r in da["residents"]} == {"a"}
    assert httpx.get(f"{vouched}/api/round?ward=zz", headers=headers).status_code == 422

    r = httpx.post(
        f"{vouched}/api/round/r-001/check", headers=headers, json={"result": "ok", "note": "asleep"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["last_check"]["by"] == "sofie"
    shown = _resident(httpx.get(f"{vouched}/api/round", headers=headers).json(), "r-001")
    assert (shown["last_check"]["by"], shown["last_check"]["result"]) == ("sofie", "ok")
    # the reports read the same checks (counted when they fall in a night: docs/round.md)
    reports = live_hub[1].app.state.ctx.reports
    now = datetime.now(UTC)
    recorded = reports.digital_checks(now - timedelta(minutes=5), now + timedelta(minutes=1))
    assert [(c.resident_id, c.result) for c in recorded] == [("r-001", "ok")]
    bad = httpx.post(f"{vouched}/api/round/r-001/check", headers=headers, json={"result": "fine"})
    assert bad.status_code == 422
    missing = httpx.post(f"{vouched}/api/round/r-999/check", headers=headers, json={"result": "ok"})
    assert missing.status_code == 404
    assert httpx.get(f"{vouched}/api/round").status_code == 401


@pytest.mark.browser
def test_round_page_on_a_phone_records_a_check(phone: Page, vouched: str) -> None:
    login(phone, vouched, next_path="/round")
    phone.wait_for_url(f"{vouched}/round")
    card = phone.locator('li[data-resident="r-001"]')
    card.wait_for()
    assert card.locator(".verdict").inner_text() == "OK"  # the word, beside the colour
    assert "In bed" in card.inner_text()
    other = phone.locator('li[data-resident="r-002"]')
    assert other.locator(".verdict").inner_text() == "Visit"
    assert "fall-a2" in other.inner_text()
    colour = other.locator(".verdict").evaluate("e => getComputedStyle(e).backgroundColor")
    assert colour == "rgb(176, 0, 32)"
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    # the page's cookie session: a state change without the CSRF token is refused
    refused = phone.evaluate(
        "fetch('/api/round/r-001/check', {method: 'POST', headers: {'Content-Type':"
        " 'application/json'}, body: JSON.stringify({result: 'ok'})}).then(r => r.status)"
    )
    assert refused == 403
    card.get_by_role("button", name="Checked digitally").click()
    phone.locator('li[data-resident="r-001"] .round-last').wait_for()
    assert "sofie" in phone.locator('li[data-resident="r-001"] .round-last').inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    phone.screenshot(path=str(ARTIFACTS / "round-phone.png"), full_page=True)
    phone.goto(f"{vouched}/round?lang=da")
    assert phone.locator('li[data-resident="r-002"] .verdict').inner_text() == "Besøg"


@pytest.mark.browser
def test_round_page_follows_a_change_live(phone: Page, vouched: str, broker: LocalBroker) -> None:
    """A diaper reading over the look threshold (50 %) turns r-001 from OK to Look on the open
    page, without a reload: the page follows the hub's stream."""
    login(phone, vouched, next_path="/round")
    phone.wait_for_url(f"{vouched}/round")
    verdict = phone.locator('li[data-resident="r-001"] .verdict')
    verdict.wait_for()
    assert verdict.inner_text() == "OK"
    phone.evaluate("window.__same_page = true")  # gone if the page reloads
    probe = MqttProbe(broker.host, broker.port)
    try:
        body = {"v": 1, "seq": 900, "ts": _z(), "type": "saturation", "level": 55}
        probe.publish("carehub/testhjem/devices/diaper-r001/up", body)
    finally:
        probe.close()
    expect(verdict).to_have_text("Look", timeout=15_000)
    assert "Diaper 55 %" in phone.locator('li[data-resident="r-001"]').inner_text()
    assert phone.evaluate("window.__same_page === true")
