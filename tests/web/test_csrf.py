"""CSRF tokens are compared, not only looked for: the cookie API path against the session's
token, the login form against its cookie (each test fails when its check is reduced to
"a token is present"; docs/testing.md, the mutation table)."""

from __future__ import annotations

import re

import httpx

from services.web.routes.auth import LOGIN_CSRF_COOKIE
from services.web.security import Session, csrf_ok
from tests.support.server import ServerThread
from tests.web.conftest import PASSWORD


def _logged_in(base: str) -> httpx.Client:
    """A browser-like client logged in as staff through the login form."""
    client = httpx.Client(base_url=base, follow_redirects=False)
    form = client.get("/login")
    found = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert found is not None
    r = client.post(
        "/login", data={"username": "sofie", "password": PASSWORD, "csrf": found.group(1)}
    )
    assert r.status_code == 303, r.text
    return client


def _page_csrf(client: httpx.Client) -> str:
    """The session's CSRF token as the pages hand it to their forms."""
    page = client.get("/devices")
    assert page.status_code == 200
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def test_csrf_ok_compares_the_token() -> None:
    session = Session("sofie", "the-real-token")
    assert csrf_ok(session, "the-real-token")
    assert not csrf_ok(session, "another-token")
    assert not csrf_ok(session, "")
    assert not csrf_ok(session, None)


def test_cookie_api_path_refuses_a_wrong_csrf_header(server: ServerThread) -> None:
    """A header that is present but not the session's token is refused like a missing one;
    the session's own token gets past the check (to the route: no such alarm)."""
    client = _logged_in(server.url)
    try:
        token = _page_csrf(client)
        wrong = client.post("/api/alarms/x/ack", headers={"X-CSRF-Token": token + "x"})
        assert wrong.status_code == 403
        assert "CSRF" in wrong.json()["detail"]
        right = client.post("/api/alarms/x/ack", headers={"X-CSRF-Token": token})
        assert right.status_code != 403, right.text
    finally:
        client.close()


def test_login_form_refuses_a_token_that_is_not_its_cookie(server: ServerThread) -> None:
    """A login form whose token differs from the login cookie (a forged cross-site post with
    a token of the attacker's own) is refused even with the right password."""
    with httpx.Client(base_url=server.url, follow_redirects=False) as client:
        form = client.get("/login")
        assert form.status_code == 200
        assert client.cookies.get(LOGIN_CSRF_COOKIE)
        r = client.post(
            "/login",
            data={"username": "sofie", "password": PASSWORD, "csrf": "forged-token"},
        )
        assert r.status_code == 403
        assert "carehub_session" not in r.headers.get("set-cookie", "")
