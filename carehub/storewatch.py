"""Watches a part's commits, so its heartbeat can say when the store stops answering.

SQLite waits up to its busy timeout for a lock and a full disk fails every write; either way
the staff screen must show that the hub is degraded within seconds, not after the wait.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

SLOW_AFTER_S = 5.0
"""A commit this old is reported: healthy commits take milliseconds."""


class StoreWatch:
    """Wrap each commit in `commit()`; `state()` answers 'ok' or what is wrong."""

    def __init__(self, slow_after_s: float = SLOW_AFTER_S) -> None:
        self.slow_after_s = slow_after_s
        self._lock = threading.Lock()
        self._started: float | None = None
        self._error: str | None = None
        self.failures = 0

    @contextmanager
    def commit(self) -> Iterator[None]:
        """Time one commit and remember whether it failed."""
        with self._lock:
            self._started = time.monotonic()
        try:
            yield
        except Exception as err:
            with self._lock:
                self._error = f"{type(err).__name__}: {err}"[:200]
                self.failures += 1
            raise
        else:
            with self._lock:
                self._error = None
        finally:
            with self._lock:
                self._started = None

    def state(self) -> str:
        """'ok', 'store not answering for N s', or 'store failing: <error>'."""
        with self._lock:
            started, error = self._started, self._error
        if started is not None and time.monotonic() - started > self.slow_after_s:
            return f"store not answering for {time.monotonic() - started:.0f} s"
        if error is not None:
            return f"store failing: {error}"
        return "ok"
