"""The cache of closed nights: reports over cached nights equal reports over the raw events,
and a cached night stops being used the moment it could differ (a late event for its window,
an event stored while it was being computed, another site file).

Over the same real SQLite history as the retention tests (pipeline + rules engine + staff).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from carehub.clock import FakeClock
from carehub.site import SiteIndex
from gateway.pipeline import Ingestor
from gateway.store.sqlite import SqliteEventStore
from services.alarms.store import AlarmStore
from services.privacy.aggregates import CACHE, AggregateStore, site_digest
from services.reports.service import StoreReportSource, freed_hours, night_aggregates, utilisation
from tests.privacy.night import local
from tests.privacy.test_retention import (
    N1,
    N2,
    N3,
    RETENTION,
    SITE,
    History,
    history_template,
)

__all__ = ["history_template"]  # the module-scoped fixture this module shares

AFTER_N3 = local(N3, 11, 0)
"""The morning after the last night, late enough that every night of the history is closed."""


@pytest.fixture
def cached(history_template: Path, tmp_path: Path, test_index: SiteIndex) -> Iterator[History]:
    """A copy of the history whose aggregate store caches (it knows the site file)."""
    db = tmp_path / "hub.db"
    src, dst = sqlite3.connect(history_template), sqlite3.connect(db)
    src.backup(dst)
    src.close()
    dst.close()
    h = History(
        db,
        test_index,
        FakeClock(AFTER_N3),
        AlarmStore(db),
        AggregateStore(db, SITE, site_digest(test_index)),
        SqliteEventStore(db),
    )
    yield h
    h.reader.close()
    h.aggregates.close()
    h.alarms.close()


def _raw(h: History) -> dict[str, Any]:
    """The reports straight from the raw events (no aggregates at all)."""
    bare = StoreReportSource(SITE, h.reader, h.alarms.raised_between)
    return {
        "freed": freed_hours(h.index, bare, N1, N3),
        "utilisation": utilisation(h.index, bare, N1, N3),
    }


def _served(h: History) -> dict[str, Any]:
    full = h.reports()
    return {"freed": full["freed"], "utilisation": full["utilisation"]}


def _run(h: History) -> Any:
    job = h.job()
    try:
        return job.run_once()
    finally:
        job.events.close()


def _late_heartbeat(h: History, at: datetime) -> None:
    """A dispenser heartbeat from the night of `at`, delivered now through the pipeline (a
    device's queue emptied after an outage)."""
    store = SqliteEventStore(h.db)
    ingestor = Ingestor(h.index, store)
    body = {
        "v": 1,
        "seq": 90_000,
        "ts": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "type": "heartbeat",
        "battery": 77,
        "rssi": -60,
    }
    result = ingestor.ingest(
        "carehub/testhjem/devices/med-r001/up", json.dumps(body).encode(), AFTER_N3
    )
    ingestor.close()
    store.close()
    assert result.events, result


def test_closed_nights_are_cached_and_reports_read_them(cached: History) -> None:
    before = _raw(cached)
    run = _run(cached)
    assert run.nights_cached >= 3  # N1..N3 (and the empty night before the first message)
    assert run.nights_kept == 0  # nothing is past retention: no raw event deleted
    assert cached.aggregates.cached_nights(N1, N3) == {N1, N2, N3}
    assert cached.aggregates.kept_nights(N1, N3) == set()
    assert _served(cached) == before
    # the served report no longer reads those nights' messages: with them gone it is the same
    conn = sqlite3.connect(cached.db)
    conn.execute("DELETE FROM events")
    conn.commit()
    conn.close()
    assert _served(cached) == before
    assert _raw(cached) != before  # (and without the cache it would not be)
    assert _run(cached).nights_cached == 0  # nothing cached twice


def test_an_open_night_is_not_cached(cached: History) -> None:
    cached.clock = FakeClock(local(N3, 6, 0))  # N3 is still going on
    _run(cached)
    assert cached.aggregates.cached_nights(N1, N3) == {N1, N2}


def test_a_late_event_makes_its_night_stale_until_the_next_run(cached: History) -> None:
    _run(cached)
    _late_heartbeat(cached, local(N2, 23, 30))
    assert cached.aggregates.cached_nights(N1, N3) == {N1, N3}  # N2 at once, by the trigger
    assert _served(cached) == _raw(cached)  # N2 read raw meanwhile, late event included
    run = _run(cached)
    assert run.nights_cached == 1
    assert cached.aggregates.cached_nights(N1, N3) == {N1, N2, N3}
    assert _served(cached) == _raw(cached)


def test_a_live_event_leaves_cached_nights_alone(cached: History) -> None:
    _run(cached)
    _late_heartbeat(cached, AFTER_N3 - timedelta(minutes=1))  # today's, not a cached night's
    assert cached.aggregates.cached_nights(N1, N3) == {N1, N2, N3}


def test_an_event_stored_while_a_night_is_computed_leaves_it_stale(cached: History) -> None:
    store = cached.aggregates
    source = StoreReportSource(SITE, cached.reader, cached.alarms.raised_between)
    mark = store.events_mark()
    nights = night_aggregates(cached.index, source, N2, N2)
    _late_heartbeat(cached, local(N2, 23, 30))  # after the read, before the write
    windows = {N2: (local(N2, 21, 0), local(N2, 8, 0))}
    store.put(nights, AFTER_N3, kind=CACHE, windows=windows, since=mark)
    assert store.cached_nights(N2, N2) == set()


def test_another_site_file_does_not_read_the_cache(cached: History) -> None:
    _run(cached)
    changed = cached.index.site.model_copy(update={"name": cached.index.site.name + " (ny)"})
    other = AggregateStore(cached.db, SITE, site_digest(SiteIndex(changed)))
    try:
        assert other.cached_nights(N1, N3) == set()
        assert other.stored_nights(N1, N3) == {}
    finally:
        other.close()
    blind = AggregateStore(cached.db, SITE)  # no site file known: only retention's nights
    try:
        assert blind.stored_nights(N1, N3) == {}
    finally:
        blind.close()


def test_retention_takes_over_cached_nights_without_recomputing(cached: History) -> None:
    _run(cached)
    before = _served(cached)
    conn = sqlite3.connect(cached.db)
    computed = dict(conn.execute("SELECT night, computed_us FROM report_nights").fetchall())
    conn.close()
    cached.clock.set(datetime(2026, 8, 12, 12, 0, tzinfo=UTC) + RETENTION)
    run = _run(cached)
    assert run.nights_kept == 3
    assert run.events > 0
    assert cached.aggregates.kept_nights(N1, N3) == {N1, N2}
    conn = sqlite3.connect(cached.db)
    after = dict(conn.execute("SELECT night, computed_us FROM report_nights").fetchall())
    conn.close()
    assert {n: after[n] for n in (N1.isoformat(), N2.isoformat())} == {
        n: computed[n] for n in (N1.isoformat(), N2.isoformat())
    }
    assert _served(cached) == before


def test_a_file_from_before_the_cache_gets_its_columns(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    conn.execute(
        "CREATE TABLE report_nights (site TEXT NOT NULL, night TEXT NOT NULL,"
        " computed_us INTEGER NOT NULL, figures TEXT NOT NULL, PRIMARY KEY (site, night))"
    )
    use = {
        "night_seconds": 36000.0,
        "uptime_seconds": {},
        "doses_due": 1,
        "taken_on_time": 1,
        "missed": 0,
        "change_levels": [],
    }
    conn.execute(
        "INSERT INTO report_nights VALUES (?, ?, ?, ?)",
        (SITE, N1.isoformat(), 1, json.dumps(use)),
    )
    conn.commit()
    conn.close()
    store = AggregateStore(db, SITE, "digest")
    try:
        assert store.kept_nights(N1, N1) == {N1}  # what retention kept stays kept
        assert store.stored_nights(N1, N1)[N1].use.doses_due == 1
        assert not store.caches  # no event table in this file: nothing to watch
    finally:
        store.close()


def test_only_the_night_of_a_late_event_goes_stale(cached: History) -> None:
    _run(cached)
    _late_heartbeat(cached, local(N1, 23, 0))
    assert cached.aggregates.cached_nights(N1, N3) == {N2, N3}


def test_the_trigger_visits_only_nights_ending_soon_after_the_event(cached: History) -> None:
    """Bounded on both sides of the index on `hi_us`: importing years of old history into a
    hub with a year of cached nights must not visit every cached night for each row."""
    conn = sqlite3.connect(cached.db)
    try:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN UPDATE report_nights SET stale = 1"
            " WHERE site = ? AND kind = 'cache' AND stale = 0"
            " AND hi_us > ? AND hi_us <= ? + 172800000000 AND lo_us <= ?",
            (SITE, 0, 0, 0),
        ).fetchall()
    finally:
        conn.close()
    detail = " ".join(str(row[-1]) for row in plan)
    assert "report_nights_window (site=? AND hi_us>? AND hi_us<?)" in detail, detail


def test_an_older_trigger_definition_is_replaced(cached: History) -> None:
    conn = sqlite3.connect(cached.db)
    conn.execute("DROP TRIGGER report_nights_stale")
    conn.execute(
        "CREATE TRIGGER report_nights_stale AFTER INSERT ON events BEGIN"
        " UPDATE report_nights SET stale = 1 WHERE 0; END"
    )
    conn.commit()
    conn.close()
    again = AggregateStore(cached.db, SITE, site_digest(cached.index))
    again.close()
    _run(cached)
    _late_heartbeat(cached, local(N2, 23, 30))
    assert cached.aggregates.cached_nights(N1, N3) == {N1, N3}


def test_a_night_with_a_window_longer_than_the_trigger_bound_is_not_cached(
    cached: History,
) -> None:
    source = StoreReportSource(SITE, cached.reader, cached.alarms.raised_between)
    nights = night_aggregates(cached.index, source, N2, N2)
    lo = local(N2, 21, 0)
    with pytest.raises(ValueError, match="cannot be cached"):
        cached.aggregates.put(
            nights, AFTER_N3, kind=CACHE, windows={N2: (lo, lo + timedelta(days=3))}, since=0
        )
    assert cached.aggregates.cached_nights(N2, N2) == set()
