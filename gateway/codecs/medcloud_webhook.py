"""`medcloud-webhook`: a dispenser whose vendor cloud POSTs events to the hub's webhook.

The cloud delivers at least once, so duplicates are recognised by the vendor's `event_id`
(the codec's `key`), not by a sequence number.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from carehub.events import EventType
from carehub.site import DeviceKind
from gateway.codecs.base import (
    Codec,
    CodecError,
    DecodeContext,
    Decoded,
    Reason,
    UtcDatetime,
    parse,
)


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, allow_inf_nan=False)


class DueDose(_Strict):
    id: str = Field(min_length=1, max_length=128)
    scheduled: UtcDatetime


class DoseRef(_Strict):
    id: str = Field(min_length=1, max_length=128)


class _Event(_Strict):
    event_id: str = Field(min_length=1, max_length=128)
    device: str = Field(min_length=1, max_length=64)
    occurred_at: UtcDatetime


class DoseDueEvent(_Event):
    event: Literal["DOSE_DUE"]
    dose: DueDose


class DoseEvent(_Event):
    event: Literal["DISPENSED", "TAKEN", "MISSED"]
    dose: DoseRef


class FaultEvent(_Event):
    event: Literal["FAULT"]
    fault_code: str = Field(min_length=1, max_length=64)


class HeartbeatEvent(_Event):
    event: Literal["HEARTBEAT"]
    battery: float | None = Field(None, ge=0, le=100)


VendorEvent = Annotated[
    DoseDueEvent | DoseEvent | FaultEvent | HeartbeatEvent, Field(discriminator="event")
]
_ADAPTER: TypeAdapter[VendorEvent] = TypeAdapter(VendorEvent)


class _Routing(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    device: str = Field(min_length=1, max_length=64)


_ROUTING = TypeAdapter(_Routing)

_TYPES = {
    "DOSE_DUE": EventType.DOSE_DUE,
    "DISPENSED": EventType.DISPENSED,
    "TAKEN": EventType.TAKEN,
    "MISSED": EventType.MISSED,
    "FAULT": EventType.FAULT,
    "HEARTBEAT": EventType.HEARTBEAT,
}


def device_of(payload: bytes) -> str:
    """The device a webhook body is about, so the pipeline can look up its binding."""
    return parse(_ROUTING, payload).device


def decode(payload: bytes, ctx: DecodeContext) -> list[Decoded]:
    """One vendor event → one canonical event, keyed by the vendor's event id."""
    ev = parse(_ADAPTER, payload)
    if ev.device != ctx.device_id:
        msg = f"device {ev.device!r} is not the device this message was routed to"
        raise CodecError(Reason.WRONG_TOPIC, msg)
    battery: float | None = None
    match ev:
        case DoseDueEvent():
            due = ev.dose.scheduled.isoformat().replace("+00:00", "Z")
            data: dict[str, object] = {"dose_id": ev.dose.id, "due": due}
        case DoseEvent():
            data = {"dose_id": ev.dose.id}
        case FaultEvent():
            data = {"code": ev.fault_code}
        case HeartbeatEvent():
            data = {"battery": ev.battery, "rssi": None}
            battery = ev.battery
    return [
        Decoded(
            type=_TYPES[ev.event],
            data=data,
            ts=ev.occurred_at,
            key=f"e:{ev.event_id}",
            battery=battery,
        )
    ]


CODEC = Codec(
    model="medcloud-webhook",
    kinds=frozenset({DeviceKind.MEDICATION}),
    decode=decode,
    webhook="medcloud",
    device_of=device_of,
)
