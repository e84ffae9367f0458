"""The board card says who has been told and when: a fall on a real Mosquitto goes through
the real hub to the ntfy stand-in, and the card in Chromium at phone size shows, without a
reload, "Told: Phone A 23:14 (first · sent)"; an acknowledgement from a phone marks who took
it. The devices page shows each channel's health, /metrics the notifier's counters
(docs/notifications.md)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from app.broker import LocalBroker
from app.hub import Hub, HubOptions
from carehub.mqtt import Protocol
from carehub.settings import Settings
from carehub.site import Site
from services.web.users import UserStore
from tests.notify.conftest import PUBLIC, TOKEN, notify_site
from tests.support.mqttprobe import MqttProbe, unique_client_prefix
from tests.support.ntfy_server import NtfyStandIn
from tests.web.conftest import PASSWORD, USERS
from tests.web.test_board_live import fall
from tests.web.test_browser_basic import ARTIFACTS, browser, login, phone

pytestmark = [pytest.mark.browser, pytest.mark.broker]
__all__ = ["browser", "phone"]  # fixtures shared with the basic browser tests

A, LEADER = "testhjem-a-5c1f", "testhjem-leader-e7a2"


@pytest.fixture
def ntfy(monkeypatch: pytest.MonkeyPatch) -> Iterator[NtfyStandIn]:
    monkeypatch.setenv("CAREHUB_NTFY_TOKEN", TOKEN)
    server = NtfyStandIn(token=TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def notify_hub(
    tmp_path: Path, broker: LocalBroker, mqtt_protocol: Protocol, ntfy: NtfyStandIn
) -> Iterator[tuple[Hub, str]]:
    site: Site = notify_site(ntfy.url)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        db=tmp_path / "hub.db",
        mqtt_url=f"mqtt://{broker.host}:{broker.port}",
        secret_key="s" * 40,
    )
    users = UserStore(settings.db)
    for name, role in USERS.items():
        users.upsert(name, PASSWORD, role)
    users.close()
    hub = Hub(
        settings,
        site,
        options=HubOptions(
            protocol=mqtt_protocol,
            client_id_prefix=unique_client_prefix(),
            http_host="127.0.0.1",
            http_port=0,
        ),
    )
    hub.start()
    try:
        assert hub.wait_ready()
        assert hub.url is not None
        yield hub, hub.url
    finally:
        hub.stop()


def test_the_card_shows_who_was_told_live_and_who_took_it(
    phone: Page,
    notify_hub: tuple[Hub, str],
    broker: LocalBroker,
    mqtt_protocol: Protocol,
    ntfy: NtfyStandIn,
) -> None:
    _hub, url = notify_hub
    login(phone, url)
    phone.wait_for_url(f"{url}/")
    expect(phone.locator("#banner")).to_be_hidden(timeout=5000)
    probe = MqttProbe(broker.host, broker.port, protocol=mqtt_protocol)
    try:
        fall(probe, "fall-a1", 1)
        card = phone.locator('li.alarm[data-rule="fall"]')
        card.wait_for(state="visible", timeout=2000)
        told = card.locator("p.told")
        # the phones of ward a: Phone A and the shift leader, sent, no reload
        expect(told).to_have_text(
            re.compile(
                r"^Told: Phone A \d\d:\d\d \(first · sent\), "
                r"Shift leader \d\d:\d\d \(first · sent\)$"
            ),
            timeout=3000,
        )
    finally:
        probe.close()
    assert ntfy.wait_for(1, topic=A)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    ARTIFACTS.mkdir(exist_ok=True)
    phone.screenshot(path=str(ARTIFACTS / "board-told-phone.png"), full_page=True)

    # Phone A presses its ntfy button: the card says it took it, and the shift leader hears
    action = ntfy.messages(A)[0]["actions"][0]
    link = action["url"].replace(PUBLIC, url)  # the site's public URL is this hub's web app
    pressed = httpx.request(action.get("method", "POST"), link, headers=action.get("headers", {}))
    assert pressed.status_code == 200, pressed.text
    expect(card).to_have_attribute("data-state", "acknowledged")
    expect(card.locator('.told-phone[data-phone="phone-a"]')).to_have_attribute(
        "data-status", "acknowledged"
    )
    expect(card.locator('.told-phone[data-phone="phone-a"]')).to_contain_text("took it")
    assert ntfy.wait_for(2, topic=LEADER)
    assert ntfy.messages(LEADER)[-1]["message"] == "Taken by Phone A"

    # in Danish, from a fresh load: what was sent so far comes with the stream's start
    phone.goto(f"{url}/?lang=da")
    expect(phone.locator('li.alarm[data-rule="fall"] p.told')).to_contain_text(
        re.compile(r"Fortalt: Phone A \d\d:\d\d \(først · tog den\)")
    )

    # the devices page: each channel to each phone, working after the sends
    phone.goto(f"{url}/devices?lang=en")
    row = phone.locator('tr.channel[data-channel="ntfy:phone-a"]')
    expect(row).to_have_attribute("data-state", "ok")
    expect(row).to_contain_text("working")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    metrics = httpx.get(f"{url}/metrics").text
    sent = re.search(r"^carehub_notify_sent_total (\d+)$", metrics, re.M)
    assert sent is not None
    assert int(sent.group(1)) >= 4
    assert "carehub_notify_repeats_total 0" in metrics
