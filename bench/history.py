"""A year of history in the hub's own stores, for the report benchmarks.

Simulating a year message by message through the pipeline (`carehub backfill`) takes about
half an hour for the 24-resident demo site, and a 500-resident home's year is ~260 million
rows. So the history is built from a seed: `app.backfill.backfill` writes a few days
of the demo site through the real gateway `Ingestor`, rules engine and simulated staff; then
the seed's stored events are copied, in SQL, to earlier periods (blocks shifted back by the
seed's length) and, for a larger home, to copies of the demo site (ids suffixed `-cNN`, see
`bench.sites.demo_copies`); its resolved alarms are copied the same way through
`AlarmStore.import_alarm`. The result has the seed's message rates, alarm mix and staff
response times throughout, in exactly the tables the reports read.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from app.backfill import BackfillReport, backfill
from bench.sites import SiteFile, copy_suffix
from carehub.site import SiteIndex
from gateway.store.sqlite import SqliteEventStore
from services.alarms.model import Alarm
from services.alarms.store import AlarmStore

SEED_END = datetime(2026, 3, 1, 11, 0, tzinfo=UTC)
"""Fixed, so runs are comparable: the seed (and so the history) ends here."""
ALARM_TIMES = (
    "raised_at",
    "acknowledged_at",
    "escalated_at",
    "resolved_at",
    "last_seen_at",
    "cleared_at",
)


@dataclass(frozen=True, slots=True)
class History:
    """A database of history and what it covers."""

    db: Path
    start: datetime
    end: datetime
    events: int
    alarms: int
    seconds: float
    """Time taken to build it (not part of any figure)."""


def seed(site: SiteFile, db: Path, days: int) -> BackfillReport:
    """Backfill `days` days of the (demo) site into `db`, ending at SEED_END."""
    return backfill(site.site, db, days=days, end=SEED_END, seed=1)


def _shift_alarm(body: dict[str, Any], shift: timedelta, sfx: str, tag: str) -> Alarm:
    data = dict(body)
    for key in ALARM_TIMES:
        if data.get(key):
            data[key] = (datetime.fromisoformat(data[key]) - shift).isoformat()
    for key in ("resident_id", "room", "device_id"):
        if data.get(key):
            data[key] = data[key] + sfx
    data["alarm_id"] = f"{data['alarm_id']}{sfx}~{tag}"
    return Alarm.model_validate(data)


def replicate(
    seed_db: Path,
    seed_days: int,
    target: SiteFile,
    db: Path,
    blocks: int,
    copies: int = 0,
    alarm_blocks: int | None = None,
) -> History:
    """`blocks` periods of the seed, going back in time, for the target site: the seed's
    own ids when `copies` is 0, else each of `copies` demo copies present in the target.
    `alarm_blocks` (default `blocks`) periods of its alarms: more than the events' when the
    nights beyond the events come from `replicate_cache`."""
    began = time.perf_counter()
    SqliteEventStore(db).close()  # the schemas, as the hub creates them
    suffixes = [copy_suffix(c) for c in range(copies)] if copies else [""]
    wanted = {d.id for d in target.site.devices}
    conn = sqlite3.connect(db, isolation_level=None)
    # A bulk load: no journal, and the events' secondary indexes built once at the end
    # (several times faster than keeping them up to date row by row).
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'"
        " AND sql IS NOT NULL"
    ).fetchall()
    for name, _sql in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    conn.execute("ATTACH DATABASE ? AS seed", (str(seed_db),))
    conn.execute("CREATE TEMP TABLE devmap (src TEXT PRIMARY KEY, dst TEXT, sfx TEXT)")
    conn.execute("CREATE TEMP TABLE copies (sfx TEXT)")
    seed_devices = [r[0] for r in conn.execute("SELECT DISTINCT device_id FROM seed.events")]
    shift_us = seed_days * 86_400 * 1_000_000
    try:
        for sfx in suffixes:
            conn.execute("DELETE FROM devmap")
            conn.executemany(
                "INSERT INTO devmap VALUES (?, ?, ?)",
                [(d, d + sfx, sfx) for d in seed_devices if d + sfx in wanted],
            )
            for k in range(blocks):
                conn.execute("BEGIN")
                conn.execute(
                    "INSERT INTO main.events SELECT e.event_id || m.sfx || '~' || ?, e.site,"
                    " m.dst, e.kind, e.type, e.ts_us - ?, e.received_at_us - ?,"
                    " e.resident_id || m.sfx, e.room || m.sfx, e.seq, e.data"
                    " FROM seed.events e JOIN devmap m ON e.device_id = m.src",
                    (k, k * shift_us, k * shift_us),
                )
                conn.execute("COMMIT")
        for _name, sql in indexes:
            conn.execute(sql)
        events = int(conn.execute("SELECT count(*) FROM main.events").fetchone()[0])
    finally:
        conn.close()
    n_alarms = _copy_alarms(seed_db, seed_days, db, alarm_blocks or blocks, suffixes, wanted)
    end = SEED_END
    start = end - timedelta(days=seed_days * blocks)
    return History(db, start, end, events, n_alarms, time.perf_counter() - began)


def _copy_alarms(
    seed_db: Path, seed_days: int, db: Path, blocks: int, suffixes: list[str], wanted: set[str]
) -> int:
    """The seed's resolved alarms, shifted and renamed like the events, imported as history."""
    seed = sqlite3.connect(seed_db)
    try:
        bodies = [
            Alarm.model_validate_json(b).model_dump(mode="json")
            for (b,) in seed.execute("SELECT body FROM alarms WHERE state = 'resolved'")
        ]
    finally:
        seed.close()
    alarms = AlarmStore(db)
    n_alarms = 0
    try:
        with alarms.transaction():
            for sfx in suffixes:
                for k in range(blocks):
                    shift = timedelta(days=seed_days * k)
                    for body in bodies:
                        if body.get("device_id") and body["device_id"] + sfx not in wanted:
                            continue
                        n_alarms += alarms.import_alarm(_shift_alarm(body, shift, sfx, str(k)))
    finally:
        alarms.close()
    return n_alarms


