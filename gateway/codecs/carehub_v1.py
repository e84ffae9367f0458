"""`carehub-v1`: the native CareHub firmware protocol (docs/devices.md), for every device kind."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from carehub.events import EventType
from carehub.site import DeviceKind
from gateway.codecs.base import Codec, DecodeContext, Decoded, UtcDatetime, parse

SEQ_MODULUS = 2**31


class _Uplink(BaseModel):
    """Fields every native uplink has; unknown extra keys are ignored for newer firmware."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True, allow_inf_nan=False)

    v: Literal[1]
    seq: int = Field(ge=0, lt=SEQ_MODULUS)
    ts: UtcDatetime


class Heartbeat(_Uplink):
    type: Literal["heartbeat"]
    battery: float | None = Field(None, ge=0, le=100)
    rssi: int | None = Field(None, ge=-150, le=20)


class Fall(_Uplink):
    type: Literal["fall"]
    confidence: float = Field(ge=0, le=1)


class Bare(_Uplink):
    type: Literal["fall_cleared", "detached", "attached", "in_bed", "out_of_bed"]


class Presence(_Uplink):
    type: Literal["staff_in", "staff_out"]
    staff: str | None = Field(None, min_length=1, max_length=64)


class Saturation(_Uplink):
    type: Literal["saturation"]
    level: float = Field(ge=0, le=100)


class DoseDue(_Uplink):
    type: Literal["dose_due"]
    dose_id: str = Field(min_length=1, max_length=128)
    due: UtcDatetime


class Dose(_Uplink):
    type: Literal["dispensed", "taken", "missed"]
    dose_id: str = Field(min_length=1, max_length=128)


class Fault(_Uplink):
    type: Literal["fault"]
    code: str = Field(min_length=1, max_length=64)


Uplink = Annotated[
    Heartbeat | Fall | Bare | Presence | Saturation | DoseDue | Dose | Fault,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[Uplink] = TypeAdapter(Uplink)


def decode(payload: bytes, ctx: DecodeContext) -> list[Decoded]:
    """One native uplink → one canonical event."""
    msg = parse(_ADAPTER, payload)
    data: dict[str, object]
    battery: float | None = None
    rssi: int | None = None
    match msg:
        case Heartbeat():
            data = {"battery": msg.battery, "rssi": msg.rssi}
            battery, rssi = msg.battery, msg.rssi
        case Fall():
            data = {"confidence": msg.confidence}
        case Saturation():
            data = {"level": msg.level}
        case DoseDue():
            data = {"dose_id": msg.dose_id, "due": msg.due.isoformat().replace("+00:00", "Z")}
        case Dose():
            data = {"dose_id": msg.dose_id}
        case Fault():
            data = {"code": msg.code}
        case Presence():
            data = {} if msg.staff is None else {"staff": msg.staff}
        case _:
            data = {}
    return [
        Decoded(
            type=EventType(msg.type),
            data=data,
            ts=msg.ts,
            seq=msg.seq,
            battery=battery,
            rssi=rssi,
        )
    ]


def urgent(payload: bytes) -> bool:
    """`"type": "fall"`, `"fall_cleared"` or `"fault"` (or any value starting so)."""
    return b'"fall' in payload or b'"fault' in payload


CODEC = Codec(
    model="carehub-v1",
    kinds=frozenset(DeviceKind),
    decode=decode,
    seq_modulus=SEQ_MODULUS,
    urgent=urgent,
)
