"""Web Push in a real Chromium (docs/notifications.md, "Web Push").

What this proves, and what it does not: the board page registers the service worker and, on
a tap with the permission granted, asks the browser to subscribe. Chromium here has no
internet, so it cannot reach its vendor's push service and `pushManager.subscribe` fails;
the page then says so. The test therefore stores a subscription made by the local push
service stand-in through the same route, from the page, with the page's cookie session and
CSRF token. A fall on the real broker then goes through the hub's notifier and the real
`WebPushChannel` to the stand-in, which checks VAPID, TTL and Urgency and decrypts the
payload; DevTools (`ServiceWorker.deliverPushMessage`) hands that payload to the service
worker, which shows the notification. Its acknowledge action is run by calling the worker's
own click handler on the shown notification (no OS notification is clicked): it POSTs the
signed link and the hub records the acknowledgement in the browser's name."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from app.broker import LocalBroker
from app.hub import Hub, HubOptions
from carehub.mqtt import Protocol
from carehub.settings import Settings
from carehub.site import Site
from services.web.users import UserStore
from tests.support.mqttprobe import MqttProbe, unique_client_prefix
from tests.support.push_service import PushServiceStandIn
from tests.web.conftest import PASSWORD, USERS
from tests.web.test_board_live import fall
from tests.web.test_browser_basic import browser, login

pytestmark = [pytest.mark.browser, pytest.mark.broker]
__all__ = ["browser"]

NOTIFICATIONS = """async () => {
  const r = await navigator.serviceWorker.ready;
  const shown = await r.getNotifications();
  return shown.map((n) => ({title: n.title, body: n.body, tag: n.tag,
    requireInteraction: n.requireInteraction, actions: n.actions, data: n.data}));
}"""

SUBSCRIBE = """async (sub) => {
  const csrf = JSON.parse(document.getElementById("board-data").textContent).csrf;
  const r = await fetch("/api/push/subscriptions", {method: "POST",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
    body: JSON.stringify({subscription: sub, wards: ["a"]})});
  return [r.status, await r.json()];
}"""


@pytest.fixture
def whole_hub(
    tmp_path: Path, broker: LocalBroker, mqtt_protocol: Protocol, test_site: Site
) -> Iterator[tuple[Hub, str]]:
    """Every part in one process with its own web server, as `carehub run all` runs."""
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
    options = HubOptions(
        protocol=mqtt_protocol,
        client_id_prefix=unique_client_prefix(),
        http_host="127.0.0.1",
        http_port=0,
    )
    hub = Hub(settings, test_site, options=options)
    hub.start()
    assert hub.wait_ready()
    assert hub.url is not None
    yield hub, hub.url
    hub.stop()


def wait_for(page: Page, what: Any, timeout: float = 10.0) -> Any:
    """Poll `what` while Playwright dispatches events (DevTools events arrive meanwhile)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := what():
            return value
        page.wait_for_timeout(100)
    raise AssertionError("timed out")


def test_board_subscribes_and_a_pushed_alarm_is_acknowledged_from_its_notification(
    browser: Browser,
    whole_hub: tuple[Hub, str],
    broker: LocalBroker,
    mqtt_protocol: Protocol,
) -> None:
    hub, base = whole_hub
    context = browser.new_context(viewport={"width": 800, "height": 900})
    context.grant_permissions(["notifications"], origin=base)
    service = PushServiceStandIn().start()
    try:
        page = context.new_page()
        login(page, base)
        page.wait_for_url(f"{base}/")
        panel = page.locator("#push")
        expect(panel).to_have_attribute("data-ready", "true", timeout=15_000)
        assert page.evaluate(
            "navigator.serviceWorker.getRegistration().then((r) => Boolean(r && r.active))"
        )
        assert page.evaluate("Notification.permission") == "granted"  # asked on tap: granted
        page.get_by_role("button", name="Get alarms on this device").click()
        status = page.locator("#push-status")
        expect(status).not_to_have_text("", timeout=30_000)
        if panel.get_attribute("data-subscribed") != "true":
            # offline: the browser's push service is out of reach, and the board says so
            expect(status).to_contain_text("Could not subscribe")
        code, phone = page.evaluate(SUBSCRIBE, service.subscribe())
        assert code == 201, phone

        probe = MqttProbe(broker.host, broker.port, protocol=mqtt_protocol)
        try:
            fall(probe, "fall-a1", 1)
        finally:
            probe.close()
        pushes = wait_for(
            page, lambda: [p for p in service.pushes if p.payload["step"] == "first"], timeout=15
        )
        assert service.rejected == []
        pushed = pushes[0]
        assert (pushed.ttl, pushed.urgency) == (300, "high")
        alarm_id = pushed.payload["alarm_id"]

        cdp = context.new_cdp_session(page)
        registrations: list[dict[str, Any]] = []
        cdp.on(
            "ServiceWorker.workerRegistrationUpdated",
            lambda e: registrations.extend(e["registrations"]),
        )
        cdp.send("ServiceWorker.enable")
        wait_for(page, lambda: any(r["scopeURL"] == f"{base}/" for r in registrations) or None)
        (registration,) = {
            r["registrationId"] for r in registrations if r["scopeURL"] == f"{base}/"
        }
        cdp.send(
            "ServiceWorker.deliverPushMessage",
            {
                "origin": base,
                "registrationId": registration,
                "data": json.dumps(pushed.payload),
            },
        )
        shown = wait_for(page, lambda: page.evaluate(NOTIFICATIONS))
        (note,) = shown
        assert note["title"] == "Fall – room a-1"
        assert note["tag"] == alarm_id
        assert note["requireInteraction"] is True
        assert [(a["action"], a["title"]) for a in note["actions"]] == [("ack", "I'm on it")]
        assert "Test Person One" not in json.dumps(note)

        (worker,) = context.service_workers
        answered = worker.evaluate(
            "self.registration.getNotifications()"
            ".then((ns) => self.carehub.handleClick('ack', ns[0]))"
        )
        assert answered == 200
        alarm = hub.alarms.get(alarm_id)  # type: ignore[union-attr]
        assert alarm["state"] == "acknowledged"
        assert alarm["acknowledged_by"] == phone["name"] == "sofie (web)"
        assert page.evaluate(NOTIFICATIONS) == []  # the click closed it
        again = worker.evaluate(f"self.carehub.acknowledge({json.dumps(note['data'])})")
        assert again == 409  # the link works once
    finally:
        context.close()
        service.stop()
