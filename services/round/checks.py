"""Digital checks ("set digitalt"): who looked at a resident through the sensors, when, and
what they concluded. Kept in their own table of the hub's SQLite file, for the round page's
`last_check` and for the reports (docs/round.md); each is also put in the audit log."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from carehub.timefmt import from_us, rfc3339, to_us
from carehub.walmode import enable_wal

CheckResult = Literal["ok", "visit_needed"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS digital_checks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    site TEXT NOT NULL,
    resident_id TEXT NOT NULL,
    at_us INTEGER NOT NULL,
    actor TEXT NOT NULL,
    result TEXT NOT NULL,
    note TEXT
);
CREATE INDEX IF NOT EXISTS digital_checks_resident ON digital_checks (resident_id, at_us);
CREATE INDEX IF NOT EXISTS digital_checks_at ON digital_checks (at_us);
"""


@dataclass(frozen=True, slots=True)
class DigitalCheck:
    """One recorded check."""

    resident_id: str
    at: datetime
    by: str
    result: str
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The round API's `last_check`."""
        return {"at": rfc3339(self.at, "seconds"), "by": self.by, "result": self.result}


class CheckStore:
    """The `digital_checks` table; thread-safe, one connection."""

    def __init__(self, db: Path | str, site: str) -> None:
        self.site = site
        self._conn = sqlite3.connect(str(db), check_same_thread=False, timeout=30)
        self._lock = threading.Lock()
        with self._lock:
            enable_wal(self._conn)
            self._conn.executescript(SCHEMA)
            self._conn.commit()

    def add(self, check: DigitalCheck) -> None:
        """Record a check, durably."""
        with self._lock:
            self._conn.execute(
                "INSERT INTO digital_checks (site, resident_id, at_us, actor, result, note)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (self.site, check.resident_id, to_us(check.at), check.by, check.result, check.note),
            )
            self._conn.commit()

    def add_many(self, checks: list[DigitalCheck]) -> None:
        """Record many checks in one transaction (the backfill's simulated staff)."""
        with self._lock:
            self._conn.executemany(
                "INSERT INTO digital_checks (site, resident_id, at_us, actor, result, note)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(self.site, c.resident_id, to_us(c.at), c.by, c.result, c.note) for c in checks],
            )
            self._conn.commit()

    def latest(self) -> dict[str, DigitalCheck]:
        """Each resident's newest check."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT resident_id, MAX(at_us), actor, result, note FROM digital_checks"
                " WHERE site = ? GROUP BY resident_id",
                (self.site,),
            ).fetchall()
        return {r: DigitalCheck(r, from_us(t), a, res, n) for r, t, a, res, n in rows}

    def between(self, lo: datetime, hi: datetime) -> list[DigitalCheck]:
        """Checks in [lo, hi), oldest first (the reports' source)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT resident_id, at_us, actor, result, note FROM digital_checks"
                " WHERE site = ? AND at_us >= ? AND at_us < ? ORDER BY at_us",
                (self.site, to_us(lo), to_us(hi)),
            ).fetchall()
        return [DigitalCheck(r, from_us(t), a, res, n) for r, t, a, res, n in rows]

    def close(self) -> None:
        """Release the connection."""
        with self._lock:
            self._conn.close()


def checks_between_in(
    db: Path | str, site: str
) -> Callable[[datetime, datetime], list[DigitalCheck]]:
    """A `between(lo, hi)` reader that opens the file for each call and closes it again, for
    short-lived users such as `carehub report` that hold no store open."""

    def read(lo: datetime, hi: datetime) -> list[DigitalCheck]:
        store = CheckStore(db, site)
        try:
            return store.between(lo, hi)
        finally:
            store.close()

    return read
