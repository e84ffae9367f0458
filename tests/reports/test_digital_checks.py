"""Digital checks in the utilisation report, on hand-computed numbers: per resident-night,
the share of planned checks done digitally, alarm visits beside them, a night crossing
midnight and both daylight-saving nights (docs/round.md)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from carehub.site import SiteIndex
from services.reports.checks import CheckRecord, digital_checks_section
from services.reports.freed_hours import AlarmRecord, Seconds
from services.reports.service import StoreReportSource, utilisation
from services.reports.utilisation import EventRecord
from services.round.checks import CheckStore, DigitalCheck, checks_between_in
from tests.reports.test_freed_hours import NIGHT, at, heartbeats


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def test_checks_per_resident_night_share_of_planned_and_alarm_visits(
    test_index: SiteIndex,
) -> None:
    # planned: checks_per_night 2 for r-001, r-003, r-004 (site default), 4 for r-002 → 10
    checks = [
        CheckRecord("r-001", at(23, 50), "ok"),
        CheckRecord("r-001", at(0, 10), "ok"),  # after midnight: still the night of NIGHT
        CheckRecord("r-001", at(3, 0), "visit_needed"),  # a third: counts, but not over plan
        CheckRecord("r-002", at(1, 0), "ok"),
        CheckRecord("r-004", at(21, 59), "ok"),  # before the night window
        CheckRecord("r-004", at(7, 0), "ok"),  # the window ends at 07:00
        CheckRecord("r-004", at(22, 0, NIGHT + timedelta(days=1)), "ok"),  # the next night
    ]
    raised = at(2, 0)
    alarms = [
        # r-001's fall, attended: one visit
        AlarmRecord("a1", "fall", "r-001", None, None, raised, raised, "sofie", raised, "sofie"),
        # a room alarm in b-1, attended: half a visit each for r-003 and r-004
        AlarmRecord("a2", "fall", None, "b-1", None, raised, raised, "ida", raised, "ida"),
        # resolved by the sensor alone: nobody went
        AlarmRecord("a3", "bed_exit", "r-003", None, None, raised, None, None, raised, "sensor"),
    ]
    dc = digital_checks_section(test_index, NIGHT, NIGHT, checks, alarms)
    assert dc["total"] == 4
    assert dc["results"] == {"ok": 3, "visit_needed": 1}
    assert dc["resident_nights"] == 4
    assert dc["per_resident_night"] == 1.0
    assert dc["planned"] == 10
    assert dc["planned_done_digitally"] == 3  # r-001: min(3, 2) = 2; r-002: 1
    assert dc["share_of_planned"] == 0.3
    assert dc["alarm_visits"] == 2.0
    assert dc["alarm_visits_per_resident_night"] == 0.5
    assert dc["by_resident"]["r-001"] == {
        "nights": 1,
        "digital_checks": 3,
        "visit_needed": 1,
        "per_night": 3.0,
        "planned": 2.0,
        "share_of_planned": 1.0,
        "alarm_visits": 1.0,
    }
    assert dc["by_resident"]["r-002"]["share_of_planned"] == 0.25
    assert dc["by_resident"]["r-004"]["alarm_visits"] == 0.5
    assert dc["by_night"] == [
        {"night": "2026-11-22", "digital_checks": 4, "planned": 10.0, "share_of_planned": 0.3}
    ]
    assert dc["by_resident_night"][0] == {
        "resident_id": "r-001",
        "night": "2026-11-22",
        "digital_checks": 3,
        "visit_needed": 1,
        "planned": 2.0,
        "alarm_visits": 1.0,
    }


def test_daylight_saving_nights_follow_the_local_clock(test_index: SiteIndex) -> None:
    # 25 Oct 2026: 03:00 CEST → 02:00 CET; the night of the 24th runs 20:00–06:00 UTC (10 h)
    autumn = date(2026, 10, 24)
    checks = [
        CheckRecord("r-001", utc(2026, 10, 24, 19, 30), "ok"),  # 21:30 CEST: before the night
        CheckRecord("r-001", utc(2026, 10, 24, 20, 30), "ok"),  # 22:30 CEST
        CheckRecord("r-002", utc(2026, 10, 25, 0, 30), "ok"),  # 02:30 CEST
        CheckRecord("r-002", utc(2026, 10, 25, 1, 30), "ok"),  # 02:30 CET, the hour again
        CheckRecord("r-003", utc(2026, 10, 25, 5, 30), "ok"),  # 06:30 CET
        CheckRecord("r-004", utc(2026, 10, 25, 6, 30), "ok"),  # 07:30 CET: after the night
    ]
    dc = digital_checks_section(test_index, autumn, autumn, checks, [])
    assert dc["total"] == 4
    assert {r: v["digital_checks"] for r, v in dc["by_resident"].items()} == {
        "r-001": 1,
        "r-002": 2,
        "r-003": 1,
        "r-004": 0,
    }
    assert dc["planned_done_digitally"] == 4
    assert dc["share_of_planned"] == 0.4

    # 29 Mar 2026: 02:00 CET → 03:00 CEST; the night of the 28th runs 21:00–05:00 UTC (8 h)
    spring = date(2026, 3, 28)
    checks = [
        CheckRecord("r-001", utc(2026, 3, 28, 21, 0), "ok"),  # 22:00 CET, the first moment
        CheckRecord("r-001", utc(2026, 3, 29, 4, 30), "ok"),  # 06:30 CEST
        CheckRecord("r-002", utc(2026, 3, 29, 5, 30), "ok"),  # 07:30 CEST (06:30 by CET!)
    ]
    both = digital_checks_section(test_index, spring, spring + timedelta(days=1), checks, [])
    assert both["total"] == 2
    assert both["by_night"] == [
        {"night": "2026-03-28", "digital_checks": 2, "planned": 10.0, "share_of_planned": 0.2},
        {"night": "2026-03-29", "digital_checks": 0, "planned": 10.0, "share_of_planned": 0.0},
    ]
    assert both["resident_nights"] == 8
    assert both["per_resident_night"] == 0.25


class _Source:
    """A report source of hand-made data, with digital checks."""

    def __init__(self, index: SiteIndex, checks: list[CheckRecord]) -> None:
        self._times = heartbeats(index, NIGHT)
        self._checks = checks
        self.asked: list[tuple[datetime, datetime]] = []

    def device_times(self, lo: datetime, hi: datetime) -> dict[str, Seconds]:
        return self._times

    def alarms(self, lo: datetime, hi: datetime) -> list[AlarmRecord]:
        return []

    def events(self, lo: datetime, hi: datetime, types: Sequence[str]) -> list[EventRecord]:
        return []

    def deliveries(self, lo: datetime, hi: datetime) -> list[dict[str, object]]:
        return []  # no phones here: the notification section is empty

    def digital_checks(self, lo: datetime, hi: datetime) -> list[CheckRecord]:
        self.asked.append((lo, hi))
        return [c for c in self._checks if lo <= c.at < hi]


def test_the_utilisation_report_reads_the_sources_checks(test_index: SiteIndex) -> None:
    source = _Source(test_index, [CheckRecord("r-002", at(23, 0), "ok")])
    report = utilisation(test_index, source, NIGHT, NIGHT)
    assert source.asked == [test_index.night_bounds(NIGHT)]
    assert report["digital_checks"]["total"] == 1
    assert report["digital_checks"]["share_of_planned"] == 0.1
    assert report["digital_checks"]["by_resident"]["r-002"]["share_of_planned"] == 0.25
    # a source without checks still has the section, with none in it
    bare = StoreReportSource("testhjem", None, lambda lo, hi: [])
    assert bare.digital_checks(*test_index.night_bounds(NIGHT)) == []


def test_the_store_source_reads_the_check_store(test_index: SiteIndex, tmp_path: Path) -> None:
    db = tmp_path / "hub.db"
    store = CheckStore(db, "testhjem")
    store.add(DigitalCheck("r-001", at(23, 0), "ida", "ok", "asleep"))
    store.add(DigitalCheck("r-003", at(4, 0), "ida", "visit_needed"))
    store.add(DigitalCheck("r-003", at(12, 0), "ida", "ok"))  # day, outside what is asked
    store.close()
    lo, hi = test_index.night_bounds(NIGHT)
    for reader in (CheckStore(db, "testhjem").between, checks_between_in(db, "testhjem")):
        source = StoreReportSource("testhjem", None, lambda lo, hi: [], checks=reader)
        assert source.digital_checks(lo, hi) == [
            CheckRecord("r-001", at(23, 0), "ok"),
            CheckRecord("r-003", at(4, 0), "visit_needed"),
        ]
    # another site's checks in the same file are not this site's
    assert checks_between_in(db, "other")(lo, hi) == []


@pytest.mark.parametrize("result", ["ok", "visit_needed"])
def test_a_check_of_a_resident_with_no_device_still_counts(
    test_index: SiteIndex, result: str
) -> None:
    dc = digital_checks_section(
        test_index, NIGHT, NIGHT, [CheckRecord("r-new", at(23, 0), result)], []
    )
    assert dc["resident_nights"] == 5
    assert dc["results"][result] == 1
