"""Logins, tokens, sessions, CSRF, throttling and security headers over real HTTP."""

from __future__ import annotations

import re

import httpx
import pytest
from itsdangerous import TimestampSigner

from services.web.context import HubContext
from services.web.security import SESSION_COOKIE, TOKEN_MAX_AGE_S, Signer
from tests.support.server import ServerThread
from tests.web.conftest import PASSWORD, bearer


def test_token_flow_and_wrong_password(server: ServerThread) -> None:
    ok = httpx.post(f"{server.url}/api/token", data={"username": "sofie", "password": PASSWORD})
    assert ok.status_code == 200
    assert set(ok.json()) == {"access_token", "token_type"}
    bad = httpx.post(f"{server.url}/api/token", data={"username": "sofie", "password": "nope"})
    assert bad.status_code == 401
    assert bad.headers["WWW-Authenticate"] == "Bearer"
    unknown = httpx.post(
        f"{server.url}/api/token", data={"username": "ghost", "password": PASSWORD}
    )
    assert unknown.status_code == 401


def test_missing_or_forged_token_is_401_not_403(server: ServerThread) -> None:
    assert httpx.get(f"{server.url}/api/devices").status_code == 401
    forged = {"Authorization": "Bearer eyJ1Ijoic29maWUifQ.forged.sig"}
    assert httpx.get(f"{server.url}/api/devices", headers=forged).status_code == 401
    assert (
        httpx.get(f"{server.url}/api/devices", headers=bearer(server.url, "sofie")).status_code
        == 200
    )


def test_login_is_throttled_after_repeated_failures(server: ServerThread) -> None:
    for _ in range(3):  # three free, then the pair (name, address) waits
        r = httpx.post(f"{server.url}/api/token", data={"username": "mads", "password": "wrong"})
        assert r.status_code == 401
    r = httpx.post(f"{server.url}/api/token", data={"username": "mads", "password": PASSWORD})
    assert r.status_code == 429
    assert int(r.headers["Retry-After"]) > 0


def _browser_login(base: str, username: str, password: str = PASSWORD) -> httpx.Client:
    client = httpx.Client(base_url=base, follow_redirects=False)
    form = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    r = client.post(
        "/login",
        data={
            "username": username,
            "password": password,
            "csrf": csrf.group(1),
            "next": "/devices",
        },
    )
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/devices"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "samesite=strict" in cookie.lower()
    return client


def test_browser_session_needs_csrf_for_changes(server: ServerThread) -> None:
    client = _browser_login(server.url, "sofie")
    try:
        page = client.get("/devices")
        assert page.status_code == 200
        assert "fall-a1" in page.text
        # A state change with the cookie but without the CSRF token is refused.
        r = client.post("/api/alarms/x/ack")
        assert r.status_code == 403
        assert "CSRF" in r.json()["detail"]
    finally:
        client.close()


def test_login_form_without_csrf_is_refused(server: ServerThread) -> None:
    r = httpx.post(f"{server.url}/login", data={"username": "sofie", "password": PASSWORD})
    assert r.status_code == 403


def test_pages_redirect_to_login_and_open_redirects_are_refused(server: ServerThread) -> None:
    r = httpx.get(f"{server.url}/devices", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=/devices"
    form = httpx.get(f"{server.url}/login?next=//evil.example")
    assert 'name="next" value="/"' in form.text


def test_security_headers_on_every_response(server: ServerThread) -> None:
    for path in ("/login", "/healthz", "/api/devices"):
        r = httpx.get(f"{server.url}{path}")
        csp = r.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp
        assert "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert r.headers["X-Frame-Options"] == "DENY"
        assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_pages_have_no_inline_scripts(server: ServerThread) -> None:
    html = httpx.get(f"{server.url}/login").text
    for script in re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S):
        attrs, _body = script
        assert "src=" in attrs or 'type="application/json"' in attrs, script


def test_healthz_reports_components_and_503_when_degraded(
    server: ServerThread, web_ctx: HubContext
) -> None:
    r = httpx.get(f"{server.url}/healthz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "components": {"broker": "ok", "store": "ok"}}
    web_ctx.health = lambda: {"broker": "disconnected", "store": "ok"}
    r = httpx.get(f"{server.url}/healthz")
    assert r.status_code == 503
    assert r.json()["status"] == "degraded"


def test_metrics_is_prometheus_text(server: ServerThread) -> None:
    r = httpx.get(f"{server.url}/metrics")
    assert r.status_code == 200
    assert "carehub_messages_in_total 3" in r.text


def test_language_switch(server: ServerThread) -> None:
    assert "Log ind" not in httpx.get(f"{server.url}/login").text  # the test site is English
    assert "Log ind" in httpx.get(f"{server.url}/login?lang=da").text


def test_user_store_refuses_weak_passwords_and_bad_names(web_ctx: HubContext) -> None:
    import pytest

    from services.web.users import Role, UserError

    with pytest.raises(UserError, match="too short"):
        web_ctx.users.upsert("newbie", "short", Role.STAFF)
    with pytest.raises(UserError, match="username"):
        web_ctx.users.upsert("bad name!", PASSWORD, Role.STAFF)
    assert web_ctx.users.authenticate("sofie", PASSWORD) is not None
    assert web_ctx.users.authenticate("sofie", PASSWORD + "x") is None


def test_a_signed_token_or_cookie_of_an_unknown_user_is_401(
    server: ServerThread, web_ctx: HubContext
) -> None:
    """Properly signed, but for a login that no longer exists (deleted, or a site restored
    from an older backup): refused like a forged one, not a server error."""
    signer = Signer(web_ctx.secret_key)
    token = {"Authorization": f"Bearer {signer.new_token('ghost', 0)}"}
    assert httpx.get(f"{server.url}/api/devices", headers=token).status_code == 401
    cookie, _session = signer.new_session("ghost", 0)
    with httpx.Client(base_url=server.url, cookies={SESSION_COOKIE: cookie}) as client:
        assert client.get("/api/devices").status_code == 401


def test_an_api_token_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bearer token is good for TOKEN_MAX_AGE_S after it was issued, not longer."""
    signer = Signer("test-secret-key-not-for-production")
    issued = 1_795_384_800  # 2026-11-22 22:00 UTC, a fixed time
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda _self: issued)
    token = signer.new_token("sofie", 3)
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda _self: issued + TOKEN_MAX_AGE_S)
    assert signer.read_token(token) == ("sofie", 3)
    later = issued + TOKEN_MAX_AGE_S + 1
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda _self: later)
    assert signer.read_token(token) is None


def test_each_session_gets_its_own_csrf_token_and_the_cookie_holds_it() -> None:
    """The session a login hands back is the one its cookie carries, and its CSRF token is
    fresh for every session (a fixed or empty one would be guessable)."""
    signer = Signer("test-secret-key-not-for-production")
    cookie, session = signer.new_session("sofie", 3)
    assert signer.read_session(cookie) == session
    assert (session.username, session.generation) == ("sofie", 3)
    _other_cookie, other = signer.new_session("sofie", 3)
    assert other.csrf != session.csrf
    assert len(session.csrf) >= 32
