"""Event ids the rules engine has handled (so a replay changes nothing) and the triggers it
suppressed because a resident's monitoring was switched off (for their data export).

Both are pruned by age: handled ids when replays that old are no longer expected, suppressed
triggers with the raw events they came from.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from carehub.timefmt import from_us, rfc3339, to_us
from services.alarms.store.db import Repository

SCHEMA = """
CREATE TABLE IF NOT EXISTS alarm_seen_events (
    event_id TEXT PRIMARY KEY,
    at_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS alarm_seen_events_at ON alarm_seen_events (at_us);
CREATE TABLE IF NOT EXISTS alarm_suppressed (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT,
    rule TEXT NOT NULL,
    resident_id TEXT NOT NULL,
    device_id TEXT,
    at_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS alarm_suppressed_resident ON alarm_suppressed (resident_id, at_us);
"""


class EventIdRepository(Repository):
    """The `alarm_seen_events` and `alarm_suppressed` tables."""

    # --- handled events -------------------------------------------------------------------

    def mark_seen(self, event_id: str, at: datetime) -> bool:
        """Remember a handled event; False if it was handled before (a replay)."""
        return (
            self._db.write(
                "INSERT OR IGNORE INTO alarm_seen_events (event_id, at_us) VALUES (?, ?)",
                (event_id, to_us(at)),
            )
            == 1
        )

    def prune_seen(self, before: datetime) -> int:
        """Forget handled event ids older than `before` (replays that old are not expected)."""
        with self._db.transaction():
            return self._db.write("DELETE FROM alarm_seen_events WHERE at_us < ?", (to_us(before),))

    # --- monitoring switched off ----------------------------------------------------------

    def add_suppressed(
        self, event_id: str | None, rule: str, resident_id: str, device_id: str, at: datetime
    ) -> None:
        """Mark a trigger that raised nothing because the resident's monitoring is off."""
        self._db.write(
            "INSERT INTO alarm_suppressed (event_id, rule, resident_id, device_id, at_us)"
            " VALUES (?, ?, ?, ?, ?)",
            (event_id, rule, resident_id, device_id, to_us(at)),
        )

    def suppressed(self, resident_id: str) -> list[dict[str, Any]]:
        """A resident's suppressed triggers, oldest first (for their data export)."""
        rows = self._db.rows(
            "SELECT event_id, rule, device_id, at_us FROM alarm_suppressed"
            " WHERE resident_id = ? ORDER BY at_us, id",
            (resident_id,),
        )
        return [
            {"event_id": e, "rule": r, "device_id": d, "at": rfc3339(from_us(t))}
            for e, r, d, t in rows
        ]

    def prune_suppressed(self, before: datetime) -> int:
        """Forget suppressed triggers older than `before` (they go with the raw events)."""
        with self._db.transaction():
            return self._db.write("DELETE FROM alarm_suppressed WHERE at_us < ?", (to_us(before),))
