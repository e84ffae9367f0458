"""The site's night calendar: which instants fall in the local night window, and which night.

A night is labelled by the local date it starts on and is laid out on the local clock, so a
window that crosses midnight belongs to one night and a daylight-saving night is 8 h or 10 h
long. Stored times are UTC; only these functions look at the site's zone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from carehub.site.model import NightWindow


def is_night(night: NightWindow, tz: ZoneInfo, when: datetime) -> bool:
    """Whether `when` falls inside the local night window."""
    local = when.astimezone(tz).time()
    start, end = night.start, night.end
    if start < end:
        return start <= local < end
    return local >= start or local < end


def night_bounds(night: NightWindow, tz: ZoneInfo, label: date) -> tuple[datetime, datetime]:
    """The UTC start and end of the night labelled by its local start date.

    Built on the local clock, so a daylight-saving night is 8 h or 10 h long.
    """
    start, end = night.start, night.end
    begin = datetime.combine(label, start, tzinfo=tz)
    end_day = label + timedelta(days=1) if end <= start else label
    finish = datetime.combine(end_day, end, tzinfo=tz)
    return begin.astimezone(UTC), finish.astimezone(UTC)


def night_of(night: NightWindow, tz: ZoneInfo, when: datetime) -> date | None:
    """The label of the night `when` falls in, or None outside the night window."""
    local = when.astimezone(tz)  # once: reports ask this for every alarm of a year
    clock = local.time()
    start, end = night.start, night.end
    if start < end:
        return local.date() if start <= clock < end else None
    if clock < end:
        return local.date() - timedelta(days=1)
    return local.date() if clock >= start else None
