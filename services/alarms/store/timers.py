"""Pending timers: the rules engine's time-based decisions, kept in the file, not in memory,
so a restarted process still fires the dose window, silence, escalation or reminder due."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from carehub.timefmt import from_us, to_us
from services.alarms.store.db import Repository

SCHEMA = """
CREATE TABLE IF NOT EXISTS rule_timers (
    timer_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    due_us INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rule_timers_due ON rule_timers (due_us);
"""


@dataclass(frozen=True, slots=True)
class Timer:
    """A pending time-based decision: a dose window, a silence, an escalation, a reminder."""

    timer_id: str
    kind: str
    due: datetime
    data: dict[str, Any]


class TimerRepository(Repository):
    """The `rule_timers` table."""

    def set_timer(self, timer: Timer) -> None:
        """Create or move a timer."""
        self._db.write(
            "INSERT INTO rule_timers (timer_id, kind, due_us, data) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(timer_id) DO UPDATE SET kind = excluded.kind,"
            " due_us = excluded.due_us, data = excluded.data",
            (timer.timer_id, timer.kind, to_us(timer.due), json.dumps(timer.data)),
        )

    def delete_timer(self, timer_id: str) -> bool:
        """Cancel a timer; False if there was none."""
        return self._db.write("DELETE FROM rule_timers WHERE timer_id = ?", (timer_id,)) == 1

    def get_timer(self, timer_id: str) -> Timer | None:
        """A pending timer by id."""
        rows = self._db.rows(
            "SELECT timer_id, kind, due_us, data FROM rule_timers WHERE timer_id = ?",
            (timer_id,),
        )
        return self._timer(rows[0]) if rows else None

    @staticmethod
    def _timer(row: tuple[Any, ...]) -> Timer:
        return Timer(row[0], row[1], from_us(row[2]), json.loads(row[3]))

    def due_timers(self, until: datetime, limit: int = 500) -> list[Timer]:
        """Timers due at or before `until`, earliest first."""
        rows = self._db.rows(
            "SELECT timer_id, kind, due_us, data FROM rule_timers WHERE due_us <= ?"
            " ORDER BY due_us, timer_id LIMIT ?",
            (to_us(until), limit),
        )
        return [self._timer(r) for r in rows]

    def timers(self) -> list[Timer]:
        """Every pending timer, earliest first."""
        rows = self._db.rows("SELECT timer_id, kind, due_us, data FROM rule_timers ORDER BY due_us")
        return [self._timer(r) for r in rows]
