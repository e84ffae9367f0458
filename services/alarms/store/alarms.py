"""Alarms, their occurrences and their change log, with the change log's named readers.

`alarm_changes` is an append-only log of every alarm change, numbered by `seq`: the MQTT
publisher and every web-app process read it from their own cursor, which is how a change
made in one process (an acknowledgement in the API) reaches the others.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from carehub.timefmt import from_us, rfc3339, to_us
from services.alarms.model import Alarm, as_history
from services.alarms.store.db import Repository, StoreDb

ChangeType = Literal["new", "update", "end"]
ChangeReason = Literal[
    "raised",
    "repeat",
    "acknowledged",
    "escalated",
    "reminder",
    "resolved",
    "sensor_resolved",
    "sensor_cleared",
]
"""Why an alarm changed; the `reason` of a change envelope."""

ACTIVE_SQL = "state != 'resolved' AND state != 'closed'"
"""An alarm that still needs someone (model.ACTIVE_STATES): `closed` is imported history.
Spelled with `state != 'resolved'` so that SQLite can use the partial index `alarms_one_active`
for the rules engine's look-up per event (`NOT IN (...)` makes it scan the table)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS alarms (
    alarm_id TEXT PRIMARY KEY,
    site TEXT NOT NULL,
    rule TEXT NOT NULL,
    subject TEXT NOT NULL,
    state TEXT NOT NULL,
    raised_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL,
    imported INTEGER NOT NULL DEFAULT 0,
    body TEXT NOT NULL
);
-- closed (imported) alarms fall under this index too; each has a subject of its own
CREATE UNIQUE INDEX IF NOT EXISTS alarms_one_active
    ON alarms (site, rule, subject) WHERE state != 'resolved';
