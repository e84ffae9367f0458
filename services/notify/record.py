"""The demo's channel: it takes every notice and keeps nothing but the outbox row, so the
phones page shows the ladder without any phone or server (docs/notifications.md)."""

from __future__ import annotations

from services.notify.channel import Notice, Target

NAME = "demo"


class RecordChannel:
    """Accepts every notice (the outbox row is the record)."""

    name = NAME

    def send(self, target: Target, notice: Notice) -> None:
        """Nothing to do: the row says what was sent."""
        del target, notice

    def check(self) -> None:
        """Always up."""

    def close(self) -> None:
        """Nothing to release."""
