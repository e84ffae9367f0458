"""How CareHub writes and counts time: UTC RFC 3339 strings and integer Unix microseconds.

Stored and published times are UTC (docs/mqtt.md); local time is for screens only
(`carehub.site.night`). Strings have a fixed precision so that they sort as the times do.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

TimeSpec = Literal["auto", "seconds", "milliseconds", "microseconds"]
"""`auto` drops a zero fraction (the gateway's dead letters have always been written so)."""


def rfc3339(when: datetime, timespec: TimeSpec = "microseconds") -> str:
    """An aware time as UTC RFC 3339 with a `Z`, at a fixed precision (so strings sort)."""
    return when.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def to_us(when: datetime) -> int:
    """An aware time as integer Unix microseconds, exactly (no float rounding)."""
    delta = when.astimezone(UTC) - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(us: int) -> datetime:
    """Integer Unix microseconds as an aware UTC time, exactly."""
    return EPOCH + timedelta(microseconds=us)
