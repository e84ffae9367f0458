"""Errors of the alarm lifecycle.

They subclass the kernel's generic `NotFoundError` and `ConflictError`, so the web app's one
exception handler maps them to 404 and 409 without knowing this package.
"""

from __future__ import annotations

from carehub.errors import CareHubError, ConflictError, NotFoundError


class AlarmError(CareHubError):
    """Root of every error this package raises on purpose."""


class AlarmNotFoundError(AlarmError, NotFoundError):
    """No alarm has this id (→ 404)."""


class InvalidTransitionError(AlarmError, ConflictError):
    """The change is impossible from the alarm's current state (→ 409)."""

    def __init__(self, alarm_id: str, state: str, action: str, why: str = "") -> None:
        self.alarm_id = alarm_id
        self.state = state
        self.action = action
        reason = f": {why}" if why else ""
        super().__init__(f"alarm {alarm_id} is {state}; cannot {action}{reason}")
