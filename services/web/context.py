"""What the web app needs from the rest of the hub, gathered in one object.

The app factory takes a `HubContext`, so tests can build an app over a real store and a real
rules service without the whole hub, and `carehub run api` can build one over the shared
SQLite file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter

from carehub.clock import Clock, SystemClock
from carehub.settings import Settings
from carehub.site import SiteIndex
from services.reports.service import ReportSource
from services.web.ports import AlarmsPort, NotifyPort, PrivacyPort, RoundPort
from services.web.users import UserStore


@dataclass
class HubContext:
    """The hub's parts the web app talks to."""

    settings: Settings
    site: SiteIndex
    users: UserStore
    secret_key: str
    demo: bool = False
    clock: Clock = field(default_factory=SystemClock)
    alarms: AlarmsPort | None = None
    """The alarm service (on the hub, with the gateway's provisional alarms laid over it)."""
    reports: ReportSource | None = None
    """The stores the reports read."""
    devices: Callable[[], list[dict[str, Any]]] | None = None
    """Device states from the gateway's store: `device_id`, `last_seen` (an RFC 3339 string),
    `battery`, `rssi`, `online` (what `/api/devices` answers, `services.web.models`)."""
    health: Callable[[], dict[str, str]] = dict
    """Component name -> 'ok' or what is wrong; anything but 'ok' degrades /healthz."""
    metrics: Callable[[], dict[str, float]] = dict
    """Flat counters for /metrics, name{labels} -> value."""
    channels: Callable[[], dict[str, str]] = dict
    """Notification channel health, `channel:phone` -> 'ok', 'failing' or 'unknown'
    (docs/notifications.md, "Supervision")."""
    privacy: PrivacyPort | None = None
    """The privacy service: monitoring switches, exports, self-test."""
    notify: NotifyPort | None = None
    """Acknowledge links, delivery records, the phones page (docs/notifications.md)."""
    round: RoundPort | None = None
    """The digital round: verdicts per resident and digital checks (docs/round.md)."""
    extra_routers: list[APIRouter] = field(default_factory=list)
    """More APIRouters to mount, e.g. the gateway's vendor webhook."""
