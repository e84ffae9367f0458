"""Issue #19 over real HTTP (uvicorn) and the real CLI: logins that cannot be turned against
staff, bounded memory, revocation, the password policy, API docs behind login, robust query
parameters (docs/security.md, the threat table)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from carehub.clock import SystemClock
from services.alarms.service import AlarmService
from services.web.app import create_app
from services.web.context import HubContext
from services.web.security import LoginAudit, LoginThrottle
from services.web.users import Role, UserError, UserStore, password_problem
from tests.support.server import ServerThread
from tests.web.conftest import PASSWORD, bearer

ROOT = Path(__file__).resolve().parents[2]


def _from(address: str) -> httpx.Client:
    """A client whose connections come from another loopback address (127.0.0.x)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=10)


def _token(client: httpx.Client, base: str, username: str, password: str) -> httpx.Response:
    return client.post(f"{base}/api/token", data={"username": username, "password": password})


@pytest.fixture
def audited(web_ctx: HubContext, tmp_path: Path) -> Iterator[tuple[ServerThread, AlarmService]]:
    alarms = AlarmService.open(tmp_path / "hub.db", SystemClock())
    web_ctx.alarms = alarms
    server = ServerThread(create_app(web_ctx)).start()
    yield server, alarms
    server.stop()
    alarms.close()


# --- 1: login protection that cannot be turned against staff ----------------------------------


def test_guessing_elsewhere_never_locks_out_the_right_password(server: ServerThread) -> None:
    with _from("127.0.0.2") as attacker:
        codes = [_token(attacker, server.url, "sofie", f"guess-{i}").status_code for i in range(8)]
    assert codes[:3] == [401, 401, 401]
    assert 429 in codes
    with _from("127.0.0.3") as sofie:
        assert _token(sofie, server.url, "sofie", PASSWORD).status_code == 200


def test_backoff_doubles_per_name_and_address(server: ServerThread) -> None:
    throttle: LoginThrottle = server.app.state.throttle
    waits = []
    for i in range(6):
        throttle.failed("127.0.0.9", "mads")
        if i >= 2:
            waits.append(throttle.retry_after("127.0.0.9", "mads"))
    assert waits == [1, 2, 4, 8]
    assert throttle.retry_after("127.0.0.9", "ida") == 0
    assert throttle.retry_after("127.0.0.8", "mads") == 0


def test_huge_usernames_cost_neither_memory_nor_hashing(server: ServerThread) -> None:
    throttle: LoginThrottle = server.app.state.throttle
    huge = "x" * 1_000_000
    started = time.monotonic()
    with httpx.Client(timeout=30) as client:
        for _ in range(20):
            r = _token(client, server.url, huge, "whatever")
            assert r.status_code == 422
    assert time.monotonic() - started < 10
    assert len(throttle) == 0
    metrics = httpx.get(f"{server.url}/metrics").text
    assert "carehub_login_refused_oversize_total 20" in metrics


def test_the_throttle_table_is_an_lru_with_a_cap() -> None:
    throttle = LoginThrottle(capacity=100)
    for i in range(5_000):
        throttle.failed("10.0.0.1", f"name-{i}")
    assert len(throttle) == 100
    assert throttle.retry_after("10.0.0.1", "name-0") == 0  # evicted, oldest first


def test_audit_rows_are_capped_per_minute_and_each_new_minute_allows_them_again() -> None:
    """A flood of failed logins writes `per_minute` audit rows a minute and only counts the
    rest; the next minute starts afresh, so failures after a flood are audited again. The
    minutes are whole minutes of the monotonic clock (a fake one here)."""
    now = [120.0]
    audit = LoginAudit(per_minute=2, monotonic=lambda: now[0])
    allowed = [audit.may_write() for _ in range(5)]  # five failures within one minute
    assert allowed == [True, True, False, False, False]
    assert audit.snapshot()["carehub_login_failures_unaudited_total"] == 3
    now[0] = 179.9  # still the same minute
    assert audit.may_write() is False
    now[0] = 180.0  # the next one
    assert [audit.may_write() for _ in range(3)] == [True, True, False]
    now[0] = 299.0  # two minutes on, the cap counts from zero again
    assert [audit.may_write() for _ in range(3)] == [True, True, False]
    assert audit.snapshot()["carehub_login_failures_unaudited_total"] == 6


def test_failed_logins_are_audited_with_the_address_and_counted(
    audited: tuple[ServerThread, AlarmService],
) -> None:
    server, alarms = audited
    with _from("127.0.0.4") as client:
        assert _token(client, server.url, "ida", "not-her-password").status_code == 401
    entries = [e for e in alarms.audit_log() if e.action == "login_failed"]
    assert [(e.actor, e.detail["address"]) for e in entries] == [("ida", "127.0.0.4")]
    assert "carehub_login_failures_total 1" in httpx.get(f"{server.url}/metrics").text


# --- 2: revocation ----------------------------------------------------------------------------


def _browser(base: str, username: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=base, follow_redirects=False, timeout=10)
    form = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf is not None
    r = client.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf": csrf.group(1)}
    )
    assert r.status_code == 303
    return client, client.cookies["carehub_session"]


def test_logout_ends_the_session_everywhere(server: ServerThread) -> None:
    client, cookie = _browser(server.url, "sofie")
    copied = {"carehub_session": cookie}
    assert httpx.get(f"{server.url}/api/devices", cookies=copied).status_code == 200
    assert client.post("/logout").status_code == 303
    client.close()
    assert httpx.get(f"{server.url}/api/devices", cookies=copied).status_code == 401


