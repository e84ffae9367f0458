"""The durable alarm store: SQLite, in the file the gateway also writes (`CAREHUB_DB`).

Everything the rules engine knows lives here, not in memory: open alarms, every occurrence
of a trigger, pending timers, the last state each sensor reported and the event ids already
handled. So a process that dies mid-night restarts from the file and loses nothing, and a
replayed event changes nothing.

`AlarmStore` is the one object the rest of the code uses. Its methods come from one
repository per aggregate, all over one connection and lock (`db.StoreDb`), so the writes
of all of them join one transaction: alarms, occurrences and the change log (`alarms`), the
audit log (`audit`), timers (`timers`), handled and suppressed event ids (`events`) and each
sensor channel's newest state (`channels`).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from services.alarms.store import alarms, audit, channels, events, timers
from services.alarms.store.alarms import AlarmRepository, Change, ChangeReason, ChangeType
from services.alarms.store.audit import AuditEntry, AuditRepository
from services.alarms.store.channels import ChannelRepository
from services.alarms.store.db import StoreDb
from services.alarms.store.events import EventIdRepository
from services.alarms.store.timers import Timer, TimerRepository

__all__ = [
    "SCHEMA",
    "AlarmStore",
    "AuditEntry",
    "Change",
    "ChangeReason",
    "ChangeType",
    "Timer",
]

SCHEMA = alarms.SCHEMA + events.SCHEMA + channels.SCHEMA + audit.SCHEMA + timers.SCHEMA
"""Every table of the store; `CREATE ... IF NOT EXISTS`, so opening an older file adds what
it lacks and changes nothing else."""


class AlarmStore(
    AlarmRepository, AuditRepository, TimerRepository, EventIdRepository, ChannelRepository
):
    """Alarms, their occurrences, changes, timers and the audit log in one SQLite file."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(StoreDb(path, SCHEMA))
        self.path = self._db.path

    def close(self) -> None:
        """Close the connection (an open transaction is rolled back by SQLite)."""
        self._db.close()

    def transaction(self) -> AbstractContextManager[None]:
        """One atomic, durable unit; nested uses join the outer one."""
        return self._db.transaction()

    def savepoint(self) -> AbstractContextManager[None]:
        """Inside a transaction: undo only this part if it fails (one bad event, not a batch)."""
        return self._db.savepoint()

    def sql(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """One statement on the store's connection, in its open transaction if any: for a
        table of another component that must change atomically with the alarms (the
        hand-over log, docs/handover.md)."""
        return self._db.rows(sql, tuple(args))
