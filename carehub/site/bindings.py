"""When a device was where: a site file's device binding as a half-open UTC period.

The site file writes a binding's `from`/`until` as a date or a (possibly naive) time in the
site's zone; the loader's overlap check and the index both read them through
`binding_instant`, so both agree on what a bare date means.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from carehub.site.model import BindingTime, DeviceKind, Site


@dataclass(frozen=True, slots=True)
class Binding:
    """Where a device was, for a half-open UTC period [start, end)."""

    device_id: str
    kind: DeviceKind
    model: str
    room: str | None
    resident: str | None
    start: datetime
    end: datetime
    heartbeat_seconds: float


_FAR_PAST = datetime(1970, 1, 1, tzinfo=UTC)
_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


def binding_instant(
    value: BindingTime | None, site: Site, *, default_end: bool = False
) -> datetime:
    """A binding bound as a UTC instant; a bare date means local midnight at the site."""
    if value is None:
        return _FAR_FUTURE if default_end else _FAR_PAST
    tz = ZoneInfo(site.timezone)
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=tz)
        return aware.astimezone(UTC)
    return datetime.combine(value, time(0), tzinfo=tz).astimezone(UTC)
