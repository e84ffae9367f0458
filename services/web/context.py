"""What the web app needs from the rest of the hub, gathered in one object.

The app factory takes a `HubContext`, so tests can build an app over a real store and a real
rules service without the whole hub, and `carehub run api` can build one over the shared
SQLite file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from carehub.clock import Clock, SystemClock
from carehub.settings import Settings
from carehub.site import SiteIndex
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
    alarms: Any = None
    """services.alarms AlarmService (list/acknowledge/resolve/subscribe)."""
    reports: Any = None
    """services.reports.service.ReportSource over the stores."""
    devices: Callable[[], list[dict[str, Any]]] | None = None
    """Device states from the gateway's store."""
    health: Callable[[], dict[str, str]] = dict
    """Component name -> 'ok' or what is wrong; anything but 'ok' degrades /healthz."""
    metrics: Callable[[], dict[str, float]] = dict
    """Flat counters for /metrics, name{labels} -> value."""
    privacy: Any = None
    """services.privacy.service.PrivacyService: monitoring switches, exports, self-test."""
    extra_routers: list[Any] = field(default_factory=list)
    """More APIRouters to mount, e.g. the gateway's vendor webhook."""