def replicate_cache(db: Path, site: str, first: date, last: date, times: int) -> int:
    """Copy the cached nights [first, last] (`services.privacy.aggregates`) `times - 1` times
    to the periods before, shifted by the period's length, windows and all: a year of cached
    nights of a large home without computing each (the cache of one night costs what its
    cold report costs, measured as `cache_s`). Answers the cached nights there are now."""
    span = (last - first).days + 1
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN")
        for k in range(1, times):
            shift_us = k * span * 86_400 * 1_000_000
            args = (
                f"-{k * span} days",
                shift_us,
                shift_us,
                site,
                first.isoformat(),
                last.isoformat(),
            )
            conn.execute(
                "INSERT OR REPLACE INTO report_nights (site, night, computed_us, figures, kind,"
                " lo_us, hi_us, stale, site_digest)"
                " SELECT site, date(night, ?), computed_us, figures, kind, lo_us - ?, hi_us - ?,"
                " stale, site_digest FROM report_nights"
                " WHERE site = ? AND night BETWEEN ? AND ? AND kind = 'cache' AND stale = 0",
                args,
            )
            conn.execute(
                "INSERT OR REPLACE INTO report_resident_nights SELECT site, date(night, ?),"
                " resident_id, ward, hours, coverage, baseline_min, retained_min, alarm_min,"
                " alarm_visits, entries_scheduled, freed_min FROM report_resident_nights"
                " WHERE site = ? AND night BETWEEN ? AND ?",
                (f"-{k * span} days", site, first.isoformat(), last.isoformat()),
            )
        conn.execute("COMMIT")
        return int(
            conn.execute(
                "SELECT count(*) FROM report_nights WHERE site = ? AND kind = 'cache'", (site,)
            ).fetchone()[0]
        )
    finally:
        conn.close()


def nights(site: SiteFile, history: History) -> tuple[date, date]:
    """The whole nights the history covers (first and last label)."""
    index = SiteIndex(site.site)
    first = history.start.astimezone(index.tz).date()
    if index.night_bounds(first)[0] < history.start:
        first += timedelta(days=1)
    last = history.end.astimezone(index.tz).date()
    while index.night_bounds(last)[1] > history.end:
        last -= timedelta(days=1)
    return first, last
