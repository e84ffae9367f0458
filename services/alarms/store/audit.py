"""The audit log: who did what, when (alarm actions, monitoring switches, reads of health
data), kept forever.

The table refuses updates and deletes (triggers), so not even a bug here can rewrite it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from carehub.timefmt import from_us, to_us
from services.alarms.store.db import Repository

SCHEMA = """
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
"""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One thing a person did, kept forever."""

    id: int
    at: datetime
    actor: str
    action: str
    alarm_id: str | None
    detail: dict[str, Any]


class AuditRepository(Repository):
    """The `audit_log` table."""

    def add_audit(
        self, at: datetime, actor: str, action: str, alarm_id: str | None, detail: dict[str, Any]
    ) -> None:
        """Append what a person did; the table refuses updates and deletes."""
        self._db.write(
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
        rows = self._db.rows(sql + " ORDER BY id", args)
        return [AuditEntry(i, from_us(t), a, c, al, json.loads(d)) for i, t, a, c, al, d in rows]
