"""Logins, tokens, sessions, CSRF, throttling and security headers over real HTTP."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from itsdangerous import TimestampSigner
from starlette.requests import Request

from carehub.clock import SystemClock
from services.alarms.service import AlarmService
from services.web.app import create_app
from services.web.context import HubContext
from services.web.routes.auth import _client
from services.web.security import SESSION_COOKIE, TOKEN_MAX_AGE_S, LoginAudit, Signer
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


# --- the login path's edges (mutation testing, docs/testing.md) ------------------------------


def _token_from(address: str, base: str, username: str, password: str) -> httpx.Response:
    """POST /api/token from another loopback address (127.0.0.x), as another client."""
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(transport=transport, timeout=10) as client:
        return client.post(f"{base}/api/token", data={"username": username, "password": password})


def test_login_names_and_passwords_up_to_their_limits_are_checked_not_refused(
    server: ServerThread,
) -> None:
    """150 characters of name and 1,024 of password are still a login attempt (401); one more
    is refused unhashed (422) and counted, whichever of the two is too long."""
    url = f"{server.url}/api/token"
    cases = [("n" * 150, "wrong", 401), ("n" * 151, "wrong", 422), ("sofie", "p" * 1024, 401),
             ("sofie", "p" * 1025, 422), ("n" * 151, "p" * 1025, 422)]  # fmt: skip
    for username, password, status in cases:
        r = httpx.post(url, data={"username": username, "password": password})
        assert r.status_code == status, (len(username), len(password))
    metrics = httpx.get(f"{server.url}/metrics").text
    assert "carehub_login_refused_oversize_total 3" in metrics
    assert "carehub_login_failures_total 2" in metrics


def test_a_right_password_clears_the_failures_of_its_name_and_address(
    server: ServerThread,
) -> None:
    """Two failures, a login, two more failures: still within the three free ones, so the
    right password is let in at once; the counts are on /metrics."""
    codes = [
        _token_from("127.0.0.5", server.url, "mads", password).status_code
        for password in ("wrong-1", "wrong-2", PASSWORD, "wrong-3", "wrong-4", PASSWORD)
    ]
    assert codes == [401, 401, 200, 401, 401, 200]
    metrics = httpx.get(f"{server.url}/metrics").text
    assert "carehub_logins_total 2" in metrics
    assert "carehub_login_failures_total 4" in metrics
    assert "carehub_login_throttled_total 0" in metrics


def test_each_failed_login_is_audited_with_how_many_in_a_row_within_the_rate(
    web_ctx: HubContext, tmp_path: Path
) -> None:
    """The audit row says the address and the count in a row for the pair; past the rows a
    minute allows (two here) a failure is only counted."""
    alarms = AlarmService.open(tmp_path / "hub.db", SystemClock())
    web_ctx.alarms = alarms
    server = ServerThread(create_app(web_ctx)).start()
    try:
        server.app.state.login_audit = LoginAudit(per_minute=2)
        for i in range(3):
            r = _token_from("127.0.0.6", server.url, "ida", f"not-her-password-{i}")
            assert r.status_code == 401
        metrics = httpx.get(f"{server.url}/metrics").text
        audit = alarms.audit_log()
    finally:
        server.stop()
        alarms.close()
    rows = [(e.actor, e.detail) for e in audit if e.action == "login_failed"]
    assert rows == [
        ("ida", {"address": "127.0.0.6", "in_a_row": 1}),
        ("ida", {"address": "127.0.0.6", "in_a_row": 2}),
    ]
    assert "carehub_login_failures_unaudited_total 1" in metrics
    assert "carehub_login_failures_total 3" in metrics


@pytest.mark.parametrize(("client", "expected"), [(("10.0.0.7", 50123), "10.0.0.7"), (None, "?")])
def test_the_client_address_of_a_request_with_or_without_one(
    client: tuple[str, int] | None, expected: str
) -> None:
    """A request over a Unix socket has no client address: the throttle and the audit log key
    it as "?" rather than failing the login."""
    request = Request({"type": "http", "method": "POST", "headers": [], "client": client})
    assert _client(request) == expected
