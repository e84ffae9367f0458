"""The bodies the API takes and answers, as pydantic models (they are its OpenAPI schemas).

The answers describe the JSON the services already produce: timestamps stay the strings the
alarm model writes (`carehub.timefmt`), so validating an answer never rewrites it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, Field, WithJsonSchema

from carehub.site import DeviceKind, Priority
from services.alarms.model import AlarmState, Outcome

Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]
"""RFC 3339 in UTC, as written by the service that made the answer."""

EARLIEST_TIME = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_TIME = datetime(2199, 12, 31, tzinfo=UTC)


def _supported(value: datetime) -> datetime:
    """In UTC and within the years the stores handle; else a 422, never an OverflowError."""
    try:
        utc = value.astimezone(UTC)
    except OverflowError as err:
        msg = "outside the supported range"
        raise ValueError(msg) from err
    if not EARLIEST_TIME <= utc <= LATEST_TIME:
        msg = "outside the supported range (2000-01-01 … 2199-12-31)"
        raise ValueError(msg)
    return utc


SupportedTime = Annotated[AwareDatetime, AfterValidator(_supported)]
"""A time a client may ask about: with an offset, between 2000 and 2199 (docs/web-app.md)."""


class Token(BaseModel):
    """OAuth2 password-flow answer."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret


class ResolveBody(BaseModel):
    """What staff say when they close an alarm."""

    outcome: Outcome
    note: str | None = Field(None, max_length=2000)


class MonitoringBody(BaseModel):
    """Switch a resident's alarms on or off; switching off needs a reason."""

    enabled: bool
    reason: str | None = Field(
        None, max_length=500, description="Why (required to switch off). No names."
    )


class AlarmPublic(BaseModel):
    """A stored alarm: every key is always present, null where not known yet."""

    # services.alarms.model.Alarm's fields, in its order (tests/web/test_models.py)
    alarm_id: str
    site: str
    rule: str
    kind: str
    priority: Priority
    state: AlarmState
    resident_id: str | None
    room: str | None
    device_id: str | None
    raised_at: Timestamp
    acknowledged_at: Timestamp | None
    acknowledged_by: str | None
    escalated_at: Timestamp | None
    resolved_at: Timestamp | None
    resolved_by: str | None
    outcome: Outcome | None
    trigger_event_id: str | None
    count: int = Field(description="Triggers seen, the first included.")
    last_seen_at: Timestamp | None = Field(description="Event time of the last trigger.")
    cleared_at: Timestamp | None = Field(
        description="When the sensor said the condition was over (high alarms stay open)."
    )
    note: str | None = Field(description="Staff note given on resolve.")


class DeliveryPublic(BaseModel):
    """One send of an alarm to one phone on one channel (docs/notifications.md)."""

    phone: str
    phone_name: str
    channel: str
    step: Literal["first", "reminder", "escalated", "fallback", "taken", "technical"]
    at: Timestamp = Field(description="When the send was recorded (before it was attempted).")
    done_at: Timestamp | None
    status: Literal["pending", "sent", "failed", "cancelled"]
    error: str | None
    title: str
    body: str


class AlarmDetailPublic(AlarmPublic):
    """A stored alarm with its delivery records."""

    deliveries: list[DeliveryPublic]


class ProvisionalAlarmPublic(BaseModel):
    """An alarm announced while the hub's store does not answer: listed among the active
    alarms until the stored alarm replaces it; it cannot be acknowledged or resolved (409)."""

    # what gateway/emergency.py announces, in its order (tests/web/test_models.py)
    alarm_id: str
    site: str
    rule: str
    kind: str
    priority: Priority
    state: AlarmState
    provisional: Literal[True]
    resident_id: str | None
    room: str | None
    device_id: str | None
    raised_at: Timestamp
    last_seen_at: Timestamp
    count: int
    reason: str = Field(description="Why it is provisional.")


class DevicePublic(BaseModel):
    """A device of the site with its current binding and last known state."""

    # services.web.routes.devices.device_rows, in its order (tests/web/test_models.py)
    device_id: str
    kind: DeviceKind
    model: str
    room: str | None
    resident_id: str | None
    ward: str | None
    last_seen: Timestamp | None
    battery: float | None
    rssi: int | None
    online: bool
