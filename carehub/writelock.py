"""One writer at a time per SQLite file within a process, handed over in turn and at once.

In one process (`carehub run all`) the gateway's store and the alarm store write one file
through two connections. SQLite makes the second writer sleep in its busy handler, in growing
steps of up to 100 ms, while the first holds the write lock, and the holder often takes it
again before the sleeper wakes: waits of up to 1.55 s were measured at 3,000 msg/s
(docs/performance.md), and a fall's commit waited behind them. A first-come, first-served
lock per file, taken before `BEGIN IMMEDIATE` and released after the commit or rollback,
queues this process's writers instead and wakes the next at once. Writers in other processes
(the three-part layout, a CLI command) still meet SQLite's busy timeout.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path


class FairLock:
    """A ticket lock: waiters get it in the order they asked. Not reentrant; may be released
    by another thread than the one that took it."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._next = 0
        self._serving = 0

    def acquire(self) -> None:
        """Wait for our turn."""
        with self._cond:
            ticket = self._next
            self._next += 1
            while ticket != self._serving:
                self._cond.wait()

    def release(self) -> None:
        """Hand the lock to the next in line."""
        with self._cond:
            self._serving += 1
            self._cond.notify_all()

    @property
    def waiting(self) -> int:
        """Holders and waiters now (0 when free)."""
        with self._cond:
            return self._next - self._serving


_LOCKS: dict[str, FairLock] = {}
_GUARD = threading.Lock()


def writer_lock(path: Path | str) -> FairLock:
    """The process's writer lock of one SQLite file (by its real path)."""
    key = os.path.realpath(path)
    with _GUARD:
        lock = _LOCKS.get(key)
        if lock is None:
            lock = _LOCKS[key] = FairLock()
        return lock
