"""Nights kept as aggregates: what retention keeps, and the cache of closed nights.

Two kinds of row, one table, one reader:

- `retention`: before retention deletes a night's raw events, the night's freed-hours rows
  (docs/freed-hours.md, one per resident) and the utilisation report's figures are written here, in
  the shared SQLite file. Reports then read these rows for that night, so a report over an old
  period gives the same numbers after the raw events are gone as it gave before.
- `cache`: the same rows for a closed night whose raw events are still there, so a report
  over a year reads ~365 rows per resident instead of millions of messages. A cached night is
  used only while it is exactly what the raw events would give: a trigger on the event table
  marks it stale when an event for its time window is stored afterwards (a device's queued
  messages after an outage, `carehub import`, `carehub backfill`), and a cached night computed
  under another site file (bindings, heartbeats, night hours) is ignored. A stale night is
  read raw, and computed again by the next run of the retention job.

Only the parts of a night that cannot change are kept: coverage κ and the equipment figures.
Alarms are always read from the alarm store, so an alarm acknowledged or resolved later, or a
changed assumption (docs/freed-hours.md), shows at once.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from carehub.private import private_db
from carehub.site import SiteIndex
from carehub.timefmt import to_us
from carehub.walmode import enable_wal
from services.reports.freed_hours import ResidentNight
from services.reports.service import StoredNight, StoredNights
from services.reports.utilisation import NightUse

SCHEMA = """
CREATE TABLE IF NOT EXISTS report_nights (
    site TEXT NOT NULL,
    night TEXT NOT NULL,
    computed_us INTEGER NOT NULL,
    figures TEXT NOT NULL,
    PRIMARY KEY (site, night)
);
CREATE TABLE IF NOT EXISTS report_resident_nights (
    site TEXT NOT NULL,
    night TEXT NOT NULL,
    resident_id TEXT NOT NULL,
    ward TEXT,
    hours REAL NOT NULL,
    coverage REAL NOT NULL,
    baseline_min REAL NOT NULL,
    retained_min REAL NOT NULL,
    alarm_min REAL NOT NULL,
    alarm_visits REAL NOT NULL,
    entries_scheduled REAL NOT NULL,
    freed_min REAL NOT NULL,
    PRIMARY KEY (site, night, resident_id)
);
CREATE INDEX IF NOT EXISTS report_resident_nights_resident
    ON report_resident_nights (site, resident_id, night);
"""

_NIGHT_COLUMNS = (
    ("kind", "TEXT NOT NULL DEFAULT 'retention'"),
    ("lo_us", "INTEGER"),
    ("hi_us", "INTEGER"),
    ("stale", "INTEGER NOT NULL DEFAULT 0"),
    ("site_digest", "TEXT"),
)
"""Columns of `report_nights` added with the cache (ALTER TABLE on files made before it).
`lo_us`/`hi_us` are the event times the night's figures read; `stale` is set by the trigger."""

MAX_WINDOW = timedelta(days=2)
"""Longest event window a cached night may have (a night is at most ~15 h, plus three
heartbeats before it and the dose window after it); longer ones are not cached. It bounds
what the trigger visits: the nights whose window ends within MAX_WINDOW after the event."""

_MAX_WINDOW_US = int(MAX_WINDOW.total_seconds()) * 1_000_000
_STALE_TRIGGER_SQL = f"""CREATE TRIGGER report_nights_stale AFTER INSERT ON events
BEGIN
    UPDATE report_nights SET stale = 1
    WHERE site = NEW.site AND kind = 'cache' AND stale = 0
      AND hi_us > NEW.ts_us AND hi_us <= NEW.ts_us + {_MAX_WINDOW_US}
      AND lo_us <= NEW.ts_us;
END"""
"""A live event is newer than every cached night's end, so the index on `hi_us` finds nothing
to visit; a late one visits the few nights whose window ends within MAX_WINDOW after it, so
importing years of old history costs a handful of index steps per row."""

CACHE = "cache"
RETENTION = "retention"


def _counted(figures: str = "figures") -> str:
    """SQL: the night's figures count its messages. A cached night without the count (cached
    before unmeasured nights were told apart, docs/freed-hours.md) is not used: it is read raw
    and cached again, as a stale one is. A retention night without it cannot be computed
    again and falls back on its uptime (`NightUse.measured`)."""
    return f"json_extract({figures}, '$.messages') IS NOT NULL"


