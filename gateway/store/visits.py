"""The visit log's table (docs/freed-hours.md, "Measured night work") in the hub's SQLite file,
next to the events.

Imported visits (round sheets, a nurse-call system's export: docs/cli.md) live here; a
presence device's visits are paired from its stored events when a report asks. A visit is
known by its natural key (site, room, resident, entered, left, staff), so importing the same
file twice adds nothing.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from carehub.private import private_db
from carehub.timefmt import from_us, to_us
from carehub.visits import MAX_VISIT, VISIT_REASONS, Visit, VisitReason
from carehub.walmode import enable_wal

SCHEMA = """
CREATE TABLE IF NOT EXISTS visits (
    site TEXT NOT NULL,
    room TEXT NOT NULL,
    resident_id TEXT NOT NULL,
    entered_at_us INTEGER NOT NULL,
    left_at_us INTEGER NOT NULL,
    staff TEXT NOT NULL,
    reason TEXT,
    source TEXT NOT NULL,
    PRIMARY KEY (site, room, resident_id, entered_at_us, left_at_us, staff)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS visits_entered ON visits (site, entered_at_us);
"""
# '' rather than NULL for an absent room, resident or staff: NULLs never collide in a key


class VisitStore:
    """The `visits` table; thread-safe, one connection."""

    def __init__(self, db: Path | str, site: str) -> None:
        self.site = site
        private_db(Path(db))
        self._conn = sqlite3.connect(str(db), check_same_thread=False, timeout=30)
        self._lock = threading.Lock()
        with self._lock:
            enable_wal(self._conn)
            self._conn.executescript(SCHEMA)
            self._conn.commit()

    def add_many(self, visits: Iterable[Visit]) -> tuple[int, int]:
        """Store visits in one transaction; answers (added, already there)."""
        rows = []
        for v in visits:
            if v.site != self.site:
                msg = f"visit of site {v.site!r} in the store of {self.site!r}"
                raise ValueError(msg)
            rows.append((*v.natural_key(), v.reason, v.source))
        if not rows:
            return 0, 0
        with self._lock:
            before = self._conn.total_changes
            self._conn.executemany(
                "INSERT OR IGNORE INTO visits (site, room, resident_id, entered_at_us,"
                " left_at_us, staff, reason, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            self._conn.commit()
            added = self._conn.total_changes - before
        return added, len(rows) - added

    def between(self, lo: datetime, hi: datetime) -> list[Visit]:
        """Visits that overlap [lo, hi), oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT room, resident_id, entered_at_us, left_at_us, staff, reason, source"
                " FROM visits WHERE site = ? AND entered_at_us >= ? AND entered_at_us < ?"
                " AND left_at_us > ? ORDER BY entered_at_us, room, resident_id",
                (self.site, to_us(lo - MAX_VISIT), to_us(hi), to_us(lo)),
            ).fetchall()
        return [
            Visit(
                self.site,
                from_us(entered),
                from_us(left),
                room or None,
                resident or None,
                staff or None,
                _reason(reason),
                source,
            )
            for room, resident, entered, left, staff, reason, source in rows
        ]

    def count(self) -> int:
        """Visits stored for the site."""
        with self._lock:
            row = self._conn.execute("SELECT COUNT(*) FROM visits WHERE site = ?", (self.site,))
            return int(row.fetchone()[0])

    def close(self) -> None:
        """Release the connection."""
        with self._lock:
            self._conn.close()


def _reason(value: str | None) -> VisitReason | None:
    for reason in VISIT_REASONS:
        if reason == value:
            return reason
    return None


def visits_between_in(db: Path | str, site: str) -> Callable[[datetime, datetime], list[Visit]]:
    """A `between(lo, hi)` reader that opens the file for each call and closes it again, for
    short-lived users such as `carehub report` and the web app's report source."""

    def read(lo: datetime, hi: datetime) -> list[Visit]:
        store = VisitStore(db, site)
        try:
            return store.between(lo, hi)
        finally:
            store.close()

    return read
