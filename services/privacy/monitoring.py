"""The per-resident monitoring switch: an admin turns a resident's alarms off, with a reason.

A resident (or their relatives) may decline monitoring, or be away in hospital; their sensors
may still send. While the switch is off the rules engine raises no alarms about them (it
marks what would have alarmed, `alarm_suppressed`), the gateway still stores their events,
and the staff screens say "monitoring off" so nobody trusts a silent board.

The switch lives in the shared SQLite file (`CAREHUB_DB`) as an append-only history: who,
when, on or off, and why. This module is the admin's side: it writes the switch and reads
its history. The table and the rules engine's view of it (`MonitoringSwitch`) are in
`services.rules.monitoring`, beside their reader.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from carehub.timefmt import from_us, rfc3339, to_us
from services.alarms.store import SCHEMA as ALARM_SCHEMA
from services.rules.monitoring import LATEST, connect

_LOGGER = logging.getLogger(__name__)

MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class MonitoringChange:
    """One flip of the switch: the state it set, by whom, when and why."""

    resident_id: str
    enabled: bool
    at: datetime
    actor: str
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        """As the admin API shows it."""
        return {
            "resident_id": self.resident_id,
            "enabled": self.enabled,
            "at": rfc3339(self.at),
            "by": self.actor,
            "reason": self.reason,
        }


def _change(row: tuple[Any, ...]) -> MonitoringChange:
    resident_id, enabled, at_us, actor, reason = row
    return MonitoringChange(resident_id, bool(enabled), from_us(at_us), actor, reason)


class MonitoringStore:
    """The switch's durable history in the shared SQLite file, written with its audit row."""

    def __init__(self, db: Path | str, site: str) -> None:
        self.path = Path(db)
        self.site = site
        self._conn = connect(self.path)
        self._conn.executescript(ALARM_SCHEMA)  # the audit_log its changes are written to
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    def set(
        self, resident_id: str, enabled: bool, actor: str, reason: str | None, at: datetime
    ) -> MonitoringChange:
        """Flip the switch; the history row and its audit row commit together or not at all.

        A reason is required to switch off: the next person must know why a resident has no
        alarms. The audit row has the documented shape of `audit_log` (docs/alarms.md).
        """
        reason = (reason or "").strip() or None
        if not enabled and reason is None:
            msg = "switching monitoring off needs a reason"
            raise ValueError(msg)
        if reason is not None and len(reason) > MAX_REASON:
            msg = f"the reason is longer than {MAX_REASON} characters"
            raise ValueError(msg)
        detail = json.dumps({"resident_id": resident_id, "reason": reason})
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "INSERT INTO resident_monitoring (site, resident_id, enabled, at_us, actor,"
                    " reason) VALUES (?, ?, ?, ?, ?, ?)",
                    (self.site, resident_id, int(enabled), to_us(at), actor, reason),
                )
                self._conn.execute(
                    "INSERT INTO audit_log (at_us, actor, action, alarm_id, detail)"
                    " VALUES (?, ?, ?, NULL, ?)",
                    (to_us(at), actor, "monitoring_on" if enabled else "monitoring_off", detail),
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        _LOGGER.info("monitoring %s by %s", "on" if enabled else "off", actor)
        return MonitoringChange(resident_id, enabled, at, actor, reason)

    def states(self) -> dict[str, MonitoringChange]:
        """The last change of every resident whose switch was ever touched."""
        with self._lock:
            rows = self._conn.execute(LATEST, (self.site,)).fetchall()
        return {row[0]: _change(row) for row in rows}

    def history(self, resident_id: str) -> list[MonitoringChange]:
        """Every change of one resident's switch, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT resident_id, enabled, at_us, actor, reason FROM resident_monitoring"
                " WHERE site = ? AND resident_id = ? ORDER BY id",
                (self.site, resident_id),
            ).fetchall()
        return [_change(r) for r in rows]
