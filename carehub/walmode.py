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


def _while_locked(
    conn: sqlite3.Connection, sql: str, wait_s: float, pause: float, most: float, grow: float
) -> None:
    """Run `sql`, again and again while SQLite answers "locked" or "busy", for up to
    `wait_s`, sleeping `pause` (growing by `grow` up to `most`) between tries."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            conn.execute(sql)
        except sqlite3.OperationalError as err:
            text = str(err)
            if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                raise
            time.sleep(pause)
            pause = min(pause * grow, most)
            continue
        return


def enable_wal(conn: sqlite3.Connection, wait_s: float = WAIT_S) -> None:
    """Put the file in WAL mode, retrying while another connection holds it briefly."""
    _while_locked(conn, "PRAGMA journal_mode=WAL", wait_s, pause=0.01, most=0.5, grow=2)


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
        _while_locked(conn, "BEGIN IMMEDIATE", wait_s, pause=0.0002, most=0.002, grow=1.5)
    finally:
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
