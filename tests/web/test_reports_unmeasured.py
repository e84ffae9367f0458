"""The /reports page and the report API over a real SQLite file and uvicorn: without a `from`
the period starts at the first measured night, the page says how many nights were not
measured, and it shows the alarm quality figures, in English and Danish
(docs/freed-hours.md, docs/web-app.md)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from carehub.clock import FakeClock
from carehub.settings import Settings
from carehub.site import Priority, SiteIndex
from gateway.pipeline import Ingestor
from gateway.store.sqlite import SqliteEventStore
from services.alarms.model import Alarm, AlarmState, Outcome
from services.alarms.service import AlarmService
from services.notify.channel import Notice, Step, Urgency
from services.notify.outbox import Outbox
from services.reports.service import StoreReportSource
from services.web.app import create_app
from services.web.context import HubContext
from services.web.users import UserStore
from tests.support.server import ServerThread
from tests.web.conftest import PASSWORD, USERS

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
"""Default period: the 30 nights 25 Oct … 23 Nov."""
MEASURED = (date(2026, 11, 21), date(2026, 11, 22))
"""fall-a1 beats through these two nights; nothing before them, nothing on the 23rd."""
FALL_AT = datetime(2026, 11, 22, 22, 0, tzinfo=UTC)  # 23:00 local, the night of the 22nd


def _history(db: Path, index: SiteIndex) -> None:
    store = SqliteEventStore(db)
    ingestor = Ingestor(index, store)
    seq = 0
    for night in MEASURED:
        lo, hi = index.night_bounds(night)
        at = lo
        while at < hi:
            seq += 1
            body = (
                f'{{"v": 1, "seq": {seq}, "ts": "{at.isoformat()}", "type": "heartbeat",'
                ' "battery": 80, "rssi": -60}'
            )
            result = ingestor.ingest(
                "carehub/testhjem/devices/fall-a1/up", body.encode(), at + timedelta(seconds=1)
            )
            assert result.accepted, result
            at += timedelta(minutes=1)
    ingestor.close()
    store.close()


def _alarms(service: AlarmService) -> None:
    """A fall acknowledged after 90 s and assisted, told to a phone 6 s after raising; a
    diaper alarm the sensor closed, never acknowledged."""
    fall = Alarm(
        alarm_id="fall-1", site="testhjem", rule="fall", kind="fall", priority=Priority.HIGH,
        state=AlarmState.RESOLVED, resident_id="r-001", room="a-1", raised_at=FALL_AT,
        acknowledged_at=FALL_AT + timedelta(seconds=90), acknowledged_by="sofie",
        resolved_at=FALL_AT + timedelta(minutes=10), resolved_by="sofie",
        outcome=Outcome.ASSISTED,
    )  # fmt: skip
    diaper = Alarm(
        alarm_id="diaper-1", site="testhjem", rule="diaper_change", kind="diaper",
        priority=Priority.MEDIUM, state=AlarmState.RESOLVED, resident_id="r-001",
        raised_at=FALL_AT - timedelta(days=1), resolved_at=FALL_AT - timedelta(hours=23),
        resolved_by="sensor",
    )  # fmt: skip
    store = service.store
    with store.transaction():
        store.import_alarm(fall)
        store.import_alarm(diaper)
    outbox = Outbox(store)
    notice = Notice("fall-1", Step.FIRST, Urgency.HIGH, "Fall – room a-1", "r-001")
    with store.transaction():
        row = outbox.add("fall-1", "phone-a", "ntfy", "testhjem-a", notice, FALL_AT)
    outbox.finish(row, "sent", FALL_AT + timedelta(seconds=6))


@pytest.fixture
def reports_server(tmp_path: Path, test_index: SiteIndex) -> Iterator[ServerThread]:
    db = tmp_path / "hub.db"
    _history(db, test_index)
    clock = FakeClock(NOW)
    users = UserStore(db)
    for name, role in USERS.items():
        users.upsert(name, PASSWORD, role)
    alarms = AlarmService.open(db, clock)
    _alarms(alarms)
    events = SqliteEventStore(db)
    outbox = Outbox(alarms.store)

    def deliveries(lo: datetime, hi: datetime) -> list[dict[str, Any]]:
        return [{**r.delivery(), "alarm_id": r.alarm_id} for r in outbox.between(lo, hi)]

    ctx = HubContext(
        settings=Settings(db=db, _env_file=None),  # type: ignore[call-arg]
        site=test_index,
        users=users,
        secret_key="test-secret-key-not-for-production",
        clock=clock,
        alarms=alarms,
        reports=StoreReportSource("testhjem", events, alarms.raised_between, deliveries=deliveries),
    )
    server = ServerThread(create_app(ctx)).start()
    yield server
    server.stop()
    events.close()
    alarms.close()
    users.close()


def _login(client: httpx.Client, username: str) -> None:
    page = client.get("/login")
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    r = client.post("/login", data={"username": username, "password": PASSWORD, "csrf": csrf})
    assert r.status_code == 303, r.text


def _text(html: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', html)
    assert found is not None, element_id
    return " ".join(found.group(1).split())


def test_the_default_period_starts_at_the_first_measured_night(
    reports_server: ServerThread,
) -> None:
    """The API without `from`: 21–23 Nov, two nights, the 23rd unmeasured; with a `from`
    before the data, the nights before it are listed too. Both reports agree."""
    with httpx.Client(base_url=reports_server.url, timeout=30) as web:
        token = web.post("/api/token", data={"username": "mads", "password": PASSWORD})
        web.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
        fh = web.get("/api/reports/freed-hours").json()
        assert (fh["from"], fh["to"], fh["nights"]) == ("2026-11-21", "2026-11-23", 2)
        assert fh["unmeasured_nights"] == ["2026-11-23"]
        asked = web.get("/api/reports/freed-hours", params={"from": "2026-11-19"}).json()
        assert asked["from"] == "2026-11-19"
        assert asked["unmeasured_nights"] == ["2026-11-19", "2026-11-20", "2026-11-23"]
        assert asked["freed_hours_per_night"] == fh["freed_hours_per_night"]
        ut = web.get("/api/reports/utilisation").json()
        assert (ut["from"], ut["nights"], ut["unmeasured_nights"]) == (
            "2026-11-21",
            2,
            ["2026-11-23"],
        )
        sens = web.get("/api/reports/sensitivity").json()
        assert (sens["from"], sens["nights"]) == ("2026-11-21", 2)


@pytest.mark.parametrize(
    ("lang", "words"),
    [
        ("en", ("Nights measured", "Unmeasured nights", "Alarm quality", "alarms")),
        ("da", ("Målte nætter", "Nætter uden målinger", "Alarmernes kvalitet", "alarmer")),
    ],
)
def test_the_page_shows_unmeasured_nights_and_alarm_quality(
    reports_server: ServerThread, lang: str, words: tuple[str, ...]
) -> None:
    """Two measured nights, one not; two alarms over 4 residents × 2 nights = 0.25 per
    resident-night; one fall, assisted; one alarm never acknowledged; the fall reached a
    phone after 6 s and was acknowledged after 90 s."""
    with httpx.Client(base_url=reports_server.url, timeout=30) as web:
        _login(web, "mads")
        r = web.get("/reports", params={"lang": lang})
        assert r.status_code == 200, r.text
    html = r.text
    assert 'name="from" value="2026-11-21"' in html
    assert _text(html, "fh-nights") == "2"
    assert _text(html, "fh-unmeasured") == "1"
    assert _text(html, "aq-rate") == "0.25"
    assert _text(html, "aq-false") == "0 % (0 / 1)"
    assert _text(html, "aq-unacked") == "1"
    assert _text(html, "aq-falls") == "1 / 1"
    assert _text(html, "aq-send") == f"6 / 6 s (1 {words[3]})"
    assert _text(html, "aq-ack") == f"90 / 90 s (1 {words[3]})"
    for word in words[:3]:
        assert word in html
