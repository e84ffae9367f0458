"""The outbox: every send is a row before it is attempted (docs/notifications.md, "The outbox").

Rows live in the alarm store's SQLite file and are written in the same transaction that
moves the notifier's change-log cursor, so a kill -9 at any moment loses no step: a change
whose rows were not committed is read again, a row not yet sent is sent after the restart.
A row is marked attempted (`attempts` + 1) just before its send and `sent` or `failed` just
after; a row found still `pending` with an attempt at start was in flight when the process
died, so sending it again is a repeat, at most one per crash, and counted (`repeats`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from carehub.timefmt import from_us, rfc3339, to_us
from services.alarms.store import AlarmStore
from services.notify.channel import Notice, Step, Urgency

Status = Literal["pending", "sent", "failed", "cancelled"]

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS notify_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alarm_id TEXT NOT NULL,
    phone_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    step TEXT NOT NULL,
    created_us INTEGER NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    done_us INTEGER,
    error TEXT,
    notice TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS notify_outbox_alarm ON notify_outbox (alarm_id, id)",
    "CREATE INDEX IF NOT EXISTS notify_outbox_created ON notify_outbox (created_us)",
    "CREATE INDEX IF NOT EXISTS notify_outbox_pending ON notify_outbox (status)"
    " WHERE status = 'pending'",
    """CREATE TABLE IF NOT EXISTS notify_fallback (
    alarm_id TEXT PRIMARY KEY,
    due_us INTEGER NOT NULL
)""",
)


SEND_ORDER = {
    Step.FIRST: 0,
    Step.TECHNICAL: 1,
    Step.ESCALATED: 3,
    Step.FALLBACK: 3,
    Step.REMINDER: 4,
    Step.TAKEN: 5,
}
"""The order sends go out in, then oldest first (`Outbox.pending`, and each channel worker's
queue): a new alarm's first notice to its ward never waits behind the escalations and
reminders of alarms nobody has taken yet (on a bad night, tens of open alarms escalated to
every phone are hundreds of sends); a technical alarm about CareHub itself comes right after.
Rank 2 is the workers' link check."""
_ORDER_SQL = (
    "CASE step "
    + " ".join(f"WHEN '{step.value}' THEN {rank}" for step, rank in SEND_ORDER.items())
    + " END"
)


@dataclass(frozen=True, slots=True)
class Row:
    """One send: to one phone on one channel."""

    id: int
    alarm_id: str
    phone_id: str
    channel: str
    address: str
    step: Step
    created: datetime
    status: Status
    attempts: int
    done: datetime | None
    error: str | None
    notice: Notice

    def delivery(self, phone_name: str | None = None) -> dict[str, Any]:
        """The delivery record of `GET /api/alarms/{id}`."""
        return {
            "phone": self.phone_id,
            "phone_name": phone_name or self.phone_id,
            "channel": self.channel,
            "step": self.step.value,
            "at": rfc3339(self.created),
            "done_at": None if self.done is None else rfc3339(self.done),
            "status": self.status,
            "error": self.error,
            "title": self.notice.title,
            "body": self.notice.body,
        }


def _notice_json(notice: Notice) -> str:
    return json.dumps(
        {
            "alarm_id": notice.alarm_id,
            "step": notice.step.value,
            "urgency": notice.urgency.value,
            "title": notice.title,
            "body": notice.body,
            "click_url": notice.click_url,
            "ack_url": notice.ack_url,
            "tags": list(notice.tags),
        }
    )


def _notice(text: str) -> Notice:
    d = json.loads(text)
    return Notice(
        alarm_id=d["alarm_id"],
        step=Step(d["step"]),
        urgency=Urgency(d["urgency"]),
        title=d["title"],
        body=d["body"],
        click_url=d["click_url"],
        ack_url=d["ack_url"],
        tags=tuple(d["tags"]),
    )


_COLUMNS = (
    "id, alarm_id, phone_id, channel, address, step, created_us, status, attempts, done_us,"
    " error, notice"
)


def _row(r: tuple[Any, ...]) -> Row:
    return Row(
        id=int(r[0]),
        alarm_id=r[1],
        phone_id=r[2],
        channel=r[3],
        address=r[4],
        step=Step(r[5]),
        created=from_us(r[6]),
        status=r[7],
        attempts=int(r[8]),
        done=None if r[9] is None else from_us(r[9]),
        error=r[10],
        notice=_notice(r[11]),
    )


