"""The one SQLite connection and lock the alarm store's repositories share.

One connection, so every repository's writes join the same transaction: an alarm, its change
row, its audit row and its timers commit together or not at all. Writers take
`BEGIN IMMEDIATE`, so read-modify-write of one alarm is serialised across threads (the lock)
and processes (SQLite's write lock).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from carehub.private import private_db
from carehub.walmode import begin_immediate, enable_wal


class StoreDb:
    """The shared connection: transactions, savepoints, reads and (transactional) writes."""

    def __init__(self, path: Path | str, schema: str) -> None:
        self.path = Path(path)
        private_db(self.path)
        self._conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=30
        )
        enable_wal(self._conn)
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self._conn.executescript(schema)
        self._lock = threading.RLock()
        self._depth = 0
        self._savepoints = 0
        self.rollbacks = 0
        """Rollbacks so far (a transaction's or a savepoint's)."""
        self.foreign_commits = 0
        """Transactions that began after another connection (the web app, a second process)
        had committed to the file since our previous one."""
        self._data_version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        self._owner: int | None = None
        """The thread of the open transaction."""

    def close(self) -> None:
        """Close the connection (an open transaction is rolled back by SQLite)."""
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic, durable unit; nested uses join the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            begin_immediate(self._conn)
            # holding the write lock now: nobody else commits until we are done, so what a
            # repository cached stays true for this whole transaction if it was true at BEGIN
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
            if version != self._data_version:
                self._data_version = version
                self.foreign_commits += 1
            self._depth = 1
            self._owner = threading.get_ident()
            try:
                yield
            except BaseException:
                self.rollbacks += 1
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")
            finally:
                self._depth = 0
                self._owner = None

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Inside a transaction: undo only this part if it fails (one bad event, not a batch)."""
        with self._lock:
            # named by nesting depth, not by a serial: a new name per event made new SQL text
            # per event, which churned sqlite3's statement cache (every hot query prepared
            # again); SQLite resolves a repeated name to the innermost savepoint
            self._savepoints += 1
            name = f"sp{self._savepoints}"
            try:
                self._conn.execute(f"SAVEPOINT {name}")
                try:
                    yield
                except BaseException:
                    self.rollbacks += 1
                    self._conn.execute(f"ROLLBACK TO {name}")
                    self._conn.execute(f"RELEASE {name}")
                    raise
                else:
                    self._conn.execute(f"RELEASE {name}")
            finally:
                self._savepoints -= 1

    @property
    def generation(self) -> tuple[int, int] | None:
        """What a repository may cache what it read or wrote under: it changes when a rollback
        undoes writes or another connection committed. None outside a transaction (another
        connection may commit at any moment), and for any thread but the transaction's:
        read the file then."""
        if not self._depth or self._owner != threading.get_ident():
            return None
        return (self.rollbacks, self.foreign_commits)

    def rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Every row a query answers."""
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    def write(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        """Run a write inside the open transaction; answers the rows it changed."""
        with self._lock:
            if not self._depth:
                msg = "store writes belong inside store.transaction()"
                raise RuntimeError(msg)
            return self._conn.execute(sql, args).rowcount


class Repository:
    """Base of the alarm store's per-aggregate repositories: each works over the shared db."""

    def __init__(self, db: StoreDb) -> None:
        self._db = db
