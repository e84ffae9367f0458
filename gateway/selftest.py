"""The admin's self-test message: one synthetic request in, one `system` canonical event out.

The web app publishes a request on `{prefix}/{site}/hub/api/selftest`; the gateway turns it
into a canonical event (kind `system`, type `self_test`) that travels the same path as a
fall: published on MQTT, read by the rules engine, raised as an alarm, shown on the board.
So a passing self-test proves the whole alarm path works, not just that processes are up.

The event is published but not stored: it is not care data, and the reports must not see it.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from carehub.events import CanonicalEvent, EventKind, EventType, event_id_for
from carehub.topics import SELFTEST_DEVICE
from gateway.codecs.base import parse


class SelfTestRequest(BaseModel):
    """What the web app publishes: an id to follow the test by, and who asked."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    selftest_id: str = Field(pattern=r"^[a-z0-9-]{8,64}$")
    requested_by: str = Field(min_length=1, max_length=64)


_REQUEST = TypeAdapter(SelfTestRequest)


def selftest_event_id(site: str, selftest_id: str) -> str:
    """The event id of a self-test: stable, so a redelivered request is one event downstream."""
    return event_id_for(site, SELFTEST_DEVICE, f"selftest:{selftest_id}")


def selftest_event(site: str, payload: bytes, received_at: datetime) -> CanonicalEvent:
    """The canonical event of a request; `CodecError` (→ dead letter) when it is malformed."""
    request = parse(_REQUEST, payload)
    return CanonicalEvent(
        event_id=selftest_event_id(site, request.selftest_id),
        site=site,
        device_id=SELFTEST_DEVICE,
        kind=EventKind.SYSTEM,
        type=EventType.SELF_TEST,
        ts=received_at,
        received_at=received_at,
        resident_id=None,
        room=None,
        data={"selftest_id": request.selftest_id, "requested_by": request.requested_by},
    )
