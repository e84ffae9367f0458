"""`wetsense-s2`: a diaper sensor that reports states, not percent (docs/devices.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from carehub.events import EventType
from carehub.site import DeviceKind
from gateway.codecs.base import Codec, CodecError, DecodeContext, Decoded, Reason, parse

SEQ_MODULUS = 65536
BATTERY_EMPTY_MV = 2400
BATTERY_FULL_MV = 3000

STATE_LEVEL: dict[str, float] = {"ok": 0.0, "some_urine": 40.0, "consider_change": 80.0}
"""The vendor's states as the saturation % the rules compare with thresholds."""


class Report(BaseModel):
    """One wetsense report."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    dev: str = Field(min_length=1, max_length=64)
    cnt: int = Field(ge=0, lt=SEQ_MODULUS)
    time: int = Field(ge=0, le=2**33)
    state: Literal["ok", "some_urine", "consider_change", "off", "error"]
    in_state_s: int = Field(ge=0)
    bat_mv: int = Field(ge=0, le=5000)


_ADAPTER = TypeAdapter(Report)


def battery_percent(millivolts: int) -> float:
    """Linear 2400 mV (empty) … 3000 mV (full), clamped to 0..100."""
    span = BATTERY_FULL_MV - BATTERY_EMPTY_MV
    return round(min(100.0, max(0.0, (millivolts - BATTERY_EMPTY_MV) * 100 / span)), 1)


def decode(payload: bytes, ctx: DecodeContext) -> list[Decoded]:
    """A state report → saturation / detached / fault, with the battery on the side."""
    report = parse(_ADAPTER, payload)
    if report.dev != ctx.device_id:
        msg = f"dev {report.dev!r} does not match the topic's device"
        raise CodecError(Reason.WRONG_TOPIC, msg)
    battery = battery_percent(report.bat_mv)
    common: dict[str, object] = {
        "state": report.state,
        "in_state_s": report.in_state_s,
        "battery": battery,
    }
    if report.state in STATE_LEVEL:
        etype, data = EventType.SATURATION, {"level": STATE_LEVEL[report.state], **common}
    elif report.state == "off":
        etype, data = EventType.DETACHED, common
    else:
        etype, data = EventType.FAULT, {"code": "sensor_error", **common}
    return [
        Decoded(
            type=etype,
            data=data,
            ts=datetime.fromtimestamp(report.time, UTC),
            seq=report.cnt,
            battery=battery,
        )
    ]


def urgent(payload: bytes) -> bool:
    """`"state": "error"`: a fault."""
    return b'"error"' in payload


CODEC = Codec(
    model="wetsense-s2",
    kinds=frozenset({DeviceKind.DIAPER}),
    decode=decode,
    seq_modulus=SEQ_MODULUS,
    urgent=urgent,
)
