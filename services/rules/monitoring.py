"""The per-resident monitoring switch as the rules engine reads it, and the table it lives in.

An admin may switch a resident's alarms off, with a reason (`services.privacy.monitoring`
writes the switch and its history; `docs/security.md`). The switch lives in the shared
SQLite file (`CAREHUB_DB`) as an append-only history, `resident_monitoring`. The rules
engine may run in another process than the web app, so it reads the file (`MonitoringSwitch`),
looking again at most every `CACHE_S` seconds.

The table and the engine's view of it live here, beside their reader, so the rules package
needs nothing from the privacy package, which sits above it (its self-test waits for the
alarm the engine raises).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from carehub.private import private_db
from carehub.walmode import enable_wal

_LOGGER = logging.getLogger(__name__)

CACHE_S = 1.0
"""How stale the rules engine's view of the switch may be, in real seconds."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS resident_monitoring (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    site TEXT NOT NULL,
    resident_id TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    at_us INTEGER NOT NULL,
    actor TEXT NOT NULL,
    reason TEXT
);
CREATE INDEX IF NOT EXISTS resident_monitoring_resident
    ON resident_monitoring (site, resident_id, id);
CREATE TRIGGER IF NOT EXISTS resident_monitoring_no_update BEFORE UPDATE ON resident_monitoring
    BEGIN SELECT RAISE(ABORT, 'resident_monitoring is append-only'); END;
CREATE TRIGGER IF NOT EXISTS resident_monitoring_no_delete BEFORE DELETE ON resident_monitoring
    BEGIN SELECT RAISE(ABORT, 'resident_monitoring is append-only'); END;
"""

LATEST = (
    "SELECT resident_id, enabled, at_us, actor, reason FROM resident_monitoring"
    " WHERE id IN (SELECT MAX(id) FROM resident_monitoring WHERE site = ? GROUP BY resident_id)"
)
"""The last change of every resident of a site whose switch was ever touched."""


def connect(path: Path) -> sqlite3.Connection:
    """A connection to the shared file, with the switch's table made if it is new."""
    private_db(path)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    enable_wal(conn)
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.executescript(SCHEMA)
    return conn


class MonitoringSwitch:
    """The rules engine's view: `switch(resident_id)` is True unless switched off.

    Looks at the file at most every `cache_s` (one indexed MAX(id)), and reloads only when the
    history grew, so a switch flipped in the web app's process counts within `cache_s`. When
    the file cannot be read it keeps what it knew: an unreadable switch must not silence
    alarms.
    """

    def __init__(
        self,
        db: Path | str,
        site: str,
        cache_s: float = CACHE_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.site = site
        self.cache_s = cache_s
        self._monotonic = monotonic
        self._conn = connect(Path(db))
        self._lock = threading.Lock()
        self._checked = float("-inf")
        self._version = -1
        self._off: frozenset[str] = frozenset()

    def __call__(self, resident_id: str) -> bool:
        """Whether alarms about this resident should be raised."""
        with self._lock:
            now = self._monotonic()
            if now - self._checked >= self.cache_s:
                self._checked = now
                self._refresh()
            return resident_id not in self._off

    def _refresh(self) -> None:
        try:
            (version,) = self._conn.execute(
                "SELECT COALESCE(MAX(id), 0) FROM resident_monitoring"
            ).fetchone()
            if version == self._version:
                return
            rows = self._conn.execute(LATEST, (self.site,)).fetchall()
        except sqlite3.Error:
            _LOGGER.warning("monitoring switch unreadable; keeping the last known state")
            return
        self._version = version
        self._off = frozenset(r[0] for r in rows if not r[1])

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()
