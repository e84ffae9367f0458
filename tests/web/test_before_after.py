"""GET /api/reports/before-after and the /reports page's before/after section over a real web
app (uvicorn, real SQLite): managers and admins only, periods validated, every read audited,
the page in Danish and English with its chart."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from carehub.clock import FakeClock
from carehub.site import SiteIndex
from carehub.visits import Visit
from gateway.store.sqlite import SqliteEventStore
from gateway.store.visits import VisitStore, visits_between_in
from services.alarms.service import AlarmService
from services.reports.service import StoreReportSource
from services.web.app import create_app
from services.web.context import HubContext
from services.web.users import UserStore
from tests.support.server import ServerThread
from tests.web.conftest import PASSWORD, bearer

ROUTE = "/api/reports/before-after"
QUERY = "before_from=2026-11-01&before_to=2026-11-01&after_from=2026-11-22&after_to=2026-11-22"


def at(day: int, hh: int, mm: int) -> datetime:
    """UTC of a November 2026 local time (CET = UTC+1)."""
    return datetime(2026, 11, day, hh - 1, mm, tzinfo=UTC)


@pytest.fixture
def served(
    tmp_path: Path, users: UserStore, test_index: SiteIndex
) -> Iterator[tuple[ServerThread, AlarmService]]:
    from carehub.settings import Settings

    db = tmp_path / "hub.db"
    visits = VisitStore(db, "testhjem")
    visits.add_many(
        [
            Visit("testhjem", at(1, 23, 0), at(1, 23, 10), resident_id="r-001"),  # 12 min
            Visit("testhjem", at(22, 23, 0), at(22, 23, 4), room="a-1"),  # 6 min
        ]
    )
    visits.close()
    alarms = AlarmService.open(db)
    events = SqliteEventStore(db)
    ctx = HubContext(
        settings=Settings(db=db, _env_file=None),  # type: ignore[call-arg]
        site=test_index,
        users=users,
        secret_key="test-secret-key-not-for-production",
        clock=FakeClock(datetime(2026, 11, 24, 12, 0, tzinfo=UTC)),
        alarms=alarms,
        reports=StoreReportSource(
            "testhjem", events, alarms.raised_between, visits=visits_between_in(db, "testhjem")
        ),
    )
    server = ServerThread(create_app(ctx)).start()
    yield server, alarms
    server.stop()
    events.close()
    alarms.close()


def test_before_after_is_for_managers_and_admins_and_audited(
    served: tuple[ServerThread, AlarmService],
) -> None:
    server, alarms = served
    base = server.url
    assert httpx.get(f"{base}{ROUTE}?{QUERY}").status_code == 401
    assert httpx.get(f"{base}{ROUTE}?{QUERY}", headers=bearer(base, "sofie")).status_code == 403
    for user in ("mads", "ida"):
        r = httpx.get(f"{base}{ROUTE}?{QUERY}", headers=bearer(base, user))
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["before"]["work_minutes_per_resident_night"] == pytest.approx(12)
        assert body["after"]["work_minutes_per_resident_night"] == pytest.approx(6)
        assert body["difference"]["work_minutes_per_resident_night"]["mean"] == pytest.approx(6)
    reads = [e for e in alarms.audit_log() if e.action == "report_read"]
    assert [(e.actor, e.detail["report"], e.detail["after"]) for e in reads] == [
        ("mads", "before-after", "2026-11-22:2026-11-22"),
        ("ida", "before-after", "2026-11-22:2026-11-22"),
    ]


def test_before_after_validates_its_periods(served: tuple[ServerThread, AlarmService]) -> None:
    server, _ = served
    h = bearer(server.url, "mads")
    missing = "before_from=2026-11-01&before_to=2026-11-02&after_from=2026-11-22"
    assert httpx.get(f"{server.url}{ROUTE}?{missing}", headers=h).status_code == 422
    backwards = QUERY.replace("before_to=2026-11-01", "before_to=2026-10-01")
    r = httpx.get(f"{server.url}{ROUTE}?{backwards}", headers=h)
    assert r.status_code == 422
    assert "before" in r.json()["detail"]
    assert httpx.get(f"{server.url}{ROUTE}?{QUERY}&ward=zz", headers=h).status_code == 422


@pytest.mark.parametrize(
    ("lang", "heading", "legend"),
    [("da", "Målt natarbejde, før og efter", "Før"), ("en", "Measured night work", "Before")],
)
def test_reports_page_shows_both_periods_with_a_chart(
    served: tuple[ServerThread, AlarmService], lang: str, heading: str, legend: str
) -> None:
    server, _ = served
    with httpx.Client(base_url=server.url) as manager:
        page = manager.get("/login")
        csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
        r = manager.post("/login", data={"username": "mads", "password": PASSWORD, "csrf": csrf})
        assert r.status_code == 303
        r = manager.get(
            f"/reports?from=2026-11-22&to=2026-11-22&before_from=2026-11-01"
            f"&before_to=2026-11-01&lang={lang}"
        )
    assert r.status_code == 200, r.text
    html = r.text
    section = html.split('id="before-after"')[1].split("</section>")[0]
    assert heading in section
    assert 'id="ba-work">6.0 (6.0–6.0)' in section  # one night each: no spread
    assert f">{legend}</text>" in section  # the chart's legend
    assert "2026-11-01 – 2026-11-01" in section
