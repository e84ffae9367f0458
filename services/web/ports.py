"""The narrow interfaces the web app uses, so it does not reach into other parts' internals.

Each Protocol lists exactly what the routes and pages call; mypy checks that the services the
hub hands over (app/hub.py) fit. The reports need no port of their own: the web app only
passes the stores on to the report functions, which say what they read
(`services.reports.service.ReportSource`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal, Protocol

from services.alarms.model import Outcome


class AlarmsPort(Protocol):
    """What the web app needs of the alarm service."""

    def list_alarms(self, state: str, since: datetime | None) -> list[dict[str, Any]]:
        """Alarms as JSON (docs/alarms.md), `state` 'active' or 'all'."""
        ...

    def get(self, alarm_id: str) -> dict[str, Any]:
        """One stored alarm's JSON; raises NotFoundError."""
        ...

    def acknowledge(self, alarm_id: str, username: str) -> dict[str, Any]:
        """Acknowledge; raises NotFoundError / ConflictError."""
        ...

    def resolve(
        self, alarm_id: str, username: str, outcome: Outcome, note: str | None
    ) -> dict[str, Any]:
        """Resolve with an outcome; raises NotFoundError / ConflictError."""
        ...

    def subscribe(self, listener: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Call `listener` (from any thread) with each change envelope
        {"type": "new"|"update"|"end", "alarm": {...}}; answers the unsubscribe function."""
        ...

    def record_access(self, actor: str, action: str, detail: dict[str, Any]) -> None:
        """Put a read of health data (a report) in the audit log."""
        ...


class RoundPort(Protocol):
    """What the web app needs of the digital round (docs/round.md)."""

    def round(self, ward: str | None = None, locale: Literal["da", "en"] = "en") -> dict[str, Any]:
        """Every resident's verdict, reasons, state, sensors and last check."""
        ...

    def check(
        self,
        resident_id: str,
        actor: str,
        result: Literal["ok", "visit_needed"],
        note: str | None = None,
    ) -> dict[str, Any]:
        """Record a digital check (audited); NotFoundError for an unknown resident."""
        ...


class SelfTestReport(Protocol):
    """How a self-test went, as the admin API and page show it."""

    @property
    def ok(self) -> bool:
        """Whether the synthetic message's alarm arrived."""
        ...

    @property
    def elapsed_ms(self) -> float:
        """How long it took, or how long it waited."""
        ...

    @property
    def stage(self) -> str | None:
        """The first stage that did not happen, when not ok."""
        ...

    def to_json(self) -> dict[str, Any]:
        """The API's answer."""
        ...


class PrivacyPort(Protocol):
    """What the web app needs of the privacy service (docs/security.md)."""

    def residents(self) -> list[dict[str, Any]]:
        """Every resident with room, ward and monitoring state (ids, no names)."""
        ...

    def monitoring_off(self) -> set[str]:
        """Ids of the residents whose monitoring is switched off now."""
        ...

    def set_monitoring(
        self, resident_id: str, enabled: bool, reason: str | None, actor: str
    ) -> dict[str, Any]:
        """Switch a resident's alarms on or off; ValueError when off has no reason,
        NotFoundError for an unknown resident."""
        ...

    def export(self, resident_id: str, actor: str) -> dict[str, Any]:
        """Everything held about a resident (audited); NotFoundError if unknown."""
        ...

    def run_selftest(self, actor: str) -> SelfTestReport:
        """Send a synthetic message through the whole alarm path (≤ 10 s)."""
        ...


class NotifyPort(Protocol):
    """What the web app needs of notifications (services.notify.desk.NotifyDesk)."""

    def phone_name(self, alarm_id: str, token: str) -> str:
        """The phone a valid acknowledge link belongs to; raises LinkError."""
        ...

    def redeem(self, alarm_id: str, token: str) -> dict[str, Any]:
        """Acknowledge through a link, once; raises LinkError / ConflictError."""
        ...

    def deliveries(self, alarm_id: str) -> list[dict[str, Any]]:
        """An alarm's delivery records."""
        ...

    def phones_sent(self, limit: int = 50) -> list[dict[str, Any]]:
        """Each phone with what it was sent."""
        ...

    def subscribe(self, listener: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Call `listener` (from any thread) with `{"alarm_id", "deliveries"}` whenever an
        alarm's sends change; answers the unsubscribe function."""
        ...

    def push_key(self) -> str | None:
        """The VAPID public key for the board's subscribe button; None when Web Push is off."""
        ...

    def push_subscribe(
        self, username: str, wards: list[str], subscription: dict[str, Any]
    ) -> dict[str, Any]:
        """Store a browser's Web Push subscription; ValueError when unusable."""
        ...

    def push_unsubscribe(self, username: str, endpoint: str) -> None:
        """Forget one of the user's subscriptions; NotFoundError if none."""
        ...

    def push_subscriptions(self, username: str) -> list[dict[str, Any]]:
        """The user's subscribed browsers."""
        ...
