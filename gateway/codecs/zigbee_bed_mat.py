"""`zigbee-bed-mat`: a Zigbee2MQTT pressure mat under the mattress (kind `bed`).

Zigbee2MQTT publishes the mat's whole state on every change and at least every minute, so
`occupancy` repeats. `in_bed` and `out_of_bed` are edges: the codec remembers the last
occupancy in the device's codec state (which the pipeline persists) and answers a repeat as a
heartbeat, so a long time out of bed is one `out_of_bed`, not one a minute (docs/devices.md).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from carehub.events import EventType
from carehub.site import DeviceKind
from gateway.codecs.base import Codec, DecodeContext, Decoded, parse


class Report(BaseModel):
    """Zigbee2MQTT's JSON for the mat; only the keys CareHub uses are checked."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    occupancy: bool | None = None
    battery: float | None = Field(None, ge=0, le=100)
    linkquality: int | None = Field(None, ge=0, le=255)


_ADAPTER = TypeAdapter(Report)


def decode(payload: bytes, ctx: DecodeContext) -> list[Decoded]:
    """A change of occupancy → in_bed / out_of_bed; a repeat or no occupancy → heartbeat."""
    report = parse(_ADAPTER, payload)
    extra = {"linkquality": report.linkquality, "battery": report.battery}
    before = ctx.state.get("occupancy")
    if report.occupancy is None or report.occupancy == before:
        seen = {} if report.occupancy is None else {"occupancy": report.occupancy}
        return [
            Decoded(EventType.HEARTBEAT, {"rssi": None, **extra, **seen}, battery=report.battery)
        ]
    ctx.state["occupancy"] = report.occupancy
    etype = EventType.IN_BED if report.occupancy else EventType.OUT_OF_BED
    return [Decoded(etype, extra, battery=report.battery)]


CODEC = Codec(model="zigbee-bed-mat", kinds=frozenset({DeviceKind.BED}), decode=decode)
