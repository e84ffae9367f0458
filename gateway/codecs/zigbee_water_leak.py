"""`zigbee-water-leak`: a Zigbee2MQTT water-leak sensor used as a bed-wetting sensor.

No seq and no device clock: the pipeline stamps `received_at` and recognises redeliveries by
content (see docs/storage.md, "Duplicates without a sequence number").
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from carehub.events import EventType
from carehub.site import DeviceKind
from gateway.codecs.base import Codec, DecodeContext, Decoded, parse


class Report(BaseModel):
    """Zigbee2MQTT's JSON for the sensor; only the keys CareHub uses are checked."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    water_leak: bool | None = None
    battery: float | None = Field(None, ge=0, le=100)
    battery_low: bool | None = None
    linkquality: int | None = Field(None, ge=0, le=255)
    voltage: int | None = Field(None, ge=0, le=10000)


_ADAPTER = TypeAdapter(Report)


def decode(payload: bytes, ctx: DecodeContext) -> list[Decoded]:
    """Wet → saturation 100, dry → 0; a report without `water_leak` is a heartbeat."""
    report = parse(_ADAPTER, payload)
    extra = {"linkquality": report.linkquality, "battery": report.battery}
    if report.water_leak is None:
        return [
            Decoded(EventType.HEARTBEAT, {"rssi": None, **extra}, battery=report.battery),
        ]
    level = 100.0 if report.water_leak else 0.0
    return [Decoded(EventType.SATURATION, {"level": level, **extra}, battery=report.battery)]


CODEC = Codec(model="zigbee-water-leak", kinds=frozenset({DeviceKind.DIAPER}), decode=decode)
