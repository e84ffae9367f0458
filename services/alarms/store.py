"""The durable alarm store: SQLite, in the file the gateway also writes (`CAREHUB_DB`).

Everything the rules engine knows lives here, not in memory: open alarms, every occurrence
of a trigger, pending timers, the last state each sensor reported and the event ids already
handled. So a process that dies mid-night restarts from the file and loses nothing, and a
replayed event changes nothing.

`alarm_changes` is an append-only log of every alarm change, numbered by `seq`: the MQTT
publisher and every web-app process read it from their own cursor, which is how a change
made in one process (an acknowledgement in the API) reaches the others.

Writers take `BEGIN IMMEDIATE`, so read-modify-write of one alarm is serialised across
threads (one connection, one lock) and processes (SQLite's write lock).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from carehub.timefmt import from_us, rfc3339, to_us
from services.alarms.model import Alarm, AlarmState

_LOGGER = logging.getLogger(__name__)

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
CREATE TABLE IF NOT EXISTS alarm_seen_events (
    event_id TEXT PRIMARY KEY,
    at_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS alarm_seen_events_at ON alarm_seen_events (at_us);
CREATE TABLE IF NOT EXISTS alarm_sensor_state (
    device_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    ts_us INTEGER NOT NULL,
    PRIMARY KEY (device_id, channel)
);
CREATE TABLE IF NOT EXISTS alarm_cursors (
    name TEXT PRIMARY KEY,
    seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_us INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    alarm_id TEXT,
    detail TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TABLE IF NOT EXISTS alarm_suppressed (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT,
    rule TEXT NOT NULL,
    resident_id TEXT NOT NULL,
    device_id TEXT,
    at_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS alarm_suppressed_resident ON alarm_suppressed (resident_id, at_us);
CREATE TABLE IF NOT EXISTS rule_timers (
    timer_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    due_us INTEGER NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS rule_timers_due ON rule_timers (due_us);
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


@dataclass(frozen=True, slots=True)
class Timer:
    """A pending time-based decision: a dose window, a silence, an escalation, a reminder."""

    timer_id: str
    kind: str
    due: datetime
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One thing a person did, kept forever."""

    id: int
    at: datetime
    actor: str
    action: str
    alarm_id: str | None
    detail: dict[str, Any]


