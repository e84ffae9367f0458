"""`carehub backfill`: days of simulated history through the gateway, rules and alarm service,
the same in one process or two, and a freed-hours report over it that makes sense."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.backfill import STAFF, backfill
from carehub.site import Site, SiteIndex
from gateway.store.sqlite import SqliteEventStore
from services.alarms.store import AlarmStore
from services.reports.service import StoreReportSource, freed_hours, utilisation
from services.round.checks import checks_between_in

END = datetime(2026, 11, 25, 12, tzinfo=UTC)
OUTCOMES = {"assisted", "changed", "dose_given", "other", "no_action_needed"}
DAYS = 4


def history(db: Path) -> tuple[list[Any], list[dict[str, Any]]]:
    """(events, alarms as JSON) of the backfilled period."""
    events = SqliteEventStore(db)
    alarms = AlarmStore(db)
    try:
        lo, hi = END - timedelta(days=DAYS + 1), END + timedelta(days=1)
        return events.query_events("testhjem", lo, hi), alarms.raised_between(lo, hi)
    finally:
        events.close()
        alarms.close()


@pytest.fixture(scope="module")
def backfilled(test_site: Site, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four days of the test site, written by the inline (one-process) path."""
    db = tmp_path_factory.mktemp("backfill") / "hub.db"
    days: list[float] = []
    report = backfill(
        test_site, db, days=DAYS, end=END, seed=4, parallel=False, progress=days.append
    )
    assert report.emissions > 10_000
    assert report.rejected == 0
    # all stored, but the devices' status announcements and a radar's repeated report or two
    assert report.accepted + report.duplicates + 12 == report.emissions
    assert report.duplicates < 5
    assert sum(days) == pytest.approx(DAYS)
    assert report.alarms > 5
    assert report.staff_actions >= report.alarms
    return db


def test_events_and_alarms_are_written(backfilled: Path) -> None:
    events, alarms = history(backfilled)
    types = Counter(e.type.value for e in events)
    assert {"heartbeat", "saturation", "detached", "attached", "dose_due", "taken"} <= set(types)
    assert {e.device_id for e in events} >= {"fall-a1", "fall-a2", "diaper-r002", "med-r004"}
    rules = Counter(a["rule"] for a in alarms)
    assert rules["diaper_change"] > 3
    assert all(a["state"] == "resolved" for a in alarms[:-3])  # the last may still be open
    handled = [a for a in alarms if a["acknowledged_by"] == STAFF]
    assert len(handled) > 0.8 * len(alarms)
    for a in handled:  # staff came after the alarm, and closed it after they came
        assert a["acknowledged_at"] >= a["raised_at"]
        if a["resolved_by"] == STAFF:
            assert a["resolved_at"] >= a["acknowledged_at"]
            assert a["outcome"] in OUTCOMES
    diaper = [a for a in handled if a["rule"] == "diaper_change" and a["resolved_by"] == STAFF]
    assert {a["outcome"] for a in diaper} == {"changed"}
    audit = AlarmStore(backfilled)
    try:
        assert {e.actor for e in audit.audit_log()} == {STAFF}
    finally:
        audit.close()


def test_the_freed_hours_report_over_it_is_sane(test_site: Site, backfilled: Path) -> None:
    index = SiteIndex(test_site)
    events = SqliteEventStore(backfilled)
    alarms = AlarmStore(backfilled)
    try:
        source = StoreReportSource("testhjem", events, alarms.raised_between)
        first, last = date(2026, 11, 21), date(2026, 11, 24)
        report = freed_hours(index, source, first, last)
    finally:
        events.close()
        alarms.close()
    assert report["nights"] == 4
    assert report["resident_nights"] == 4 * len(test_site.residents)
    assert report["coverage_mean"] > 0.97  # devices heartbeat through the night
    per_night = report["freed_hours_per_night"]["mean"]
    # 4 residents, each ~20 min of rounds a night without sensors, less the alarm visits
    assert 0 < per_night < 2
    lo, hi = report["freed_hours_per_night"]["ci95"]
    assert lo <= per_night <= hi
    assert report["alarms"]["total"] > 0
    assert report["by_resident"]["r-001"]["coverage_mean"] > 0.97


def test_two_processes_write_the_same_history(
    test_site: Site, backfilled: Path, tmp_path: Path
) -> None:
    db = tmp_path / "again.db"
    busy = threading.Event()  # another thread, as in the demo: it must not matter
    other = threading.Thread(target=busy.wait)
    other.start()
    try:
        backfill(test_site, db, days=DAYS, end=END, seed=4, parallel=True)
    finally:
        busy.set()
        other.join()
    events, alarms = history(db)
    first_events, first_alarms = history(backfilled)
    assert [e.event_id for e in events] == [e.event_id for e in first_events]

    def outline(a: dict[str, Any]) -> tuple[Any, ...]:
        return (a["rule"], a["device_id"], a["raised_at"], a["acknowledged_at"], a["outcome"])

    assert [outline(a) for a in alarms] == [outline(a) for a in first_alarms]


def test_days_must_be_positive(test_site: Site, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="positive"):
        backfill(test_site, tmp_path / "x.db", days=0)


def test_the_simulated_staff_make_the_planned_digital_checks(
    test_site: Site, backfilled: Path
) -> None:
    """Every planned check of every night (C_b: 2, 4, 2, 2 → 10 a night) is done digitally,
    in its night, audited like the round API's, and the utilisation report counts them."""
    index = SiteIndex(test_site)
    events = SqliteEventStore(backfilled)
    alarms = AlarmStore(backfilled)
    try:
        source = StoreReportSource(
            "testhjem",
            events,
            alarms.raised_between,
            checks=checks_between_in(backfilled, "testhjem"),
        )
        report = utilisation(index, source, date(2026, 11, 21), date(2026, 11, 24))
        audited = [e for e in alarms.audit_log() if e.action == "digital_check"]
    finally:
        events.close()
        alarms.close()
    dc = report["digital_checks"]
    assert dc["total"] == 40
    assert dc["resident_nights"] == 16
    assert dc["per_resident_night"] == 2.5
    assert dc["planned"] == 40
    assert dc["share_of_planned"] == 1.0
    assert dc["by_resident"]["r-002"]["digital_checks"] == 16
    assert dc["results"]["ok"] + dc["results"]["visit_needed"] == 40
    assert dc["results"]["ok"] > dc["results"]["visit_needed"]  # mostly asleep in bed
    assert len(audited) == 40
    assert {e.actor for e in audited} == {STAFF}
