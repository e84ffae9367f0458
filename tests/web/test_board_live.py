"""The alarm board end to end: device uplink on a real Mosquitto → gateway → rules → SSE → the
page in a real Chromium at phone size, and back through the staff's taps to the alarm store."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Page, expect

from app.broker import LocalBroker
from app.hub import Hub
from carehub.mqtt import Protocol
from tests.support.mqttprobe import MqttProbe
from tests.support.server import ServerThread
from tests.web.test_browser_basic import ARTIFACTS, browser, login, phone

pytestmark = [pytest.mark.browser, pytest.mark.broker]
__all__ = ["browser", "phone"]  # fixtures shared with the basic browser tests


def fall(probe: MqttProbe, device: str, seq: int) -> float:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    sent = time.monotonic()
    probe.publish(
        f"carehub/testhjem/devices/{device}/up",
        {"v": 1, "seq": seq, "ts": now, "type": "fall", "confidence": 0.9},
    )
    return sent


def test_fall_appears_live_is_acknowledged_resolved_and_leaves(
    phone: Page, live_hub: tuple[Hub, ServerThread], broker: LocalBroker, mqtt_protocol: Protocol
) -> None:
    hub, server = live_hub
    login(phone, server.url)
    phone.wait_for_url(f"{server.url}/")
    expect(phone.get_by_text("No active alarms")).to_be_visible()
    expect(phone.locator("#banner")).to_be_hidden(timeout=5000)  # SSE connected, resynced
    probe = MqttProbe(broker.host, broker.port, protocol=mqtt_protocol)
    try:
        sent = fall(probe, "fall-a1", 1)
        card = phone.locator('li.alarm[data-rule="fall"]')
        card.wait_for(state="visible", timeout=1000)  # within a second, no reload
        shown_after = time.monotonic() - sent
    finally:
        probe.close()
    assert shown_after < 1.0
    expect(card).to_contain_text("Room a-1")
    expect(card).to_contain_text("Test Person One")  # the name, on the staff screen only
    expect(card).to_have_attribute("data-state", "raised")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    ARTIFACTS.mkdir(exist_ok=True)
    phone.screenshot(path=str(ARTIFACTS / "board-phone.png"), full_page=True)

    card.get_by_role("button", name="I'm on it").click()
    expect(card).to_have_attribute("data-state", "acknowledged")
    expect(card).to_contain_text("Taken by sofie")
    card.get_by_role("button", name="Resolve").click()
    card.get_by_role("button", name="Assisted").click()
    expect(phone.locator("li.alarm")).to_have_count(0)
    expect(phone.get_by_text("No active alarms")).to_be_visible()

    (stored,) = hub.alarms.list_alarms(state="all")
    assert stored["state"] == "resolved"
    assert stored["acknowledged_by"] == "sofie"
    assert stored["outcome"] == "assisted"
    actions = [(e.actor, e.action) for e in hub.alarms.audit_log(stored["alarm_id"])]
    assert ("sofie", "acknowledge") in actions
    assert ("sofie", "resolve") in actions


def test_banner_when_the_server_stops_and_resync_when_it_returns(
    phone: Page, live_hub: tuple[Hub, ServerThread], broker: LocalBroker, mqtt_protocol: Protocol
) -> None:
    hub, server = live_hub
    login(phone, server.url)
    phone.wait_for_url(f"{server.url}/")
    banner = phone.locator("#banner")
    expect(banner).to_be_hidden(timeout=5000)
    server.stop()
    expect(banner).to_be_visible(timeout=10_000)
    expect(banner).to_have_text("Connection to CareHub lost – this list may be out of date!")
    # an alarm raised while the board is cut off must be there once it reconnects
    probe = MqttProbe(broker.host, broker.port, protocol=mqtt_protocol)
    try:
        fall(probe, "fall-b1", 1)
        deadline = time.monotonic() + 10
        while not hub.alarms.list_alarms(state="active") and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        probe.close()
    assert phone.locator("li.alarm").count() == 0
    server.start()
    expect(phone.locator('li.alarm[data-rule="fall"]')).to_be_visible(timeout=15_000)
    expect(banner).to_be_hidden()
    expect(phone.locator("li.alarm")).to_contain_text("Room b-1")


def test_a_fall_while_the_store_hangs_is_shown_provisionally_then_stored(
    phone: Page, live_hub: tuple[Hub, ServerThread], broker: LocalBroker, mqtt_protocol: Protocol
) -> None:
    """Another process holds the SQLite lock: nothing can be stored, yet the fall reaches the
    board within seconds, marked as not saved and without buttons; once the lock goes, the
    stored alarm takes its place (one card, never two)."""
    hub, server = live_hub
    login(phone, server.url)
    phone.wait_for_url(f"{server.url}/")
    expect(phone.locator("#banner")).to_be_hidden(timeout=5000)
    probe = MqttProbe(broker.host, broker.port, protocol=mqtt_protocol)
    locker = sqlite3.connect(hub.settings.db, timeout=60, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        sent = fall(probe, "fall-a1", 1)
        card = phone.locator('li.alarm[data-provisional="true"][data-rule="fall"]')
        card.wait_for(state="visible", timeout=8000)
        shown_after = time.monotonic() - sent
        expect(card).to_contain_text("Not saved yet")
        expect(card).to_contain_text("Room a-1")
        expect(card.get_by_role("button")).to_have_count(0)
        with sqlite3.connect(hub.settings.db) as reader:  # WAL: readers are not locked out
            assert reader.execute("SELECT count(*) FROM alarms").fetchone()[0] == 0
        technical = phone.locator('li.alarm[data-rule="store_failing"]')
        expect(technical).to_be_visible(timeout=10_000)  # the store itself is an alarm
        expect(technical).to_contain_text("Storage failing")
        expect(technical).to_contain_text("Call technical support")
        ARTIFACTS.mkdir(exist_ok=True)
        phone.screenshot(path=str(ARTIFACTS / "board-provisional-phone.png"), full_page=True)
    finally:
        if locker.in_transaction:
            locker.execute("COMMIT")
        locker.close()
        probe.close()
    assert shown_after < 5.0
    stored = phone.locator('li.alarm[data-rule="fall"]:not([data-provisional])')
    expect(stored).to_be_visible(timeout=15_000)
    expect(phone.locator("li.alarm")).to_have_count(1)
    expect(stored.get_by_role("button", name="I'm on it")).to_be_visible()
    (alarm,) = hub.alarms.list_alarms(state="active")
    assert alarm["device_id"] == "fall-a1"