class AlarmStore:
    """Alarms, their occurrences, changes, timers and the audit log in one SQLite file."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.executescript(SCHEMA)
        self._lock = threading.RLock()
        self._depth = 0
        self._savepoints = 0

    def close(self) -> None:
        """Close the connection (an open transaction is rolled back by SQLite)."""
        with self._lock:
            self._conn.close()

    # --- transactions ---------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic, durable unit; nested uses join the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")
            finally:
                self._depth = 0

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside a transaction: undo only this part if it fails (one bad event, not a batch)."""
        with self._lock:
            self._savepoints += 1
            name = f"sp{self._savepoints}"
            self._conn.execute(f"SAVEPOINT {name}")
            try:
                yield
            except BaseException:
                self._conn.execute(f"ROLLBACK TO {name}")
                self._conn.execute(f"RELEASE {name}")
                raise
            else:
                self._conn.execute(f"RELEASE {name}")

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def _exec(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        with self._lock:
            if not self._depth:
                msg = "store writes belong inside store.transaction()"
                raise RuntimeError(msg)
            return self._conn.execute(sql, args).rowcount

    def sql(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One statement on the store's connection, in its open transaction if any: for a
        table of another component that must change atomically with the alarms (the
        hand-over log, docs/handover.md)."""
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    # --- alarms ---------------------------------------------------------------------------

    @staticmethod
    def _alarm(body: str) -> Alarm:
        return Alarm.model_validate_json(body)

    def get(self, alarm_id: str) -> Alarm | None:
        """One alarm by id, or None."""
        rows = self._rows("SELECT body FROM alarms WHERE alarm_id = ?", (alarm_id,))
        return self._alarm(rows[0][0]) if rows else None

    def list_alarms(self, *, active_only: bool, since: datetime | None = None) -> list[Alarm]:
        """Alarms, newest first: the active ones, or all (raised at or after `since`)."""
        sql, args = "SELECT body FROM alarms WHERE 1=1", []
        if active_only:
            sql += " AND state != 'resolved'"
        if since is not None:
            sql += " AND raised_us >= ?"
            args.append(to_us(since))
        sql += " ORDER BY raised_us DESC, alarm_id"
        return [self._alarm(b) for (b,) in self._rows(sql, tuple(args))]

    def raised_between(self, lo: datetime, hi: datetime) -> list[dict[str, Any]]:
        """Alarm JSON of alarms raised in [lo, hi), oldest first: the reports' input."""
        rows = self._rows(
            "SELECT body FROM alarms WHERE raised_us >= ? AND raised_us < ? ORDER BY raised_us",
            (to_us(lo), to_us(hi)),
        )
        return [json.loads(b) for (b,) in rows]

    def counts_by_state(self) -> dict[str, int]:
        """Alarms per state, e.g. for /metrics."""
        rows = self._rows("SELECT state, COUNT(*) FROM alarms GROUP BY state")
        return {str(state): int(n) for state, n in rows}

    def open_alarm(self, site: str, rule: str, subject: str) -> Alarm | None:
        """The one active alarm of a (rule, resident-or-device), if any."""
        rows = self._rows(
            "SELECT body FROM alarms WHERE site = ? AND rule = ? AND subject = ?"
            " AND state != 'resolved'",
            (site, rule, subject),
        )
        return self._alarm(rows[0][0]) if rows else None

    def insert_alarm(self, alarm: Alarm, subject: str) -> None:
        """Store a new alarm (the unique index refuses a second active one per subject)."""
        self._exec(
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
        changed = self._exec(
            "UPDATE alarms SET state = ?, updated_us = ?, body = ? WHERE alarm_id = ?",
            (alarm.state.value, to_us(at), alarm.model_dump_json(), alarm.alarm_id),
        )
        if changed != 1:
            msg = f"alarm {alarm.alarm_id} is not in the store"
            raise KeyError(msg)

    def import_alarm(self, alarm: Alarm) -> bool:
        """Keep a finished alarm from another system as history; False if already there.

        Only resolved alarms: an open one would need a rules engine that knows its sensor.
        """
        if alarm.state is not AlarmState.RESOLVED:
            msg = f"alarm {alarm.alarm_id} is {alarm.state}; only resolved alarms are imported"
            raise ValueError(msg)
        return (
            self._exec(
                "INSERT OR IGNORE INTO alarms (alarm_id, site, rule, subject, state, raised_us,"
                " updated_us, imported, body) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?)",
                (
                    alarm.alarm_id,
                    alarm.site,
                    alarm.rule,
                    f"import:{alarm.alarm_id}",
                    alarm.state.value,
                    to_us(alarm.raised_at),
                    to_us(alarm.resolved_at or alarm.raised_at),
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
        self._exec(
            "INSERT INTO alarm_events (occurrence_key, alarm_id, event_id, at_us, ref)"
            " VALUES (?, ?, ?, ?, ?)",
            (key, alarm_id, event_id, to_us(at), ref),
        )

    def has_occurrence(self, key: str, near: datetime | None = None, within: int = 0) -> bool:
        """Whether this trigger (an event id, a dose) was already counted; with `near`, only
        an occurrence at most `within` microseconds from it counts (dose ids may recur)."""
        if near is None:
            rows = self._rows("SELECT 1 FROM alarm_events WHERE occurrence_key = ?", (key,))
        else:
            rows = self._rows(
                "SELECT 1 FROM alarm_events WHERE occurrence_key = ? AND at_us BETWEEN ? AND ?",
                (key, to_us(near) - within, to_us(near) + within),
            )
        return bool(rows)

    def occurrences(self, alarm_id: str) -> list[tuple[str, str | None, datetime, str | None]]:
        """(occurrence key, event id, event time, ref) of every trigger of an alarm."""
        rows = self._rows(
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
        self._exec(
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
        rows = self._rows(
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
        return int(self._rows("SELECT COALESCE(MAX(seq), 0) FROM alarm_changes")[0][0])

    def cursor(self, name: str) -> int:
        """How far a named reader (the MQTT publisher) got in the change log."""
        rows = self._rows("SELECT seq FROM alarm_cursors WHERE name = ?", (name,))
        return int(rows[0][0]) if rows else 0

    def set_cursor(self, name: str, seq: int) -> None:
        """Remember how far a named reader got."""
        with self.transaction():
            self._exec(
                "INSERT INTO alarm_cursors (name, seq) VALUES (?, ?)"
                " ON CONFLICT(name) DO UPDATE SET seq = excluded.seq",
                (name, seq),
            )

    # --- audit ----------------------------------------------------------------------------

    def add_audit(
        self, at: datetime, actor: str, action: str, alarm_id: str | None, detail: dict[str, Any]
    ) -> None:
        """Append what a person did; the table refuses updates and deletes."""
        self._exec(
            "INSERT INTO audit_log (at_us, actor, action, alarm_id, detail) VALUES (?, ?, ?, ?, ?)",
            (to_us(at), actor, action, alarm_id, json.dumps(detail)),
        )

    def audit_log(self, alarm_id: str | None = None) -> list[AuditEntry]:
        """The audit entries, oldest first, for one alarm or all."""
        sql = "SELECT id, at_us, actor, action, alarm_id, detail FROM audit_log"
        args: tuple[Any, ...] = ()
        if alarm_id is not None:
            sql += " WHERE alarm_id = ?"
            args = (alarm_id,)
        rows = self._rows(sql + " ORDER BY id", args)
        return [AuditEntry(i, from_us(t), a, c, al, json.loads(d)) for i, t, a, c, al, d in rows]

    # --- monitoring switched off ----------------------------------------------------------

    def add_suppressed(
        self, event_id: str | None, rule: str, resident_id: str, device_id: str, at: datetime
    ) -> None:
        """Mark a trigger that raised nothing because the resident's monitoring is off."""
        self._exec(
            "INSERT INTO alarm_suppressed (event_id, rule, resident_id, device_id, at_us)"
            " VALUES (?, ?, ?, ?, ?)",
            (event_id, rule, resident_id, device_id, to_us(at)),
        )

    def suppressed(self, resident_id: str) -> list[dict[str, Any]]:
        """A resident's suppressed triggers, oldest first (for their data export)."""
        rows = self._rows(
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
        with self.transaction():
            return self._exec("DELETE FROM alarm_suppressed WHERE at_us < ?", (to_us(before),))

    # --- timers ---------------------------------------------------------------------------

    def set_timer(self, timer: Timer) -> None:
        """Create or move a timer."""
        self._exec(
            "INSERT INTO rule_timers (timer_id, kind, due_us, data) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(timer_id) DO UPDATE SET kind = excluded.kind,"
            " due_us = excluded.due_us, data = excluded.data",
            (timer.timer_id, timer.kind, to_us(timer.due), json.dumps(timer.data)),
        )

    def delete_timer(self, timer_id: str) -> bool:
        """Cancel a timer; False if there was none."""
        return self._exec("DELETE FROM rule_timers WHERE timer_id = ?", (timer_id,)) == 1

    def get_timer(self, timer_id: str) -> Timer | None:
        """A pending timer by id."""
        rows = self._rows(
            "SELECT timer_id, kind, due_us, data FROM rule_timers WHERE timer_id = ?",
            (timer_id,),
        )
        return self._timer(rows[0]) if rows else None

    @staticmethod
    def _timer(row: tuple[Any, ...]) -> Timer:
        return Timer(row[0], row[1], from_us(row[2]), json.loads(row[3]))

    def due_timers(self, until: datetime, limit: int = 500) -> list[Timer]:
        """Timers due at or before `until`, earliest first."""
        rows = self._rows(
            "SELECT timer_id, kind, due_us, data FROM rule_timers WHERE due_us <= ?"
            " ORDER BY due_us, timer_id LIMIT ?",
            (to_us(until), limit),
        )
        return [self._timer(r) for r in rows]

    def timers(self) -> list[Timer]:
        """Every pending timer, earliest first."""
        rows = self._rows("SELECT timer_id, kind, due_us, data FROM rule_timers ORDER BY due_us")
        return [self._timer(r) for r in rows]

    # --- event bookkeeping ----------------------------------------------------------------

    def mark_seen(self, event_id: str, at: datetime) -> bool:
        """Remember a handled event; False if it was handled before (a replay)."""
        return (
            self._exec(
                "INSERT OR IGNORE INTO alarm_seen_events (event_id, at_us) VALUES (?, ?)",
                (event_id, to_us(at)),
            )
            == 1
        )

    def prune_seen(self, before: datetime) -> int:
        """Forget handled event ids older than `before` (replays that old are not expected)."""
        with self.transaction():
            return self._exec("DELETE FROM alarm_seen_events WHERE at_us < ?", (to_us(before),))

    def channel_ts(self, device_id: str, channel: str) -> datetime | None:
        """Event time of the newest state a device reported on a channel (e.g. saturation)."""
        rows = self._rows(
            "SELECT ts_us FROM alarm_sensor_state WHERE device_id = ? AND channel = ?",
            (device_id, channel),
        )
        return from_us(rows[0][0]) if rows else None

    def advance_channel(self, device_id: str, channel: str, ts: datetime) -> None:
        """Move a channel's newest-state time forward (never back)."""
        self._exec(
            "INSERT INTO alarm_sensor_state (device_id, channel, ts_us) VALUES (?, ?, ?)"
            " ON CONFLICT(device_id, channel) DO UPDATE SET ts_us = MAX(ts_us, excluded.ts_us)",
            (device_id, channel, to_us(ts)),
        )