def test_a_new_password_ends_old_tokens(server: ServerThread, web_ctx: HubContext) -> None:
    headers = bearer(server.url, "mads")
    assert httpx.get(f"{server.url}/api/devices", headers=headers).status_code == 200
    web_ctx.users.upsert("mads", "a-brand-new-passphrase", Role.MANAGER)
    assert httpx.get(f"{server.url}/api/devices", headers=headers).status_code == 401


def test_cli_disable_and_enable(server: ServerThread, web_ctx: HubContext) -> None:
    headers = bearer(server.url, "sofie")
    env = {**os.environ, "CAREHUB_DB": str(web_ctx.settings.db)}

    def carehub(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "app", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=60,
            check=False,
        )

    r = carehub("user", "disable", "sofie")
    assert r.returncode == 0, r.stderr
    assert httpx.get(f"{server.url}/api/devices", headers=headers).status_code == 401
    assert (
        httpx.post(
            f"{server.url}/api/token", data={"username": "sofie", "password": PASSWORD}
        ).status_code
        == 401
    )
    assert carehub("user", "disable", "nobody").returncode == 2
    assert carehub("user", "enable", "sofie").returncode == 0
    assert httpx.get(f"{server.url}/api/devices", headers=headers).status_code == 401
    assert httpx.get(f"{server.url}/api/devices", headers=bearer(server.url, "sofie")).is_success


# --- 7: passwords (NIST SP 800-63B) -----------------------------------------------------------


@pytest.mark.parametrize(
    "weak",
    [
        "aaaaaaaaaaaa",
        " " * 12,
        "password12",
        "password1234",
        "qwertyuiop12",
        "abababababab",
        "1q2w3e4r5t6y",
        "Kodeord2024!!",
        "sofie-sofie-sofie",
    ],
)
def test_weak_passwords_are_refused(weak: str, web_ctx: HubContext) -> None:
    assert password_problem(weak, "sofie") is not None
    with pytest.raises(UserError):
        web_ctx.users.upsert("sofie", weak, Role.STAFF)


@pytest.mark.parametrize(
    "good", ["correct-horse-battery", "Nattevagt på Lindegården 7", "x7#Kq!p2Lm9z"]
)
def test_passphrases_need_no_composition_rules(good: str) -> None:
    assert password_problem(good, "sofie") is None


def test_existing_passwords_keep_working(tmp_path: Path) -> None:
    import sqlite3

    from argon2 import PasswordHasher

    db = tmp_path / "old.db"
    UserStore(db).close()
    with sqlite3.connect(db) as conn:  # a login set under the old rule (10 characters)
        conn.execute(
            "INSERT INTO users VALUES ('old', ?, 'staff', 'x', 'x', 0, 0)",
            (PasswordHasher().hash("tenletters"),),
        )
    store = UserStore(db)
    assert store.authenticate("old", "tenletters") is not None
    store.close()


# --- 10: API docs -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_api_docs_need_a_login_in_production(server: ServerThread, path: str) -> None:
    assert httpx.get(f"{server.url}{path}").status_code == 401
    assert httpx.get(f"{server.url}{path}", headers=bearer(server.url, "sofie")).status_code == 200


def test_api_docs_are_open_in_the_demo(web_ctx: HubContext) -> None:
    web_ctx.demo = True
    server = ServerThread(create_app(web_ctx)).start()
    try:
        assert httpx.get(f"{server.url}/openapi.json").status_code == 200
        assert httpx.get(f"{server.url}/docs").status_code == 200
    finally:
        server.stop()


# --- 6: query parameters ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "since",
    ["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:59", "1970-01-01T00:00:00Z"],
)
def test_times_outside_the_supported_range_are_422(
    audited: tuple[ServerThread, AlarmService], since: str
) -> None:
    server, _ = audited
    r = httpx.get(
        f"{server.url}/api/alarms",
        params={"state": "all", "since": since},
        headers=bearer(server.url, "sofie"),
    )
    assert r.status_code == 422, r.text
    ok = httpx.get(
        f"{server.url}/api/alarms",
        params={"state": "all", "since": "2026-01-01T00:00:00+01:00"},
        headers=bearer(server.url, "sofie"),
    )
    assert ok.status_code == 200


def test_report_periods_are_capped(server: ServerThread) -> None:
    r = httpx.get(
        f"{server.url}/api/reports/sensitivity",
        params={"from": "2025-01-01", "to": "2026-02-04"},  # 400 nights
        headers=bearer(server.url, "mads"),
    )
    assert r.status_code == 422
    assert "at most 366 nights" in r.text
    year = httpx.get(
        f"{server.url}/api/reports/sensitivity",
        params={"from": "2024-01-01", "to": "2024-12-31"},  # 366 nights: allowed
        headers=bearer(server.url, "mads"),
    )
    assert year.status_code == 503  # past the checks; this test app has no report store


def test_one_expensive_report_at_a_time_per_user(
    server: ServerThread, web_ctx: HubContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    import concurrent.futures

    from services.web.routes import reports

    def slow(*_args: object, **_kwargs: object) -> dict[str, object]:
        time.sleep(1.5)
        return {"slow": True}

    monkeypatch.setattr(reports, "sensitivity", slow)
    web_ctx.reports = object()  # type: ignore[assignment]
    mads, ida = bearer(server.url, "mads"), bearer(server.url, "ida")
    url = f"{server.url}/api/reports/sensitivity"
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        first = pool.submit(httpx.get, url, headers=mads, timeout=10)
        time.sleep(0.5)
        second = pool.submit(httpx.get, url, headers=mads, timeout=10)
        other = pool.submit(httpx.get, url, headers=ida, timeout=10)
        assert first.result().status_code == 200
        assert second.result().status_code == 429
        assert second.result().headers["Retry-After"] == "5"
        assert other.result().status_code == 200
    assert httpx.get(url, headers=mads, timeout=10).status_code == 200