class Outbox:
    """The `notify_outbox` and `notify_fallback` tables, over the alarm store's connection
    (so they join its transactions)."""

    def __init__(self, store: AlarmStore) -> None:
        self.store = store
        for statement in SCHEMA:
            store.sql(statement)

    def add(
        self,
        alarm_id: str,
        phone_id: str,
        channel: str,
        address: str,
        notice: Notice,
        at: datetime,
    ) -> int:
        """Record a send as pending (inside the caller's transaction); answers its id."""
        rows = self.store.sql(
            "INSERT INTO notify_outbox (alarm_id, phone_id, channel, address, step, created_us,"
            " status, notice) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?) RETURNING id",
            (
                alarm_id,
                phone_id,
                channel,
                address,
                notice.step.value,
                to_us(at),
                _notice_json(notice),
            ),
        )
        return int(rows[0][0])

    def begin(self, row_id: int) -> Row | None:
        """Mark a pending row attempted, just before its send; None when it is no longer
        pending (sent by an earlier process, or cancelled by an acknowledgement)."""
        with self.store.transaction():
            rows = self.store.sql(
                f"UPDATE notify_outbox SET attempts = attempts + 1 WHERE id = ?"
                f" AND status = 'pending' RETURNING {_COLUMNS}",
                (row_id,),
            )
        return _row(rows[0]) if rows else None

    def finish(self, row_id: int, status: Status, at: datetime, error: str | None = None) -> None:
        """Record how a send went."""
        with self.store.transaction():
            self.store.sql(
                "UPDATE notify_outbox SET status = ?, done_us = ?, error = ? WHERE id = ?",
                (status, to_us(at), error, row_id),
            )

    def cancel_alarm(self, alarm_id: str, at: datetime) -> int:
        """Someone took the alarm: its alerts not yet attempted are not sent (inside the
        caller's transaction); answers how many."""
        rows = self.store.sql(
            "UPDATE notify_outbox SET status = 'cancelled', done_us = ? WHERE alarm_id = ?"
            " AND status = 'pending' AND attempts = 0 AND step != 'taken' RETURNING id",
            (to_us(at), alarm_id),
        )
        return len(rows)

    def pending(self) -> list[Row]:
        """Rows not yet sent, in `SEND_ORDER`, so a full queue takes the most urgent first."""
        rows = self.store.sql(
            f"SELECT {_COLUMNS} FROM notify_outbox WHERE status = 'pending'"
            f" ORDER BY {_ORDER_SQL}, id"
        )
        return [_row(r) for r in rows]

    def for_alarm(self, alarm_id: str) -> list[Row]:
        """Every send of one alarm, in order."""
        rows = self.store.sql(
            f"SELECT {_COLUMNS} FROM notify_outbox WHERE alarm_id = ? ORDER BY id",
            (alarm_id,),
        )
        return [_row(r) for r in rows]

    def for_phone(self, phone_id: str, limit: int = 200) -> list[Row]:
        """What one phone was sent, newest first (the demo's phones page)."""
        rows = self.store.sql(
            f"SELECT {_COLUMNS} FROM notify_outbox WHERE phone_id = ? ORDER BY id DESC LIMIT ?",
            (phone_id, limit),
        )
        return [_row(r) for r in rows]

    def mark(self) -> tuple[int, frozenset[int]]:
        """Where the outbox stands: its last row id and the rows still pending. A row only
        ever leaves `pending`, so two marks differ whenever a row was added or finished."""
        last = self.store.sql("SELECT COALESCE(MAX(id), 0) FROM notify_outbox")[0][0]
        pending = self.store.sql("SELECT id FROM notify_outbox WHERE status = 'pending'")
        return int(last), frozenset(int(r[0]) for r in pending)

    def changed_since(
        self, mark: tuple[int, frozenset[int]]
    ) -> tuple[tuple[int, frozenset[int]], list[str]]:
        """The new mark, and the alarms whose rows were added or finished since `mark`."""
        new = self.mark()
        gone = sorted(mark[1] - new[1])
        if new[0] == mark[0] and not gone:
            return new, []
        rows = self.store.sql(
            "SELECT DISTINCT alarm_id FROM notify_outbox WHERE id > ?"
            f" OR id IN ({','.join('?' * len(gone))}) ORDER BY alarm_id",
            (mark[0], *gone),
        )
        return new, [str(r[0]) for r in rows]

    def between(self, lo: datetime, hi: datetime) -> list[Row]:
        """Every send recorded in [lo, hi), oldest first (the utilisation report)."""
        rows = self.store.sql(
            f"SELECT {_COLUMNS} FROM notify_outbox WHERE created_us >= ? AND created_us < ?"
            " ORDER BY id",
            (to_us(lo), to_us(hi)),
        )
        return [_row(r) for r in rows]

    def told(self, alarm_id: str) -> list[str]:
        """Phones an alert of this alarm was recorded for, in first-told order."""
        rows = self.store.sql(
            "SELECT phone_id, MIN(id) FROM notify_outbox WHERE alarm_id = ? AND step != 'taken'"
            " GROUP BY phone_id ORDER BY MIN(id)",
            (alarm_id,),
        )
        return [str(r[0]) for r in rows]

    def repeats(self) -> int:
        """Sends attempted more than once (each a crash mid-send)."""
        rows = self.store.sql(
            "SELECT COALESCE(SUM(attempts - 1), 0) FROM notify_outbox WHERE attempts > 1"
        )
        return int(rows[0][0])

    # --- the fallback's due time ----------------------------------------------------------

    def set_fallback(self, alarm_id: str, due: datetime) -> None:
        """When the fallback phones hear of this alarm (inside the caller's transaction)."""
        self.store.sql(
            "INSERT OR REPLACE INTO notify_fallback (alarm_id, due_us) VALUES (?, ?)",
            (alarm_id, to_us(due)),
        )

    def drop_fallback(self, alarm_id: str) -> None:
        """No fallback for this alarm any more (inside the caller's transaction)."""
        self.store.sql("DELETE FROM notify_fallback WHERE alarm_id = ?", (alarm_id,))

    def due_fallbacks(self, now: datetime) -> list[str]:
        """Alarms whose fallback is due."""
        rows = self.store.sql(
            "SELECT alarm_id FROM notify_fallback WHERE due_us <= ? ORDER BY due_us", (to_us(now),)
        )
        return [str(r[0]) for r in rows]

    def next_fallback(self) -> datetime | None:
        """The earliest fallback due time, if any."""
        rows = self.store.sql("SELECT MIN(due_us) FROM notify_fallback")
        return None if rows[0][0] is None else from_us(rows[0][0])