CREATE INDEX IF NOT EXISTS alarms_raised ON alarms (raised_us);
CREATE INDEX IF NOT EXISTS alarms_state ON alarms (state);
CREATE TABLE IF NOT EXISTS alarm_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    occurrence_key TEXT NOT NULL,
    alarm_id TEXT NOT NULL,
    event_id TEXT,
    at_us INTEGER NOT NULL,
    ref TEXT
);
CREATE INDEX IF NOT EXISTS alarm_events_alarm ON alarm_events (alarm_id, at_us);
CREATE INDEX IF NOT EXISTS alarm_events_key ON alarm_events (occurrence_key, at_us);
CREATE TABLE IF NOT EXISTS alarm_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    alarm_id TEXT NOT NULL,
    type TEXT NOT NULL,
    reason TEXT NOT NULL,
    at_us INTEGER NOT NULL,
    body TEXT NOT NULL,
    target TEXT
);
CREATE TABLE IF NOT EXISTS alarm_cursors (
    name TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class Change:
    """One row of the change log: an alarm as it became, and why."""

    seq: int
    alarm_id: str
    type: ChangeType
    reason: str
    at: datetime
    alarm: dict[str, Any]
    target: dict[str, Any] | None = None

    def envelope(self) -> dict[str, Any]:
        """What the web app streams: {"type": "new"|"update"|"end", "alarm": {...}, ...}."""
        out: dict[str, Any] = {
            "type": self.type,
            "alarm": self.alarm,
            "reason": self.reason,
            "change_id": self.seq,
            "at": rfc3339(self.at),
        }
        if self.target is not None:
            out["target"] = self.target
        return out


class AlarmRepository(Repository):
    """The `alarms`, `alarm_events`, `alarm_changes` and `alarm_cursors` tables.

    Nearly every heartbeat asks whether its device has an open `sensor_silent` (and battery)
    alarm to resolve, and nearly always none is open. Inside a transaction that answer is
    kept per (site, rule, subject) until this repository writes an alarm, a rollback undoes
    a write or another connection commits (`StoreDb.generation`).
    """

    def __init__(self, db: StoreDb) -> None:
        super().__init__(db)
        self._none_open: set[tuple[str, str, str]] = set()
        self._none_open_at: tuple[int, int] | None = None

    def _none_open_cache(self) -> set[tuple[str, str, str]] | None:
        generation = self._db.generation
        if generation is None:
            return None
        if generation != self._none_open_at:
            self._none_open.clear()
            self._none_open_at = generation
        return self._none_open

    # --- alarms ---------------------------------------------------------------------------

    @staticmethod
    def _alarm(body: str) -> Alarm:
        return Alarm.model_validate_json(body)

    def get(self, alarm_id: str) -> Alarm | None:
        """One alarm by id, or None."""
        rows = self._db.rows("SELECT body FROM alarms WHERE alarm_id = ?", (alarm_id,))
        return self._alarm(rows[0][0]) if rows else None

    def list_alarms(self, *, active_only: bool, since: datetime | None = None) -> list[Alarm]:
        """Alarms, newest first: the active ones, or all (raised at or after `since`)."""
        sql, args = "SELECT body FROM alarms WHERE 1=1", []
        if active_only:
            sql += f" AND {ACTIVE_SQL}"
        if since is not None:
            sql += " AND raised_us >= ?"
            args.append(to_us(since))
        sql += " ORDER BY raised_us DESC, alarm_id"
        return [self._alarm(b) for (b,) in self._db.rows(sql, tuple(args))]

    def raised_between(self, lo: datetime, hi: datetime) -> list[dict[str, Any]]:
        """Alarm JSON of alarms raised in [lo, hi), oldest first: the reports' input."""
        rows = self._db.rows(
            "SELECT body FROM alarms WHERE raised_us >= ? AND raised_us < ? ORDER BY raised_us",
            (to_us(lo), to_us(hi)),
        )
        return [json.loads(b) for (b,) in rows]

    def counts_by_state(self) -> dict[str, int]:
        """Alarms per state, e.g. for /metrics."""
        rows = self._db.rows("SELECT state, COUNT(*) FROM alarms GROUP BY state")
        return {str(state): int(n) for state, n in rows}

    def open_alarm(self, site: str, rule: str, subject: str) -> Alarm | None:
        """The one active alarm of a (rule, resident-or-device), if any."""
        cache = self._none_open_cache()
        key = (site, rule, subject)
        if cache is not None and key in cache:
            return None
        rows = self._db.rows(
            f"SELECT body FROM alarms WHERE site = ? AND rule = ? AND subject = ? AND {ACTIVE_SQL}",
            key,
        )
        if not rows and cache is not None:
            cache.add(key)
        return self._alarm(rows[0][0]) if rows else None

    def insert_alarm(self, alarm: Alarm, subject: str) -> None:
        """Store a new alarm (the unique index refuses a second active one per subject)."""
        self._none_open.clear()
        self._db.write(
            "INSERT INTO alarms (alarm_id, site, rule, subject, state, raised_us, updated_us,"
            " body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                alarm.alarm_id,
                alarm.site,
                alarm.rule,
                subject,
                alarm.state.value,
                to_us(alarm.raised_at),
                to_us(alarm.raised_at),
                alarm.model_dump_json(),
            ),
        )

    def save_alarm(self, alarm: Alarm, at: datetime) -> None:
        """Write an alarm's new state over its row."""
        self._none_open.clear()
        changed = self._db.write(
            "UPDATE alarms SET state = ?, updated_us = ?, body = ? WHERE alarm_id = ?",
            (alarm.state.value, to_us(at), alarm.model_dump_json(), alarm.alarm_id),
        )
        if changed != 1:
            msg = f"alarm {alarm.alarm_id} is not in the store"
            raise KeyError(msg)

    def import_alarm(self, alarm: Alarm) -> bool:
        """Keep an alarm from another system as history; False if its id is already there.

        Whatever state it ended in: one that was never resolved is stored `closed`
        (`model.as_history`, ValueError if its fields contradict each other), with no
        change-log row and no timers, so no board, phone, round or rules engine sees it as
        open. Its subject is its own (`import:{alarm_id}`), never a live alarm's.
        """
        alarm = as_history(alarm)
        self._none_open.clear()
        ended = alarm.resolved_at or max(
            t for t in (alarm.raised_at, alarm.acknowledged_at, alarm.escalated_at) if t
        )
        return (
            self._db.write(
                "INSERT OR IGNORE INTO alarms (alarm_id, site, rule, subject, state, raised_us,"
                " updated_us, imported, body) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?)",
                (
                    alarm.alarm_id,
                    alarm.site,
                    alarm.rule,
                    f"import:{alarm.alarm_id}",
                    alarm.state.value,
                    to_us(alarm.raised_at),
                    to_us(ended),
                    alarm.model_dump_json(),
                ),
            )
            == 1
        )

    # --- occurrences ----------------------------------------------------------------------

    def add_occurrence(
        self, key: str, alarm_id: str, event_id: str | None, at: datetime, ref: str | None
    ) -> None:
        """Record one trigger of an alarm (reports count these rows)."""
        self._db.write(
            "INSERT INTO alarm_events (occurrence_key, alarm_id, event_id, at_us, ref)"
            " VALUES (?, ?, ?, ?, ?)",
            (key, alarm_id, event_id, to_us(at), ref),
        )

    def has_occurrence(self, key: str, near: datetime | None = None, within: int = 0) -> bool:
        """Whether this trigger (an event id, a dose) was already counted; with `near`, only
        an occurrence at most `within` microseconds from it counts (dose ids may recur)."""
        if near is None:
            rows = self._db.rows("SELECT 1 FROM alarm_events WHERE occurrence_key = ?", (key,))
        else:
            rows = self._db.rows(
                "SELECT 1 FROM alarm_events WHERE occurrence_key = ? AND at_us BETWEEN ? AND ?",
                (key, to_us(near) - within, to_us(near) + within),
            )
        return bool(rows)

    def occurrences(self, alarm_id: str) -> list[tuple[str, str | None, datetime, str | None]]:
        """(occurrence key, event id, event time, ref) of every trigger of an alarm."""
        rows = self._db.rows(
            "SELECT occurrence_key, event_id, at_us, ref FROM alarm_events WHERE alarm_id = ?"
            " ORDER BY at_us, occurrence_key",
            (alarm_id,),
        )
        return [(k, e, from_us(t), r) for k, e, t, r in rows]

    # --- change log -----------------------------------------------------------------------

    def add_change(
        self,
        alarm: Alarm,
        type_: ChangeType,
        reason: ChangeReason,
        at: datetime,
        target: dict[str, Any] | None = None,
    ) -> None:
        """Append to the change log (in the same transaction as the change itself)."""
        self._db.write(
            "INSERT INTO alarm_changes (alarm_id, type, reason, at_us, body, target)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                alarm.alarm_id,
                type_,
                reason,
                to_us(at),
                alarm.model_dump_json(),
                None if target is None else json.dumps(target),
            ),
        )

    def changes_after(self, seq: int, limit: int = 1000) -> list[Change]:
        """Changes numbered after `seq`, oldest first."""
        rows = self._db.rows(
            "SELECT seq, alarm_id, type, reason, at_us, body, target FROM alarm_changes"
            " WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit),
        )
        return [
            Change(s, a, t, r, from_us(at), json.loads(b), None if g is None else json.loads(g))
            for s, a, t, r, at, b, g in rows
        ]

    def last_change_seq(self) -> int:
        """The newest change's number (0 when there is none)."""
        return int(self._db.rows("SELECT COALESCE(MAX(seq), 0) FROM alarm_changes")[0][0])

    def cursor(self, name: str) -> int:
        """How far a named reader (the MQTT publisher) got in the change log."""
        rows = self._db.rows("SELECT seq FROM alarm_cursors WHERE name = ?", (name,))
        return int(rows[0][0]) if rows else 0

    def set_cursor(self, name: str, seq: int) -> None:
        """Remember how far a named reader got."""
        with self._db.transaction():
            self._db.write(
                "INSERT INTO alarm_cursors (name, seq) VALUES (?, ?)"
                " ON CONFLICT(name) DO UPDATE SET seq = excluded.seq",
                (name, seq),
            )
