"""The canonical event (docs/mqtt.md): what the gateway hands on, whatever the vendor said.

Every service downstream (rules, reports, dashboards) reads only this shape, so a new vendor
is a new codec and nothing else. `event_id` is derived from `(site, device_id, seq)`, so the
same device message replayed anywhere downstream yields the same id and is stored once.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from carehub.site import DeviceKind
from carehub.topics import SiteTopics

EVENT_NAMESPACE = uuid.UUID("6b1f4f0e-3c0a-4d61-9a55-2f7d3c2a8e10")
"""Fixed namespace for event ids; changing it would change every stored id."""


class EventKind(StrEnum):
    """What a canonical event is about: a device kind, or the hub itself.

    A superset of the site file's `DeviceKind`, so a site file can never declare a `system`
    device; only the gateway makes `system` events (the admin's self-test).
    """

    FALL = "fall"
    DIAPER = "diaper"
    MEDICATION = "medication"
    BED = "bed"
    PRESENCE = "presence"
    SYSTEM = "system"


class EventType(StrEnum):
    """Canonical event types; vendor codecs map their own vocabulary onto these."""

    HEARTBEAT = "heartbeat"  # data: battery (0..100 | None), rssi (dBm | None)
    FALL = "fall"  # data: confidence 0..1
    FALL_CLEARED = "fall_cleared"
    SATURATION = "saturation"  # data: level 0..100 (%)
    DETACHED = "detached"
    ATTACHED = "attached"
    DOSE_DUE = "dose_due"  # data: dose_id, due (RFC 3339)
    DISPENSED = "dispensed"  # data: dose_id
    TAKEN = "taken"  # data: dose_id
    MISSED = "missed"  # data: dose_id
    FAULT = "fault"  # data: code
    SELF_TEST = "self_test"  # kind system; data: selftest_id, requested_by
    IN_BED = "in_bed"  # kind bed
    OUT_OF_BED = "out_of_bed"  # kind bed
    STAFF_IN = "staff_in"  # kind presence; data: staff (badge, optional)
    STAFF_OUT = "staff_out"  # kind presence; data: staff (badge, optional)


KIND_TYPES: dict[DeviceKind, frozenset[EventType]] = {
    DeviceKind.FALL: frozenset({EventType.HEARTBEAT, EventType.FALL, EventType.FALL_CLEARED}),
    DeviceKind.DIAPER: frozenset(
        {
            EventType.HEARTBEAT,
            EventType.SATURATION,
            EventType.DETACHED,
            EventType.ATTACHED,
            EventType.FAULT,
        }
    ),
    DeviceKind.MEDICATION: frozenset(
        {
            EventType.HEARTBEAT,
            EventType.DOSE_DUE,
            EventType.DISPENSED,
            EventType.TAKEN,
            EventType.MISSED,
            EventType.FAULT,
        }
    ),
    DeviceKind.BED: frozenset({EventType.HEARTBEAT, EventType.IN_BED, EventType.OUT_OF_BED}),
    DeviceKind.PRESENCE: frozenset({EventType.HEARTBEAT, EventType.STAFF_IN, EventType.STAFF_OUT}),
}
"""Which canonical types each device kind may produce."""


def event_id_for(site: str, device_id: str, seq: int | str) -> str:
    """The stable id of a device message: the same `(site, device, seq)` gives the same id."""
    return str(uuid.uuid5(EVENT_NAMESPACE, f"{site}/{device_id}/{seq}"))


class CanonicalEvent(BaseModel):
    """One validated, enriched device event (docs/mqtt.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str = Field(description="Stable for (site, device_id, seq).")
    site: str
    device_id: str
    kind: EventKind
    type: EventType
    ts: AwareDatetime = Field(description="Device time, UTC.")
    received_at: AwareDatetime = Field(description="Gateway time, UTC.")
    resident_id: str | None = Field(description="Pseudonymous id, from the binding at ts.")
    room: str | None
    data: dict[str, Any] = Field(default_factory=dict)
    seq: int | None = Field(None, description="Device sequence number, where the device has one.")

    def topic(self, prefix: str) -> str:
        """Where the gateway publishes it: `{prefix}/{site}/events/{kind}/{device_id}`."""
        return SiteTopics(prefix, self.site).event(self.kind.value, self.device_id)


def utc(dt: datetime) -> datetime:
    """Normalise an aware datetime to UTC (naive datetimes are a programming error)."""
    if dt.tzinfo is None:
        msg = "naive datetime: CareHub stores UTC and needs aware datetimes"
        raise ValueError(msg)
    return dt.astimezone(UTC)
