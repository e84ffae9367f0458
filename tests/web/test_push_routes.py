"""The Web Push routes (docs/notifications.md, "Web Push"): the manifest, service worker and
icons with the right content types under the app's CSP, the VAPID public key for the board,
and subscriptions: staff and above, CSRF for a cookie session, tied to the user and wards,
forgotten by DELETE."""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Iterator

import httpx
import pytest

from carehub.clock import SystemClock
from services.notify.desk import NotifyDesk
from services.notify.subscriptions import PushSubscriptions
from services.web.app import create_app
from services.web.context import HubContext
from tests.support.push_service import PushServiceStandIn
from tests.support.server import ServerThread
from tests.web.conftest import bearer
from tests.web.test_auth import _browser_login


@pytest.fixture
def desk(web_ctx: HubContext) -> Iterator[NotifyDesk]:
    d = NotifyDesk(web_ctx.settings.db, web_ctx.site.site, SystemClock(), web_ctx.secret_key)
    yield d
    d.close()


@pytest.fixture
def push_server(web_ctx: HubContext, desk: NotifyDesk) -> Iterator[ServerThread]:
    s = ServerThread(create_app(dataclasses.replace(web_ctx, notify=desk))).start()
    yield s
    s.stop()


def test_manifest_worker_and_icons_are_served_under_the_csp(push_server: ServerThread) -> None:
    base = push_server.url
    manifest = httpx.get(f"{base}/manifest.webmanifest")
    assert manifest.headers["content-type"].startswith("application/manifest+json")
    body = manifest.json()
    assert body["start_url"] == "/"
    assert body["display"] == "standalone"
    for icon in body["icons"]:
        png = httpx.get(f"{base}{icon['src']}")
        assert png.headers["content-type"] == "image/png"
        assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
        width, height = struct.unpack(">II", png.content[16:24])
        assert icon["sizes"] == f"{width}x{height}"
    worker = httpx.get(f"{base}/sw.js")
    assert worker.headers["content-type"].startswith("text/javascript")
    assert "script-src 'self'" in worker.headers["content-security-policy"]
    assert 'addEventListener("push"' in worker.text
    assert httpx.get(f"{base}/icon-64.png").status_code == 404


@pytest.fixture
def service() -> Iterator[PushServiceStandIn]:
    s = PushServiceStandIn().start()  # only its subscriptions: nothing is sent here
    yield s
    s.stop()


def test_subscribe_and_unsubscribe(
    push_server: ServerThread, desk: NotifyDesk, service: PushServiceStandIn
) -> None:
    base = push_server.url
    sub = service.subscribe()
    assert httpx.get(f"{base}/api/push/key").status_code == 401
    key = httpx.get(f"{base}/api/push/key", headers=bearer(base, "sofie")).json()
    assert len(key["public_key"]) == 87
    assert [w["id"] for w in key["wards"]] == ["a", "b"]

    client = _browser_login(base, "sofie")
    try:
        body = {"subscription": sub, "wards": ["a"]}
        refused = client.post("/api/push/subscriptions", json=body)
        assert refused.status_code == 403  # a cookie session needs the CSRF token
        csrf = {"X-CSRF-Token": client.get("/").text.split('"csrf": "')[1].split('"')[0]}
        made = client.post("/api/push/subscriptions", json=body, headers=csrf)
        assert made.status_code == 201, made.text
        phone = made.json()
        assert phone["wards"] == ["a"]
        assert phone["name"] == "sofie (web)"
        assert "endpoint" not in phone  # the endpoint is a capability: never shown back
        bad = client.post(
            "/api/push/subscriptions", json={"subscription": sub, "wards": ["z"]}, headers=csrf
        )
        assert bad.status_code == 422
        junk = client.post(
            "/api/push/subscriptions",
            json={"subscription": {"endpoint": "ftp://x"}, "wards": ["a"]},
            headers=csrf,
        )
        assert junk.status_code == 422
        stored = PushSubscriptions(desk.store).phones()
        assert [(p.id, p.username, p.wards) for p in stored] == [(phone["id"], "sofie", ("a",))]
        assert client.get("/api/push/key").json()["subscriptions"] == [phone]
        # someone else cannot drop it
        other = httpx.request(
            "DELETE",
            f"{base}/api/push/subscriptions",
            json={"endpoint": sub["endpoint"]},
            headers=bearer(base, "mads"),
        )
        assert other.status_code == 404
        gone = client.request(
            "DELETE", "/api/push/subscriptions", json={"endpoint": sub["endpoint"]}, headers=csrf
        )
        assert gone.status_code == 204
        assert PushSubscriptions(desk.store).phones() == []
    finally:
        client.close()


def test_board_offers_the_panel_and_the_manifest(push_server: ServerThread) -> None:
    client = _browser_login(push_server.url, "sofie")
    try:
        page = client.get("/").text
    finally:
        client.close()
    assert '<link rel="manifest" href="/manifest.webmanifest">' in page
    assert 'id="push"' in page
    assert '<script src="/static/push.js" defer></script>' in page
