"""Nights kept as aggregates once their raw events are deleted ("reports kept as aggregates").

Before retention deletes a night's raw events, the night's freed-hours rows (SPEC §6, one per
resident) and the utilisation report's figures are written here, in the shared SQLite file.
Reports then read these rows for that night, so a report over an old period gives the same
numbers after the raw events are gone as it gave before.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any

from services.alarms.store import to_us
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

    def __init__(self, db: Path | str, site: str) -> None:
        self.path = Path(db)
        self.site = site
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.executescript(SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def put(self, nights: Mapping[date, StoredNight], at: datetime) -> None:
        """Keep these nights (replacing what was kept of them), all in one transaction."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for night, kept in nights.items():
                    label = night.isoformat()
                    self._conn.execute(
                        "INSERT OR REPLACE INTO report_nights (site, night, computed_us, figures)"
                        " VALUES (?, ?, ?, ?)",
                        (self.site, label, to_us(at), json.dumps(kept.use.to_json())),
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
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def kept_nights(self, first: date, last: date) -> set[date]:
        """Labels of the nights in [first, last] that are kept as aggregates."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT night FROM report_nights WHERE site = ? AND night BETWEEN ? AND ?",
                (self.site, first.isoformat(), last.isoformat()),
            ).fetchall()
        return {date.fromisoformat(n) for (n,) in rows}

    def stored_nights(self, first: date, last: date) -> dict[date, StoredNight]:
        """The kept nights of [first, last] (a `services.reports.service.StoredNights`)."""
        span = (self.site, first.isoformat(), last.isoformat())
        with self._lock:
            nights = self._conn.execute(
                "SELECT night, figures FROM report_nights WHERE site = ? AND night BETWEEN ? AND ?",
                span,
            ).fetchall()
            rows = self._conn.execute(
                f"SELECT night, {', '.join(_ROW_FIELDS)} FROM report_resident_nights"
                " WHERE site = ? AND night BETWEEN ? AND ? ORDER BY night, resident_id",
                span,
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


def stored_nights_in(db: Path | str, site: str) -> StoredNights:
    """A `StoredNights` reader that opens the file for each call and closes it again, for
    short-lived users such as `carehub report` that hold no store open."""

    def read(first: date, last: date) -> dict[date, StoredNight]:
        store = AggregateStore(db, site)
        try:
            return store.stored_nights(first, last)
        finally:
            store.close()

    return read
