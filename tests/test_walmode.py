"""enable_wal waits out a connection that holds the file, and still fails on other errors;
begin_immediate polls for the write lock and leaves the busy timeout as it found it."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from carehub.walmode import BUSY_TIMEOUT_MS, begin_immediate, enable_wal


def test_wal_is_switched_on_once_another_connection_lets_go(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")  # as a part recovering the file after a crash would
    opener = sqlite3.connect(db, isolation_level=None, timeout=0)
    released = threading.Timer(0.3, lambda: holder.execute("COMMIT"))
    released.start()
    try:
        enable_wal(opener, wait_s=10)
        assert opener.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        released.join()
        opener.close()
        holder.close()


def test_a_lock_that_outlasts_the_wait_is_an_error(tmp_path: Path) -> None:
    db = tmp_path / "x.db"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    opener = sqlite3.connect(db, isolation_level=None, timeout=0)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            enable_wal(opener, wait_s=0.2)
    finally:
        opener.close()
        holder.execute("COMMIT")
        holder.close()


def _wal(db: Path, **kwargs: object) -> sqlite3.Connection:
    conn = sqlite3.connect(db, isolation_level=None, check_same_thread=False, **kwargs)  # type: ignore[arg-type]
    enable_wal(conn)
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    return conn


def test_begin_immediate_takes_the_write_lock_once_another_writer_commits(tmp_path: Path) -> None:
    """The polling BEGIN waits for a writer that holds the lock, then takes it, and leaves
    the connection's busy timeout as it was."""
    db = tmp_path / "x.db"
    holder, waiter = _wal(db), _wal(db)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    released = threading.Timer(0.3, lambda: holder.execute("COMMIT"))
    released.start()
    try:
        begin_immediate(waiter, wait_s=10)
        assert waiter.in_transaction
        # it began after the holder's commit: it sees the row and may write
        assert waiter.execute("SELECT count(*) FROM t").fetchone()[0] == 1
        waiter.execute("INSERT INTO t VALUES (2)")
        waiter.execute("COMMIT")
        assert waiter.execute("PRAGMA busy_timeout").fetchone()[0] == BUSY_TIMEOUT_MS
    finally:
        released.join()
        waiter.close()
        holder.close()


def test_begin_immediate_gives_up_after_its_wait_and_restores_the_busy_timeout(
    tmp_path: Path,
) -> None:
    db = tmp_path / "x.db"
    holder, waiter = _wal(db), _wal(db)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            begin_immediate(waiter, wait_s=0.2)
        assert not waiter.in_transaction
        assert waiter.execute("PRAGMA busy_timeout").fetchone()[0] == BUSY_TIMEOUT_MS
    finally:
        holder.execute("COMMIT")
        waiter.close()
        holder.close()
