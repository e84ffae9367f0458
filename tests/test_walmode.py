"""enable_wal waits out a connection that holds the file, and still fails on other errors."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from carehub.walmode import enable_wal


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
