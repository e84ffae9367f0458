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


BUSY_TIMEOUT_MS = 30_000
"""The busy timeout every CareHub connection sets (`PRAGMA busy_timeout`)."""


def begin_immediate(conn: sqlite3.Connection, wait_s: float = WAIT_S) -> None:
    """`BEGIN IMMEDIATE`, polling for the write lock at most 2 ms apart for up to `wait_s`.

    SQLite's own busy handler sleeps in growing steps (1, 2, 5 … 100 ms). On a file several
    writers share (gateway, rules engine, notifier, web app), a waiter that slept 100 ms
    wakes to find the lock taken again: at 3,000 msg/s the gateway waited up to 1.55 s and a
    fall's alarm and phone notice waited behind that (docs/performance.md). Polling often
    costs a few microseconds a try and gets the lock within ~2 ms of its release.
    """
    conn.execute("PRAGMA busy_timeout=0")
    try:
        deadline = time.monotonic() + wait_s
        pause = 0.0002
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as err:
                text = str(err)
                if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                    raise
                time.sleep(pause)
                pause = min(pause * 1.5, 0.002)
                continue
            return
    finally:
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
