"""Process heartbeats: each running part says every few seconds that it is alive and well.

A container health check (`carehub health gateway`) and the web app's self-supervision read
them, so a stopped gateway or rules engine shows on the staff screen within seconds instead of
silently leaving the alarm board stale.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

INTERVAL_S = 2.0
STALE_AFTER_S = 6.0
"""Three missed beats; with the board's 3 s ping a stopped part shows within 10 s."""


def heartbeat_dir(db: Path) -> Path:
    """Heartbeats live beside the hub's database."""
    return db.parent / "heartbeats"


def write(directory: Path, part: str, status: dict[str, Any]) -> None:
    """Atomically replace the part's heartbeat file."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / f".{part}.tmp"
    tmp.write_text(
        json.dumps(
            {"part": part, "at": datetime.now(UTC).isoformat(), "pid": os.getpid(), **status}
        ),
        encoding="utf-8",
    )
    tmp.replace(directory / f"{part}.json")


def read_status(directory: Path, part: str) -> dict[str, Any] | None:
    """The part's last heartbeat as written, or None when there is none to read."""
    try:
        data: dict[str, Any] = json.loads((directory / f"{part}.json").read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return data


def read(directory: Path, part: str, stale_after_s: float = STALE_AFTER_S) -> str:
    """'ok', or what is wrong with the part."""
    path = directory / f"{part}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "not running"
    except (OSError, ValueError):
        return "unreadable heartbeat"
    age = (datetime.now(UTC) - datetime.fromisoformat(data["at"])).total_seconds()
    if age > stale_after_s:
        return f"silent for {age:.0f} s"
    state = data.get("state", "ok")
    return "ok" if state == "ok" else str(state)


class Beat:
    """Writes a part's heartbeat every INTERVAL_S from a daemon thread until stopped."""

    def __init__(self, directory: Path, part: str, status: Callable[[], dict[str, Any]]) -> None:
        self.directory = directory
        self.part = part
        self._status = status
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{part}", daemon=True)

    def start(self) -> Beat:
        """Begin beating."""
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            try:
                status = self._status()
            except Exception as err:  # noqa: BLE001 - a failing status is itself the news
                status = {"state": f"status failed: {type(err).__name__}"}
            # a full disk shows as a stale heartbeat, which is what we want
            with contextlib.suppress(OSError):
                write(self.directory, self.part, status)
            if self._stop.wait(INTERVAL_S):
                return

    def stop(self) -> None:
        """Stop beating and remove the file, so 'stopped' is not mistaken for 'silent'."""
        self._stop.set()
        self._thread.join(timeout=5)
        (self.directory / f"{self.part}.json").unlink(missing_ok=True)
