"""A technical alarm before the disk fills (docs/security.md, "Disk space").

A full disk stops every commit: no event, no alarm, no audit row can be written. So the
warning cannot go through the store: the gateway announces it on the same provisional path
as a store that stops answering (`store_failing`, gateway/emergency.py), published retained
over MQTT straight to the board, and clears it when there is room again.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

CHECK_EVERY_S = 10.0


class DiskWatch:
    """Free space on the file system that holds `path`, looked at every `CHECK_EVERY_S`."""

    def __init__(self, path: Path, min_free_bytes: int, check_every_s: float = CHECK_EVERY_S):
        self.path = path
        self.min_free_bytes = min_free_bytes
        self.check_every_s = check_every_s
        self._lock = threading.Lock()
        self._next = 0.0
        self._state = "ok"
        self.free_bytes: int | None = None

    def state(self) -> str:
        """'ok', or what is wrong: `disk_low: N MB free ...`."""
        now = time.monotonic()
        with self._lock:
            if now < self._next:
                return self._state
            self._next = now + self.check_every_s
            folder = self.path if self.path.is_dir() else self.path.parent
            try:
                st = os.statvfs(folder)
            except OSError as err:
                self._state = f"disk_unreadable: {err.strerror}"
                return self._state
            self.free_bytes = st.f_bavail * st.f_frsize
            if self.free_bytes < self.min_free_bytes:
                self._state = (
                    f"disk_low: {self.free_bytes // 2**20} MB free where the database is,"
                    f" below {self.min_free_bytes // 2**20} MB"
                )
            else:
                self._state = "ok"
            return self._state
