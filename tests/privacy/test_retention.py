"""Retention over a real SQLite file filled by the real pipeline and rules engine: old raw
events go, what the reports need stays, and a report over an old period gives the same
numbers after pruning as before it (report, prune, report again, equal)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.hub import Hub
from carehub.clock import FakeClock
from carehub.events import CanonicalEvent
from carehub.site import SiteIndex
from gateway.pipeline import Ingestor
from gateway.store.sqlite import SqliteEventStore
from services.alarms.errors import AlarmError
from services.alarms.service import AlarmService
from services.alarms.store import AlarmStore
from services.privacy.aggregates import AggregateStore
from services.privacy.retention import RetentionJob
from services.reports.freed_hours import FreedHoursInput, resident_nights
from services.reports.service import (
    StoreReportSource,
    freed_hours,
    sensitivity,
    utilisation,
)
from services.rules.engine import EngineConfig, RulesEngine
from tests.privacy.conftest import wait_until
from tests.privacy.night import Counters, Uplink, local, night_uplinks
from tests.support.server import ServerThread

N1, N2, N3 = date(2026, 8, 10), date(2026, 8, 11), date(2026, 8, 12)
SITE = "testhjem"
RETENTION = timedelta(days=90)


@dataclass
class History:
    """A hub's SQLite file with three nights of history, and the stores over it."""

    db: Path
    index: SiteIndex
    clock: FakeClock
    alarms: AlarmStore
    aggregates: AggregateStore
    reader: SqliteEventStore

    def source(self) -> StoreReportSource:
        """What the web app reads reports through."""
        return StoreReportSource(
            SITE, self.reader, self.alarms.raised_between, self.aggregates.stored_nights
        )

    def job(self) -> RetentionJob:
        """The gateway part's retention job, over its own connections."""
        events = SqliteEventStore(self.db)
        return RetentionJob(self.index, events, self.alarms, self.aggregates, self.clock, RETENTION)

    def reports(self, first: date = N1, last: date = N3) -> dict[str, Any]:
        """Every report over the period, as the API would answer them."""
        src = self.source()
        return {
            "freed": freed_hours(self.index, src, first, last),
            "freed_ward_a": freed_hours(self.index, src, first, last, "a"),
            "utilisation": utilisation(self.index, src, first, last),
            "sensitivity": sensitivity(self.index, src, first, last),
        }

    def count(self, sql: str, *args: Any) -> int:
        """One number from the file, through a connection of its own."""
        conn = sqlite3.connect(self.db)
        try:
            return int(conn.execute(sql, args).fetchone()[0])
        finally:
            conn.close()


def _fill(db: Path, index: SiteIndex, clock: FakeClock, alarms: AlarmStore) -> None:
    """Three nights through the pipeline and the rules engine; staff answer every alarm a
    person should (acknowledged after 2 min, resolved after 9), as a night shift would."""
    store = SqliteEventStore(db)
    ingestor = Ingestor(index, store)
    counters = Counters()
    events: list[tuple[datetime, CanonicalEvent]] = []
    for night in (N1, N2, N3):
        uplinks = night_uplinks(night, counters)
        broken = Uplink("carehub/testhjem/devices/fall-a1/up", b"{", uplinks[5].at)
        for up in [*uplinks[:5], broken, *uplinks[5:]]:
            received = up.at + timedelta(seconds=1)
            result = ingestor.ingest(up.topic, up.payload, received)
            events += [(received, e) for e in result.events]
    ingestor.close()

    quiet = EngineConfig(timer_grace=timedelta(0), supervise_unheard_devices=False)
    engine = RulesEngine(index, alarms, clock, quiet)
    staff = AlarmService(alarms, clock)
    todo: list[tuple[datetime, str, str]] = []

    def act_until(when: datetime) -> None:
        todo.sort()
        while todo and todo[0][0] <= when:
            at, verb, alarm_id = todo.pop(0)
            clock.set(max(at, clock.now()))
            try:
                if verb == "ack":
                    staff.acknowledge(alarm_id, "sofie")
                else:
                    staff.resolve(alarm_id, "sofie", "assisted")
            except AlarmError:
                pass  # the sensor resolved it first

    with alarms.transaction():  # one commit: the test file, not the engine, is under test
        seen = alarms.last_change_seq()
        for received, event in events:
            act_until(received)
            clock.set(max(received, clock.now()))
            engine.apply(event)
            for change in alarms.changes_after(seen):
                seen = change.seq
                if change.type == "new":
                    raised = datetime.fromisoformat(
                        change.alarm["raised_at"].replace("Z", "+00:00")
                    )
                    todo.append((raised + timedelta(minutes=2), "ack", change.alarm_id))
                    todo.append((raised + timedelta(minutes=9), "resolve", change.alarm_id))
        act_until(local(N3, 8, 0))


@pytest.fixture(scope="module")
def history_template(tmp_path_factory: pytest.TempPathFactory, test_index: SiteIndex) -> Path:
    """The filled file, made once per module (each test works on its own copy)."""
    db = tmp_path_factory.mktemp("history") / "hub.db"
    clock = FakeClock(local(N1, 21, 0))
    alarms = AlarmStore(db)
    _fill(db, test_index, clock, alarms)
    alarms.close()
    return db


