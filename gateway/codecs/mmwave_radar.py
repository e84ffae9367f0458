"""`mmwave-radar`: a mains-powered ceiling radar with fall detection, no seq, no clock.

`fall_cleared` is an edge (the first `fall_state: 0` after a 1), so the codec remembers the
last fall state in the device's codec state, which the pipeline persists with the device.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, TypeAdapter

from carehub.events import EventType
from carehub.site import DeviceKind
from gateway.codecs.base import Codec, DecodeContext, Decoded, parse

FALL_CONFIDENCE = 0.9
"""The radar reports no confidence; its vendor states ~90 % precision for fall_state."""


class Report(BaseModel):
    """One radar report."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    presence: Literal[0, 1]
    movement: Literal[0, 1, 2]
    fall_state: Literal[0, 1]


_ADAPTER = TypeAdapter(Report)


def decode(payload: bytes, ctx: DecodeContext) -> list[Decoded]:
    """fall_state 1 → fall (repeated), first 0 after 1 → fall_cleared, else heartbeat."""
    report = parse(_ADAPTER, payload)
    was_falling = bool(ctx.state.get("fall_state", 0))
    ctx.state["fall_state"] = report.fall_state
    seen = {"presence": report.presence, "movement": report.movement}
    if report.fall_state == 1:
        return [Decoded(EventType.FALL, {"confidence": FALL_CONFIDENCE, **seen})]
    if was_falling:
        return [Decoded(EventType.FALL_CLEARED, seen)]
    return [Decoded(EventType.HEARTBEAT, {"battery": None, "rssi": None, **seen})]


_FALLING = re.compile(rb'"fall_state"\s*:\s*1')


def urgent(payload: bytes) -> bool:
    """`fall_state: 1` (a fall); its clearing waits with the routine reports."""
    return _FALLING.search(payload) is not None


CODEC = Codec(
    model="mmwave-radar", kinds=frozenset({DeviceKind.FALL}), decode=decode, urgent=urgent
)
