"""The narrow interfaces the web app uses, so it does not reach into other parts' internals."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol


class AlarmsPort(Protocol):
    """What the web app needs of the alarm service."""

    def list_alarms(self, state: str, since: datetime | None) -> list[dict[str, Any]]:
        """Alarms as SPEC §5 JSON, `state` 'active' or 'all'."""
        ...

    def acknowledge(self, alarm_id: str, username: str) -> dict[str, Any]:
        """Acknowledge; raises NotFoundError / ConflictError."""
        ...

    def resolve(
        self, alarm_id: str, username: str, outcome: str, note: str | None
    ) -> dict[str, Any]:
        """Resolve with an outcome; raises NotFoundError / ConflictError / ValueError."""
        ...

    def subscribe(self, listener: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Call `listener` (from any thread) with each change envelope
        {"type": "new"|"update"|"end", "alarm": {...}}; answers the unsubscribe function."""
        ...
