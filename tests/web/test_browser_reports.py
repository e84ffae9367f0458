"""The managers' report page in a real Chromium: plots drawn, assumptions and sensitivity shown,
and the night staff kept out."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from playwright.sync_api import Browser, Page, expect

from app.hub import Hub
from services.round.checks import CheckStore, DigitalCheck
from tests.support.server import ServerThread
from tests.web.test_browser_basic import ARTIFACTS, browser, login, phone

pytestmark = [pytest.mark.browser, pytest.mark.broker]
__all__ = ["browser", "phone"]


def test_reports_page_draws_its_plots_for_a_manager(
    browser: Browser, live_hub: tuple[Hub, ServerThread]
) -> None:
    hub, server = live_hub
    # a digital check two nights ago at 23:00 local, inside the default period (docs/round.md)
    night = datetime.now(hub.index.tz).date() - timedelta(days=2)
    checks = CheckStore(hub.settings.db, "testhjem")
    checks.add(
        DigitalCheck("r-002", hub.index.night_bounds(night)[0] + timedelta(hours=1), "ida", "ok")
    )
    checks.close()
    context = browser.new_context(viewport={"width": 1024, "height": 1366})
    page = context.new_page()
    try:
        login(page, server.url, username="mads", next_path="/reports")
        page.wait_for_url(f"{server.url}/reports")
        expect(page.get_by_role("heading", name="Freed night-shift hours")).to_be_visible()
        charts = page.locator("figure svg")
        assert charts.count() == 6
        for i in range(6):
            box = charts.nth(i).bounding_box()
            assert box is not None
            assert box["width"] > 200
        rows = page.locator("table.sensitivity tbody tr")
        assert rows.count() == 9
        expect(page.get_by_role("heading", name="Assumptions")).to_be_visible()
        expect(page.get_by_role("heading", name="Digital checks")).to_be_visible()
        expect(
            page.get_by_role("heading", name="Measured night work, before and after")
        ).to_be_visible()
        legend = page.locator("#before-after svg").get_by_text("Before", exact=True)
        expect(legend).to_be_visible()
        assert page.locator("#dc-total").inner_text() == "1"
        row = page.locator("#digital-checks tbody tr", has_text="r-002")
        assert row.locator("td").nth(2).inner_text() == "1"
        page.get_by_label("Ward").select_option("b")
        page.get_by_role("button", name="OK").click()
        page.wait_for_url("**ward=b**")
        assert page.locator("figure svg").count() == 6
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "reports-tablet.png"), full_page=True)
    finally:
        context.close()


def test_night_staff_cannot_open_reports(phone: Page, live_hub: tuple[Hub, ServerThread]) -> None:
    _, server = live_hub
    login(phone, server.url)
    phone.wait_for_url(f"{server.url}/")
    response = phone.goto(f"{server.url}/reports")
    assert response is not None
    assert response.status == 403
