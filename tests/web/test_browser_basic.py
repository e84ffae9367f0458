"""The pages in a real headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.support.server import ServerThread
from tests.web.conftest import PASSWORD

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield b
        b.close()


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(
        viewport={"width": 360, "height": 740},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    page = context.new_page()
    yield page
    context.close()


def login(page: Page, base: str, username: str = "sofie", next_path: str = "/") -> None:
    page.goto(f"{base}/login?next={next_path}")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_login_then_devices_page_fits_a_phone(phone: Page, server: ServerThread) -> None:
    phone.goto(f"{server.url}/devices")
    assert phone.url.endswith("/login?next=/devices")
    login(phone, server.url, next_path="/devices")
    phone.wait_for_url(f"{server.url}/devices")
    assert phone.get_by_role("heading", name="Sensors", exact=True).is_visible()
    # nothing wider than the phone: no sideways scrolling in a dark corridor
    assert phone.evaluate("document.documentElement.scrollWidth") <= 360
    ARTIFACTS.mkdir(exist_ok=True)
    phone.screenshot(path=str(ARTIFACTS / "devices-phone.png"), full_page=True)


def test_wrong_password_shows_a_clear_message(phone: Page, server: ServerThread) -> None:
    phone.goto(f"{server.url}/login")
    phone.get_by_label("Username").fill("sofie")
    phone.get_by_label("Password").fill("not-the-password")
    phone.get_by_role("button", name="Log in").click()
    assert phone.get_by_role("alert").inner_text() == "Wrong username or password."
