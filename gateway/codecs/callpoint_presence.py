"""`callpoint-presence`: a nurse-call system's presence button by the room door (kind
`presence`, docs/devices.md).

Staff press it green on entering (`PRESENCE_ON`) and again on leaving (`PRESENCE_OFF`); the
call point also reports a resident's calls and a periodic `ALIVE`. CareHub measures night
work from the presence pairs (docs/freed-hours.md); calls are the nurse-call system's own
business, so here they only prove the unit alive.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from carehub.events import EventType
from carehub.site import DeviceKind
from gateway.codecs.base import Codec, CodecError, DecodeContext, Decoded, Reason, parse

SEQ_MODULUS = 65536

EVENT_TYPE: dict[str, EventType] = {
    "PRESENCE_ON": EventType.STAFF_IN,
    "PRESENCE_OFF": EventType.STAFF_OUT,
    "ALIVE": EventType.HEARTBEAT,
    "CALL": EventType.HEARTBEAT,
    "CALL_OFF": EventType.HEARTBEAT,
}
"""The vendor's events as canonical types; a call is the nurse-call system's, not ours."""


class Report(BaseModel):
    """One call-point report."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    unit: str = Field(min_length=1, max_length=64)
    n: int = Field(ge=0, lt=SEQ_MODULUS)
    t: int = Field(ge=0, le=2**33)
    ev: Literal["PRESENCE_ON", "PRESENCE_OFF", "ALIVE", "CALL", "CALL_OFF"]
    tag: str | None = Field(None, min_length=1, max_length=32)
    batt: float | None = Field(None, ge=0, le=100)


_ADAPTER = TypeAdapter(Report)


def decode(payload: bytes, ctx: DecodeContext) -> list[Decoded]:
    """PRESENCE_ON → staff_in, PRESENCE_OFF → staff_out (with the badge tag), else heartbeat."""
    report = parse(_ADAPTER, payload)
    if report.unit != ctx.device_id:
        msg = f"unit {report.unit!r} does not match the topic's device"
        raise CodecError(Reason.WRONG_TOPIC, msg)
    etype = EVENT_TYPE[report.ev]
    data: dict[str, object]
    if etype is EventType.HEARTBEAT:
        data = {"battery": report.batt, "rssi": None}
        if report.ev != "ALIVE":
            data["event"] = report.ev
    else:
        data = {} if report.tag is None else {"staff": report.tag}
    return [
        Decoded(
            type=etype,
            data=data,
            ts=datetime.fromtimestamp(report.t, UTC),
            seq=report.n,
            battery=report.batt,
        )
    ]


CODEC = Codec(
    model="callpoint-presence",
    kinds=frozenset({DeviceKind.PRESENCE}),
    decode=decode,
    seq_modulus=SEQ_MODULUS,
)
