"""Pending timers: the rules engine's time-based decisions, kept in the file, not in memory,
so a restarted process still fires the dose window, silence, escalation or reminder due."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from carehub.timefmt import from_us, to_us
from services.alarms.store.db import Repository, StoreDb

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


_NONE_DUE = 2**63 - 1
"""The earliest due time when no timer is pending."""


class TimerRepository(Repository):
    """The `rule_timers` table.

    The rules engine asks for due timers before every event, and almost always none is due.
    Inside a transaction it keeps a lower bound of the earliest due time (`StoreDb.generation`
    says when the bound may no longer hold: a rollback, another connection's commit), so the
    question costs no SQL until the clock reaches that bound.
    """

    def __init__(self, db: StoreDb) -> None:
        super().__init__(db)
        self._earliest_us = _NONE_DUE
        """No timer is due before this (µs), while the generation is `_earliest_at`."""
        self._earliest_at: tuple[int, int] | None = None

    def set_timer(self, timer: Timer) -> None:
        """Create or move a timer."""
        due_us = to_us(timer.due)
        self._db.write(
            "INSERT INTO rule_timers (timer_id, kind, due_us, data) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(timer_id) DO UPDATE SET kind = excluded.kind,"
            " due_us = excluded.due_us, data = excluded.data",
            (timer.timer_id, timer.kind, due_us, json.dumps(timer.data)),
        )
        if self._earliest_at is not None and self._earliest_at == self._db.generation:
            self._earliest_us = min(self._earliest_us, due_us)

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
        until_us = to_us(until)
        generation = self._db.generation
        if (
            generation is not None
            and generation == self._earliest_at
            and until_us < self._earliest_us
        ):
            return []
        rows = self._db.rows(
            "SELECT timer_id, kind, due_us, data FROM rule_timers WHERE due_us <= ?"
            " ORDER BY due_us, timer_id LIMIT ?",
            (until_us, limit),
        )
        if not rows and generation is not None:
            # none due yet: remember when the first one is (the due index answers at once)
            first = self._db.rows("SELECT min(due_us) FROM rule_timers")[0][0]
            self._earliest_us = _NONE_DUE if first is None else int(first)
            self._earliest_at = generation
        return [self._timer(r) for r in rows]

    def timers(self) -> list[Timer]:
        """Every pending timer, earliest first."""
        rows = self._db.rows("SELECT timer_id, kind, due_us, data FROM rule_timers ORDER BY due_us")
        return [self._timer(r) for r in rows]
