"""The gateway's side of the hand-over log: who writes it, and the watch on its backlog.

The event store writes the rows (`SqliteEventStore(handover=True)` in the transaction that
stores the events; `InfluxEventStore(handover_db=...)` in the SQLite file before its InfluxDB
write). Here is what the gateway adds: events that are not stored (an admin's self-test) are
handed over through `HandsOver`, and `HandoverWatch` raises the technical alarm
`handover_stalled` when the oldest row waits longer than `stall_s`.

That alarm comes from the gateway, as a provisional alarm on
`{prefix}/{site}/provisional/store/handover` (shown on the board like `store_failing`), not
from the rules engine: the rules engine is the part most likely to be the one that is stuck,
and an alarm that needs the stuck part would never come (docs/handover.md).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from carehub import handover as handover_log
from carehub.events import CanonicalEvent
from carehub.private import private_db
from carehub.timefmt import rfc3339
from carehub.topics import SiteTopics
from carehub.walmode import enable_wal
from gateway.emergency import Publish

_LOGGER = logging.getLogger(__name__)

STALL_AFTER_S = 30.0
"""The oldest unhandled row older than this raises `handover_stalled` (a batch takes ms)."""
CHECK_EVERY_S = 1.0


@runtime_checkable
class HandsOver(Protocol):
    """A store that hands events over to the rules engine with its next flush."""

    def hand_over(self, events: Sequence[CanonicalEvent]) -> None:
        """Buffer hand-over rows for events the pipeline did not store."""
        ...


class HandoverWatch:
    """Reads the backlog of the hand-over log (for /metrics) and raises or clears the
    provisional technical alarm when it stalls. Its own read connection: WAL readers never
    wait for writers, so the watch answers while a commit hangs."""

    def __init__(
        self, db: Path | str, site: str, prefix: str = "carehub", stall_s: float = STALL_AFTER_S
    ) -> None:
        self.site = site
        self.stall_s = stall_s
        self.topic = SiteTopics(prefix, site).provisional_handover()
        private_db(Path(db))
        self._conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False, timeout=5)
        enable_wal(self._conn)
        self._lock = threading.Lock()
        handover_log.create(self._sql)
        self.backlog = handover_log.Backlog(0, None)
        self.stalls = 0
        """Times the alarm was raised since start."""
        self._alarm: dict[str, Any] | None = None
        self._clean = False
        """Whether a retained alarm a previous run may have left was cleared."""

    def _sql(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def check(self, publish: Publish, connected: bool, now: datetime | None = None) -> bool:
        """Read the backlog; raise, repeat or clear the alarm. Answers whether it stands."""
        now = now or datetime.now(UTC)
        try:
            self.backlog = handover_log.backlog(self._sql)
        except sqlite3.Error as err:
            _LOGGER.warning("hand-over backlog unreadable: %s", err)
            return self._alarm is not None
        age = self.backlog.age_s(now)
        if age > self.stall_s:
            if self._alarm is None:
                self.stalls += 1
                _LOGGER.error(
                    "technical alarm: %s events wait for the rules engine, the oldest %.0f s",
                    self.backlog.rows,
                    age,
                )
                self._alarm = {
                    "alarm_id": "provisional-handover",
                    "site": self.site,
                    "rule": "handover_stalled",
                    "kind": "technical",
                    "priority": "high",
                    "state": "raised",
                    "provisional": True,
                    "resident_id": None,
                    "room": None,
                    "device_id": None,
                    "raised_at": rfc3339(now),
                    "last_seen_at": rfc3339(now),
                    "count": 1,
                    "reason": (
                        f"{self.backlog.rows} events wait for the rules engine,"
                        f" the oldest {age:.0f} s"
                    ),
                }
                publish(self.topic, json.dumps(self._alarm).encode(), True)
                self._clean = True
        elif self._alarm is not None or not self._clean:
            if self._alarm is not None:
                _LOGGER.warning("the rules engine takes events again; hand-over alarm cleared")
            self._alarm = None
            publish(self.topic, b"", True)
            self._clean = connected
        return self._alarm is not None

    def metrics(self, now: datetime | None = None) -> dict[str, float]:
        """Backlog rows, the oldest row's age and the stalls, as of the last check."""
        return {
            **self.backlog.metrics(now or datetime.now(UTC)),
            "carehub_handover_stalls_total": float(self.stalls),
        }

    def close(self) -> None:
        """Close the read connection."""
        with self._lock:
            self._conn.close()
