"""The /admin page: in a real Chromium at phone size over the live hub (switch a resident off
with a reason, see it on the staff screens, run the self-test, Danish and English), and its
forms' CSRF and role checks over plain HTTP."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from app.hub import Hub
from tests.support.server import ServerThread
from tests.web.test_auth import _browser_login
from tests.web.test_browser_basic import ARTIFACTS, browser, login, phone

pytestmark = pytest.mark.broker
__all__ = ["browser", "phone"]  # fixtures shared with the web browser tests


@pytest.mark.browser
def test_admin_switches_monitoring_and_runs_the_selftest(
    phone: Page, live_hub: tuple[Hub, ServerThread]
) -> None:
    _hub, server = live_hub
    login(phone, server.url, "ida", "/admin")
    phone.wait_for_url(f"{server.url}/admin")
    expect(phone.get_by_role("heading", name="Admin", exact=True)).to_be_visible()
    cards = phone.locator("li.resident")
    expect(cards).to_have_count(4)
    r001 = phone.locator('li.resident[data-resident-id="r-001"]')
    expect(r001).to_contain_text("Test Person One")  # the staff page may name residents
    expect(r001.get_by_role("link", name="Export the resident's data (JSON)")).to_have_attribute(
        "href", "/api/admin/residents/r-001/export"
    )

    r002 = phone.locator('li.resident[data-resident-id="r-002"]')
    r002.get_by_label("Reason").fill("Declined sensors")
    r002.get_by_role("button", name="Turn monitoring off").click()
    phone.wait_for_url(re.compile(r"/admin\?changed=r-002$"))
    r002 = phone.locator('li.resident[data-resident-id="r-002"]')
    expect(r002).to_contain_text("Monitoring off")
    expect(r002).to_contain_text("Declined sensors")
    expect(r002).to_contain_text("Changed by ida")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    ARTIFACTS.mkdir(exist_ok=True)
    phone.screenshot(path=str(ARTIFACTS / "admin-phone.png"), full_page=True)

    phone.get_by_role("button", name="Run self-test").click()
    expect(phone.locator("#selftest-result")).to_contain_text("Self-test OK", timeout=15_000)

    phone.goto(f"{server.url}/devices")
    expect(phone.get_by_text("Monitoring off").first).to_be_visible()
    phone.goto(f"{server.url}/")
    expect(phone.locator(".monitoring-off")).to_contain_text("r-002")

    phone.goto(f"{server.url}/admin?lang=da")
    expect(phone.get_by_role("button", name="Kør selvtest")).to_be_visible()
    r002 = phone.locator('li.resident[data-resident-id="r-002"]')
    expect(r002).to_contain_text("Overvågning slået fra")
    r002.get_by_role("button", name="Slå overvågning til").click()
    phone.wait_for_url(re.compile(r"/admin\?changed=r-002$"))
    expect(phone.locator('li.resident[data-resident-id="r-002"]')).to_contain_text(
        "Overvågning slået til"
    )


def test_admin_forms_check_role_and_csrf(live_hub: tuple[Hub, ServerThread]) -> None:
    hub, server = live_hub
    assert httpx.get(f"{server.url}/admin").status_code == 303  # to the login page
    staff = _browser_login(server.url, "sofie")
    try:
        assert staff.get("/admin").status_code == 403
        assert "/admin" not in staff.get("/").text  # no link to it either
    finally:
        staff.close()
    ida = _browser_login(server.url, "ida")
    try:
        page = ida.get("/admin")
        assert page.status_code == 200
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        path = "/admin/residents/r-001/monitoring"
        forged = ida.post(path, data={"enabled": "off", "reason": "x", "csrf": "forged"})
        assert forged.status_code == 403
        missing = ida.post(path, data={"enabled": "off", "reason": " ", "csrf": csrf.group(1)})
        assert missing.status_code == 422
        assert "Give a reason to turn monitoring off." in missing.text
        assert hub.alarms.audit_log() == []  # nothing changed, nothing audited
        ok = ida.post(path, data={"enabled": "off", "reason": "Away", "csrf": csrf.group(1)})
        assert (ok.status_code, ok.headers["location"]) == (303, "/admin?changed=r-001")
        assert ida.post("/admin/selftest", data={"csrf": "forged"}).status_code == 403
    finally:
        ida.close()
    assert [e.action for e in hub.alarms.audit_log()] == ["monitoring_off"]
