"""The hand-over log: stored canonical events waiting for the rules engine, in the SQLite file.

The gateway appends one row per event in the transaction that stores the event; the rules
engine reads rows by (priority desc, seq) and deletes the ones it handled in the transaction
that writes their alarms. A row therefore exists exactly while its event is stored and not yet
handled, whichever process dies when: no broker queue sits between the parts (docs/handover.md).
This module is both ends' shared contract: the table, the priorities and the queries.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from carehub.events import CanonicalEvent, EventType
from carehub.timefmt import from_us, to_us

Sql = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]
"""Runs one statement on the caller's connection (inside the caller's transaction)."""

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS handover (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    priority INTEGER NOT NULL,
    device_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event TEXT NOT NULL,
    stored_us INTEGER NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS handover_order ON handover (priority DESC, seq)",
    "CREATE INDEX IF NOT EXISTS handover_stored ON handover (stored_us)",
)

URGENT = 2
"""Falls, faults and self-tests: an alarm at once, and nothing else of theirs to order."""
STATEFUL = 1
"""Dose and diaper events: alarm-worthy, and ordered among themselves (a `taken` cancels a
`dose_due`'s timer, a dry reading follows a wet one), so a whole channel shares one class."""
ROUTINE = 0
"""Heartbeats: they feed silence supervision and battery, which can wait a batch or two."""

PRIORITY: dict[EventType, int] = {
    EventType.FALL: URGENT,
    EventType.FALL_CLEARED: URGENT,
    EventType.FAULT: URGENT,
    EventType.SELF_TEST: URGENT,
    EventType.SATURATION: STATEFUL,
    EventType.DETACHED: STATEFUL,
    EventType.ATTACHED: STATEFUL,
    EventType.DOSE_DUE: STATEFUL,
    EventType.DISPENSED: STATEFUL,
    EventType.TAKEN: STATEFUL,
    EventType.MISSED: STATEFUL,
    EventType.HEARTBEAT: ROUTINE,
}
"""By event type only, so every event of one device and channel has one priority and
their order (by seq) is kept; a type not listed is urgent (better early than late)."""

INSERT = (
    "INSERT INTO handover (priority, device_id, event_id, event, stored_us) VALUES (?, ?, ?, ?, ?)"
)


def priority_of(event: CanonicalEvent) -> int:
    """The event's class: higher is handed over first."""
    return PRIORITY.get(event.type, URGENT)


def row(event: CanonicalEvent, stored_at: datetime) -> tuple[Any, ...]:
    """The INSERT parameters for one event."""
    return (
        priority_of(event),
        event.device_id,
        event.event_id,
        event.model_dump_json(),
        to_us(stored_at),
    )


def create(sql: Sql) -> None:
    """Create the table if it is not there (both ends do; the statements are idempotent)."""
    for statement in SCHEMA:
        sql(statement, ())


def append(sql: Sql, events: Iterable[CanonicalEvent], stored_at: datetime) -> int:
    """Append rows inside the caller's transaction; answers how many."""
    n = 0
    for event in events:
        sql(INSERT, row(event, stored_at))
        n += 1
    return n


@dataclass(frozen=True, slots=True)
class Row:
    """One event waiting for the rules engine."""

    seq: int
    priority: int
    event_json: str
    stored_at: datetime

    def event(self) -> CanonicalEvent:
        """The canonical event (raises pydantic's ValidationError if the row is damaged)."""
        return CanonicalEvent.model_validate_json(self.event_json)


def read(sql: Sql, limit: int) -> list[Row]:
    """The next `limit` rows: urgent first, then in the order they were stored."""
    rows = sql(
        "SELECT seq, priority, event, stored_us FROM handover ORDER BY priority DESC, seq LIMIT ?",
        (limit,),
    )
    return [Row(r[0], r[1], r[2], from_us(r[3])) for r in rows]


def delete(sql: Sql, seqs: Sequence[int]) -> None:
    """Delete handled rows inside the caller's transaction."""
    for start in range(0, len(seqs), 500):
        chunk = seqs[start : start + 500]
        sql(f"DELETE FROM handover WHERE seq IN ({','.join('?' * len(chunk))})", chunk)


@dataclass(frozen=True, slots=True)
class Backlog:
    """How much waits for the rules engine, and since when."""

    rows: int
    oldest: datetime | None

    def age_s(self, now: datetime) -> float:
        """Seconds the oldest row has waited (0 when none waits)."""
        return 0.0 if self.oldest is None else max(0.0, (now - self.oldest).total_seconds())

    def metrics(self, now: datetime) -> dict[str, float]:
        """The /metrics gauges."""
        return {
            "carehub_handover_backlog_rows": float(self.rows),
            "carehub_handover_oldest_age_seconds": round(self.age_s(now), 3),
        }


def backlog(sql: Sql) -> Backlog:
    """Rows waiting and the stored time of the oldest (cheap: both from indexes)."""
    ((count, oldest),) = sql("SELECT COUNT(*), MIN(stored_us) FROM handover", ())
    return Backlog(int(count), None if oldest is None else from_us(int(oldest)))