@pytest.fixture
def history(history_template: Path, tmp_path: Path, test_index: SiteIndex) -> Iterator[History]:
    db = tmp_path / "hub.db"
    src = sqlite3.connect(history_template)
    dst = sqlite3.connect(db)
    src.backup(dst)
    src.close()
    dst.close()
    h = History(
        db,
        test_index,
        FakeClock(local(N3, 9, 0)),
        AlarmStore(db),
        AggregateStore(db, SITE),
        SqliteEventStore(db),
    )
    yield h
    h.reader.close()
    h.aggregates.close()
    h.alarms.close()


def test_history_is_realistic(history: History) -> None:
    rep = history.reports()["freed"]
    assert rep["nights"] == 3
    assert rep["resident_nights"] == 12
    assert 0.95 < rep["coverage_mean"] <= 1.0
    rules = set(history.reports()["utilisation"]["alarms"]["by_rule"])
    assert {"fall", "diaper_change", "dose_missed", "battery_low"} <= rules
    assert history.count("SELECT COUNT(*) FROM dead_letters") == 3
    use = history.reports()["utilisation"]
    assert use["medication"]["doses_due"] == 9  # three dispensers, three nights
    assert use["medication"]["taken_on_time"] == 6
    assert use["diaper"]["changes"] >= 3


def test_report_prune_report_again_equal(history: History) -> None:
    before = history.reports()
    events_before = history.count("SELECT COUNT(*) FROM events")
    alarms_before = history.count("SELECT COUNT(*) FROM alarms")
    audit_before = history.count("SELECT COUNT(*) FROM audit_log")

    # 90 days after noon between the second and the third night: the first two nights go
    cutoff = datetime(2026, 8, 12, 12, 0, tzinfo=UTC)
    history.clock.set(cutoff + RETENTION)
    job = history.job()
    run = job.run_once()
    assert run.cutoff == cutoff
    assert run.nights_kept == 3  # the night before the first message too (nothing in it)
    assert run.events > 0
    assert run.dead_letters == 2
    assert run.dedupe_keys > 0
    assert history.count("SELECT COUNT(*) FROM events WHERE ts_us < ?", _us(cutoff)) == 0
    assert history.count("SELECT COUNT(*) FROM dead_letters") == 1
    assert history.count("SELECT COUNT(*) FROM events") == events_before - run.events > 0
    assert history.aggregates.kept_nights(N1, N3) == {N1, N2}
    # the care record stays whole
    assert history.count("SELECT COUNT(*) FROM alarms") == alarms_before
    assert history.count("SELECT COUNT(*) FROM audit_log") == audit_before

    assert history.reports() == before
    # (without the kept aggregates the same report would now be wrong)
    bare = StoreReportSource(SITE, history.reader, history.alarms.raised_between)
    assert freed_hours(history.index, bare, N1, N3) != before["freed"]

    # later the third night goes as well; still the same report
    history.clock.set(local(N3, 11, 0) + RETENTION)
    run = job.run_once()
    assert (run.nights_kept, run.dead_letters) == (1, 1)
    assert history.count("SELECT COUNT(*) FROM events WHERE ts_us < ?", _us(local(N3, 7, 11))) == 0
    assert history.reports() == before
    assert history.job().run_once().nights_kept == 0  # idempotent: nothing kept twice
    job.events.close()


def test_kept_rows_are_the_methods_rows(history: History) -> None:
    src = history.source()
    lo = history.index.night_bounds(N1)[0] - timedelta(minutes=3)
    hi = history.index.night_bounds(N2)[1]
    data = FreedHoursInput(src.device_times(lo, hi), src.alarms(lo, hi))
    rows = resident_nights(history.index, N1, N2, data)
    history.clock.set(datetime(2026, 8, 12, 12, 0, tzinfo=UTC) + RETENTION)
    history.job().run_once()
    kept = history.aggregates.stored_nights(N1, N2)
    assert {(r.resident_id, r.night): r for r in rows} == {
        (r.resident_id, n): r for n, night in kept.items() for r in night.residents.values()
    }
    # and nothing in them names anyone: pseudonymous ids only
    assert {r.resident_id for r in rows} == {"r-001", "r-002", "r-003", "r-004"}


def test_delete_before_works_in_small_batches_and_spares_newer_rows(
    history: History,
) -> None:
    store = SqliteEventStore(history.db)
    cutoff = local(N2, 0, 0)
    older = history.count("SELECT COUNT(*) FROM events WHERE ts_us < ?", _us(cutoff))
    newer = history.count("SELECT COUNT(*) FROM events WHERE ts_us >= ?", _us(cutoff))
    gone = store.delete_before(SITE, cutoff, batch=7)
    assert gone.events == older
    assert history.count("SELECT COUNT(*) FROM events") == newer
    assert store.delete_before(SITE, cutoff, batch=7).events == 0
    assert store.oldest_event_time(SITE) is not None
    assert store.oldest_event_time(SITE) >= cutoff  # type: ignore[operator]
    store.close()


def test_the_gateway_part_runs_retention(live_hub: tuple[Hub, ServerThread]) -> None:
    hub, _server = live_hub
    run = wait_until(lambda: hub.retention.last_run, what="the first retention run")
    assert run.nights_kept == 0  # a new hub has nothing old
    assert run.cutoff < datetime.now(UTC) - timedelta(days=89)


def _us(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000)
