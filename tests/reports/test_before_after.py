"""Measured night work, before and after (docs/freed-hours.md, "Measured night work"), on
hand-computed cases over the test site (sites/test.yaml: a-1 r-001, a-2 r-002, the shared
room b-1 r-003 and r-004; cap 60 min, o 2 min, H 1924 h)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from carehub.site import SiteIndex
from carehub.visits import Visit
from gateway.pipeline import Ingestor
from gateway.store.sqlite import SqliteEventStore
from gateway.store.visits import VisitStore
from services.reports.before_after import (
    Period,
    PeriodInput,
    before_after_report,
    resident_night_work,
    visit_night,
)
from services.reports.service import StoreReportSource, before_after, before_after_csv

CPH = ZoneInfo("Europe/Copenhagen")
SITE = "testhjem"


def local(day: date, hh: int, mm: int) -> datetime:
    """A local wall time at the site, as UTC (the clock of that date: CET or CEST)."""
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=CPH).astimezone(UTC)


def night_time(night: date, hh: int, mm: int) -> datetime:
    """A local time of the night labelled `night` (after midnight: the next day)."""
    return local(night if hh >= 12 else night + timedelta(days=1), hh, mm)


def visit(
    night: date,
    a: tuple[int, int],
    b: tuple[int, int],
    *,
    room: str | None = None,
    resident: str | None = None,
) -> Visit:
    return Visit(SITE, night_time(night, *a), night_time(night, *b), room, resident)


def one_night(night: date, visits: list[Visit], times: dict[str, Any] | None = None) -> PeriodInput:
    return PeriodInput(Period(night, night), visits, times or {})


N = date(2026, 11, 22)


def test_a_shared_room_visit_is_split_between_its_residents(test_index: SiteIndex) -> None:
    # b-1 holds r-003 and r-004: 10 min + o 2 = 12 min, 6 each, half a visit each
    rows = resident_night_work(test_index, one_night(N, [visit(N, (23, 0), (23, 10), room="b-1")]))
    assert {k: (r.work_min, r.visits) for k, r in rows.items()} == {
        ("r-003", N): (6.0, 0.5),
        ("r-004", N): (6.0, 0.5),
    }


def test_a_visit_that_starts_before_the_night_is_clipped_to_it(test_index: SiteIndex) -> None:
    # 21:50-22:08: 8 minutes of it are in the night -> 8 + 2 = 10
    early = Visit(SITE, local(N, 21, 50), local(N, 22, 8), "a-1")
    assert visit_night(test_index, early.entered_at, early.left_at) == (N, 8.0)
    # 06:55-07:20 the next morning: 5 minutes; 07:05-07:20: none, in no night
    late = Visit(SITE, night_time(N, 6, 55), night_time(N, 7, 20), "a-1")
    after = Visit(SITE, night_time(N, 7, 5), night_time(N, 7, 20), "a-1")
    long = visit(N, (0, 0), (1, 30), room="a-1")  # 90 min, capped at 60 -> 62
    rows = resident_night_work(test_index, one_night(N, [early, late, after, long]))
    assert rows[("r-001", N)].work_min == pytest.approx(10 + 7 + 62)
    assert rows[("r-001", N)].visits == 3


def test_daylight_saving_nights_are_as_long_as_the_clock_says(test_index: SiteIndex) -> None:
    # 24 Oct 2026: 22:00 CEST (20:00 UTC) to 07:00 CET (06:00 UTC), 10 h. A visit at
    # 05:50-06:20 UTC is 06:50-07:20 local: 10 minutes in the night (a 9 h night would have
    # ended at 05:00 UTC and left it out).
    autumn = date(2026, 10, 24)
    ten_h = Visit(
        SITE,
        datetime(2026, 10, 25, 5, 50, tzinfo=UTC),
        datetime(2026, 10, 25, 6, 20, tzinfo=UTC),
        "a-1",
    )
    assert visit_night(test_index, ten_h.entered_at, ten_h.left_at) == (autumn, 10.0)
    # 28 Mar 2026: 22:00 CET (21:00 UTC) to 07:00 CEST (05:00 UTC), 8 h: 05:10 UTC is 07:10
    spring = Visit(
        SITE,
        datetime(2026, 3, 29, 5, 10, tzinfo=UTC),
        datetime(2026, 3, 29, 5, 20, tzinfo=UTC),
        "a-1",
    )
    assert visit_night(test_index, spring.entered_at, spring.left_at) is None
    # the repeated hour: 02:30 CEST (00:30 UTC) to 02:10 CET (01:10 UTC) is 40 minutes
    repeated = Visit(
        SITE,
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 1, 10, tzinfo=UTC),
        "a-1",
    )
    rows = resident_night_work(
        test_index,
        PeriodInput(Period(autumn, autumn), [ten_h, repeated]),
    )
    assert rows[("r-001", autumn)].work_min == pytest.approx((10 + 2) + (40 + 2))


def test_round_sheets_only_before_presence_devices_after(test_index: SiteIndex) -> None:
    """A before period typed in from round sheets (no sensors), an after period measured by
    presence devices: only resident-nights with a record or device data count."""
    b1, b2 = date(2026, 11, 1), date(2026, 11, 2)
    before = PeriodInput(
        Period(b1, b2),
        [
            # night 1: r-001 two rounds of 4 min (6 + 6), r-002 one of 8 (10): 22 min, 3 visits
            visit(b1, (23, 0), (23, 4), resident="r-001"),
            visit(b1, (3, 0), (3, 4), resident="r-001"),
            visit(b1, (23, 5), (23, 13), resident="r-002"),
            # night 2: r-001 one round of 9 min (11): 11 min, 1 visit; r-002 not on the sheet
            visit(b2, (2, 0), (2, 9), resident="r-001"),
        ],
    )
    a1, a2 = date(2026, 11, 22), date(2026, 11, 23)
    beats = np.array([night_time(n, 23, 30).timestamp() for n in (a1, a2)])
    after = PeriodInput(
        Period(a1, a2),
        [visit(a1, (1, 0), (1, 10), room="a-1")],  # presence-a1 pair: 12 min for r-001
        {"presence-a1": beats},  # a-1 (r-001) measured both nights; a-2 has no device
    )
    report = before_after_report(test_index, before, after, 1.25)
    # before: 3 resident-nights over 2 nights, (22 + 11) / 3 = 11 min, 4 / 3 visits
    assert report["before"]["nights"] == 2
    assert report["before"]["resident_nights"] == 3
    assert report["before"]["work_minutes_per_resident_night"] == pytest.approx(11)
    assert report["before"]["visits_per_resident_night"] == pytest.approx(4 / 3)
    # after: r-001 on both nights (one with no visit), 12 / 2 = 6 min, 0.5 visits
    assert report["after"]["resident_nights"] == 2
    assert report["after"]["work_minutes_per_resident_night"] == pytest.approx(6)
    diff = report["difference"]
    assert diff["work_minutes_per_resident_night"]["mean"] == pytest.approx(5)
    assert diff["visits_per_resident_night"]["mean"] == pytest.approx(4 / 3 - 0.5)
    # two nights a period: the interval runs from the lowest before-night minus the highest
    # after-night to the reverse. Before nights: 22/2 = 11, 11/1 = 11; after: 12, 0.
    assert diff["work_minutes_per_resident_night"]["ci95"] == pytest.approx([11 - 12, 11 - 0])
    # site hours: 5 min x 1 measured resident per after-night / 60
    assert diff["hours_per_night"] == pytest.approx(5 / 60)
    assert diff["annual_hours"] == pytest.approx(5 / 60 * 365)
    assert diff["fte"] == pytest.approx(5 / 60 * 365 / 1924)
    assert report["modelled"] == {"freed_hours_per_night": 1.25}
    params = report["assumptions"]["parameters"]
    assert params["response_cap_minutes"] == {"symbol": "cap", "value": 60, "source": "default"}


def test_no_measured_resident_night_gives_no_figure(test_index: SiteIndex) -> None:
    empty = PeriodInput(Period(N, N), [])
    report = before_after_report(test_index, empty, empty, None)
    assert report["before"]["work_minutes_per_resident_night"] is None
    assert report["difference"]["work_minutes_per_resident_night"] == {
        "mean": None,
        "ci95": [None, None],
    }
    assert report["difference"]["hours_per_night"] is None


def presence(device: str, seq: int, at: datetime, etype: str) -> tuple[str, bytes, datetime]:
    body = {"v": 1, "seq": seq, "ts": at.isoformat().replace("+00:00", "Z"), "type": etype}
    return f"carehub/{SITE}/devices/{device}/up", json.dumps(body).encode(), at


def callpoint(seq: int, at: datetime, ev: str) -> tuple[str, bytes, datetime]:
    body = {"unit": "presence-b1", "n": seq, "t": int(at.timestamp()), "ev": ev}
    return f"carehub/{SITE}/devices/presence-b1/up", json.dumps(body).encode(), at


def test_worked_example_of_the_docs(test_index: SiteIndex, tmp_path: Path) -> None:
    """docs/freed-hours.md's worked example, through the stores: round sheets in the visit
    store, the nurse-call button's presses through the gateway into the event store."""
    db = tmp_path / "hub.db"
    b1, b2 = date(2026, 11, 1), date(2026, 11, 2)
    sheets = [
        visit(b1, (23, 0), (23, 4), resident="r-003"),
        visit(b1, (2, 0), (2, 4), resident="r-003"),
        visit(b1, (5, 0), (5, 4), resident="r-003"),
        visit(b1, (23, 5), (23, 10), resident="r-004"),
        visit(b1, (2, 5), (2, 8), resident="r-004"),
        visit(b2, (23, 0), (23, 6), resident="r-003"),
        visit(b2, (3, 0), (3, 4), resident="r-003"),
        visit(b2, (23, 7), (23, 11), resident="r-004"),
        visit(b2, (3, 5), (3, 9), resident="r-004"),
    ]
    store = VisitStore(db, SITE)
    assert store.add_many(sheets) == (9, 0)
    store.close()
    a1, a2 = date(2026, 11, 22), date(2026, 11, 23)
    messages = [
        callpoint(i, night_time(n, h, 0), "ALIVE")
        for i, (n, h) in enumerate([(a1, 22), (a1, 2), (a2, 22), (a2, 2)], start=1)
    ]
    messages += [
        callpoint(10, night_time(a1, 0, 40), "PRESENCE_ON"),
        callpoint(11, night_time(a1, 0, 56), "PRESENCE_OFF"),
        callpoint(12, night_time(a2, 3, 10), "PRESENCE_ON"),
        callpoint(13, night_time(a2, 3, 20), "PRESENCE_OFF"),
        callpoint(14, night_time(a2, 6, 50), "PRESENCE_ON"),  # no OFF: closes after cap
    ]
    ingestor = Ingestor(test_index, SqliteEventStore(db))
    for topic, payload, at in sorted(messages, key=lambda m: m[2]):
        assert ingestor.ingest(topic, payload, at).accepted
    ingestor.flush()
    from gateway.store.visits import visits_between_in

    source = StoreReportSource(
        SITE, ingestor.store, lambda lo, hi: [], visits=visits_between_in(db, SITE)
    )
    report = before_after(test_index, source, (b1, b2), (a1, a2), "b")
    ingestor.close()
    before, after, diff = report["before"], report["after"], report["difference"]
    # before: night 1 r-003 3 x (4 + 2) = 18, r-004 (5 + 2) + (3 + 2) = 12; night 2 r-003
    # (6 + 2) + (4 + 2) = 14, r-004 2 x (4 + 2) = 12: 56 min over 4 resident-nights = 14
    assert before["work_minutes_per_resident_night"] == pytest.approx(14)
    assert before["visits_per_resident_night"] == pytest.approx(9 / 4)
    # after: night 22 one room visit of 16 min: (16 + 2) / 2 = 9 each; night 23 10 min and
    # 06:50 + cap clipped at 07:00 = 10 min: 2 x (10 + 2) / 2 = 12 each: 42 / 4 = 10.5
    assert after["resident_nights"] == 4
    assert after["work_minutes_per_resident_night"] == pytest.approx(10.5)
    assert after["visits_per_resident_night"] == pytest.approx(3 / 4)
    assert diff["work_minutes_per_resident_night"]["mean"] == pytest.approx(3.5)
    # before nights 15 and 13, after nights 9 and 12: from 13 - 12 to 15 - 9
    assert diff["work_minutes_per_resident_night"]["ci95"] == pytest.approx([1, 6])
    assert diff["visits_per_resident_night"]["mean"] == pytest.approx(1.5)
    assert diff["visits_per_resident_night"]["ci95"] == pytest.approx([2 - 1, 2.5 - 0.5])
    assert diff["hours_per_night"] == pytest.approx(3.5 * 2 / 60)
    assert diff["annual_hours"] == pytest.approx(3.5 * 2 / 60 * 365)
    assert round(diff["annual_hours"], 1) == 42.6
    assert round(diff["fte"], 3) == 0.022
    # no sensor of ward b reported on those nights: κ = 0, the model claims nothing
    assert report["modelled"]["freed_hours_per_night"] == pytest.approx(0)
    rows = before_after_csv(report).splitlines()
    assert "difference,work_minutes_per_resident_night,3.500,1.000,6.000" in rows
