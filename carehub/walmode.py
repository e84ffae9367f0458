"""Every process that opens the shared SQLite file switches it to WAL, and must survive the
moment another process is recovering the file after a crash.

`PRAGMA journal_mode=WAL` can answer "database is locked" at once, without waiting on the
busy timeout, while another connection runs WAL recovery (a part restarting after kill -9
while the others work on). So the switch is retried for as long as a busy timeout would
wait (docs/handover.md).
"""

from __future__ import annotations

import sqlite3
import time

WAIT_S = 30.0


def enable_wal(conn: sqlite3.Connection, wait_s: float = WAIT_S) -> None:
    """Put the file in WAL mode, retrying while another connection holds it briefly."""
    deadline = time.monotonic() + wait_s
    pause = 0.01
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as err:
            text = str(err)
            if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.5)
            continue
        return