def site_digest(index: SiteIndex) -> str:
    """The site file as the figures of a night depend on it: a cached night computed under
    another one (a binding moved, a heartbeat changed) is not used."""
    return hashlib.sha256(index.site.model_dump_json().encode()).hexdigest()[:32]


_ROW_FIELDS = (
    "resident_id",
    "ward",
    "hours",
    "coverage",
    "baseline_min",
    "retained_min",
    "alarm_min",
    "alarm_visits",
    "entries_scheduled",
)


class AggregateStore:
    """The `report_nights` and `report_resident_nights` tables of one site."""

    def __init__(self, db: Path | str, site: str, digest: str | None = None) -> None:
        """`digest` (`site_digest`) of the site file in force; without it cached nights are
        neither read nor written, only what retention kept."""
        self.path = Path(db)
        self.site = site
        self.digest = digest
        private_db(self.path)
        self._conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30
        )
        enable_wal(self._conn)
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.executescript(SCHEMA)
        have = {row[1] for row in self._conn.execute("PRAGMA table_info(report_nights)")}
        for name, decl in _NIGHT_COLUMNS:
            if name not in have:
                self._conn.execute(f"ALTER TABLE report_nights ADD COLUMN {name} {decl}")
        self._lock = threading.Lock()
        self.watched = self._watch_events()

    def _watch_events(self) -> bool:
        """Put the stale trigger on the event table when this file has one (a SQLite event
        store); answers whether cached nights can be trusted here."""
        has_events = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'"
        ).fetchone()
        if has_events is None:
            return False
        self._conn.execute(
            "CREATE INDEX IF NOT EXISTS report_nights_window ON report_nights (site, hi_us)"
        )
        row = self._conn.execute(
            "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'report_nights_stale'"
        ).fetchone()
        if row is None or row[0] != _STALE_TRIGGER_SQL:  # missing, or an older definition
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("DROP TRIGGER IF EXISTS report_nights_stale")
            self._conn.execute(_STALE_TRIGGER_SQL)
            self._conn.execute("COMMIT")
        return True

    def events_mark(self) -> int:
        """The newest event row now; take it before reading a night to cache (`put`)."""
        with self._lock:
            row = self._conn.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()
        return int(row[0])

    @property
    def caches(self) -> bool:
        """Whether this store keeps and serves cached nights (see the module docstring)."""
        return self.digest is not None and self.watched

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def put(
        self,
        nights: Mapping[date, StoredNight],
        at: datetime,
        *,
        kind: str = RETENTION,
        windows: Mapping[date, tuple[datetime, datetime]] | None = None,
        since: int | None = None,
    ) -> None:
        """Keep these nights (replacing what was kept of them), all in one transaction.
        A `cache` night needs its event window (`windows`), which the trigger watches from
        now on, and the `events_mark()` taken before its figures were read (`since`): an
        event stored in between leaves the night stale at once."""
        if kind == CACHE and (not self.caches or since is None):
            msg = "cached nights need a site digest, a SQLite event table to watch and `since`"
            raise RuntimeError(msg)
        windows = windows or {}
        too_long = [
            n for n in nights if n in windows and windows[n][1] - windows[n][0] > MAX_WINDOW
        ]
        if too_long:
            msg = f"event windows longer than {MAX_WINDOW} cannot be cached: {too_long}"
            raise ValueError(msg)
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for night, kept in nights.items():
                    label = night.isoformat()
                    lo, hi = windows.get(night, (None, None))
                    self._conn.execute(
                        "INSERT OR REPLACE INTO report_nights (site, night, computed_us, figures,"
                        " kind, lo_us, hi_us, stale, site_digest)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?)",
                        (
                            self.site,
                            label,
                            to_us(at),
                            json.dumps(kept.use.to_json()),
                            kind,
                            None if lo is None else to_us(lo),
                            None if hi is None else to_us(hi),
                            self.digest,
                        ),
                    )
                    self._conn.execute(
                        "DELETE FROM report_resident_nights WHERE site = ? AND night = ?",
                        (self.site, label),
                    )
                    self._conn.executemany(
                        "INSERT INTO report_resident_nights (site, night, resident_id, ward,"
                        " hours, coverage, baseline_min, retained_min, alarm_min, alarm_visits,"
                        " entries_scheduled, freed_min)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            (self.site, label, *(getattr(r, f) for f in _ROW_FIELDS), r.freed_min)
                            for r in kept.residents.values()
                        ],
                    )
                if kind == CACHE:
                    self._conn.execute(
                        "UPDATE report_nights SET stale = 1 WHERE site = ? AND kind = 'cache'"
                        " AND night IN (SELECT value FROM json_each(?)) AND EXISTS (SELECT 1"
                        " FROM events e"
                        " WHERE e.rowid > ? AND e.site = report_nights.site"
                        " AND e.ts_us >= report_nights.lo_us AND e.ts_us < report_nights.hi_us)",
                        (self.site, json.dumps([n.isoformat() for n in nights]), since),
                    )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def kept_nights(self, first: date, last: date) -> set[date]:
        """Labels of the nights in [first, last] kept by retention (raw events gone)."""
        return self._labels(first, last, "kind = 'retention'")

    def cached_nights(self, first: date, last: date) -> set[date]:
        """Labels of the nights in [first, last] with a usable cached aggregate."""
        if not self.caches:
            return set()
        return self._labels(
            first, last, f"kind = 'cache' AND stale = 0 AND site_digest = ? AND {_counted()}"
        )

    def _labels(self, first: date, last: date, where: str) -> set[date]:
        args: tuple[Any, ...] = (self.site, first.isoformat(), last.isoformat())
        if "?" in where:
            args = (*args, self.digest)
        with self._lock:
            rows = self._conn.execute(
                "SELECT night FROM report_nights WHERE site = ? AND night BETWEEN ? AND ?"
                f" AND {where}",
                args,
            ).fetchall()
        return {date.fromisoformat(n) for (n,) in rows}

    def retire(self, first: date, last: date) -> int:
        """Cached nights of [first, last] become retention's (their raw events are about to
        go); answers how many."""
        with self._lock:
            cur = self._conn.execute(
                "UPDATE report_nights SET kind = 'retention'"
                " WHERE site = ? AND night BETWEEN ? AND ? AND kind = 'cache'",
                (self.site, first.isoformat(), last.isoformat()),
            )
        return int(cur.rowcount)

    def stored_nights(self, first: date, last: date) -> dict[date, StoredNight]:
        """The usable nights of [first, last], kept or cached (a
        `services.reports.service.StoredNights`): stale or foreign cached nights left out."""
        span = (self.site, first.isoformat(), last.isoformat())
        usable = (
            "(n.kind = 'retention' OR (n.kind = 'cache' AND n.stale = 0 AND n.site_digest = ?"
            f" AND {_counted('n.figures')}))"
        )
        args = (*span, self.digest if self.caches else "")
        with self._lock:
            nights = self._conn.execute(
                "SELECT n.night, n.figures FROM report_nights n"
                f" WHERE n.site = ? AND n.night BETWEEN ? AND ? AND {usable}",
                args,
            ).fetchall()
            rows = self._conn.execute(
                f"SELECT r.night, {', '.join('r.' + f for f in _ROW_FIELDS)}"
                " FROM report_resident_nights r JOIN report_nights n"
                " ON n.site = r.site AND n.night = r.night"
                f" WHERE r.site = ? AND r.night BETWEEN ? AND ? AND {usable}"
                " ORDER BY r.night, r.resident_id",
                args,
            ).fetchall()
        residents: dict[str, dict[str, ResidentNight]] = {}
        for night, *values in rows:
            fields = dict(zip(_ROW_FIELDS, values, strict=True))
            row = ResidentNight(night=date.fromisoformat(night), **fields)
            residents.setdefault(night, {})[row.resident_id] = row
        return {
            date.fromisoformat(night): StoredNight(
                date.fromisoformat(night),
                residents.get(night, {}),
                NightUse.from_json(json.loads(figures)),
            )
            for night, figures in nights
        }

    def resident_rows(self, resident_id: str) -> list[dict[str, Any]]:
        """One resident's kept freed-hours rows, oldest night first (for their export)."""
        with self._lock:
            rows = self._conn.execute(
                f"SELECT night, {', '.join(_ROW_FIELDS)}, freed_min FROM report_resident_nights"
                " WHERE site = ? AND resident_id = ? ORDER BY night",
                (self.site, resident_id),
            ).fetchall()
        out = []
        for night, *values in rows:
            row = dict(zip((*_ROW_FIELDS, "freed_min"), values, strict=True))
            out.append({"night": night, **row})
        return out


def stored_nights_in(db: Path | str, site: str, digest: str | None = None) -> StoredNights:
    """A `StoredNights` reader that opens the file for each call and closes it again, for
    short-lived users such as `carehub report` that hold no store open."""

    def read(first: date, last: date) -> dict[date, StoredNight]:
        store = AggregateStore(db, site, digest)
        try:
            return store.stored_nights(first, last)
        finally:
            store.close()

    return read
