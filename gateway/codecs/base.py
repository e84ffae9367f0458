"""What every codec shares: the decode contract, rejection reasons, strict payload parsing.

A codec is a pure function from one device payload to canonical event parts. It never
touches the store, the clock or the site: the pipeline hands it a `DecodeContext` with what
it may know, and turns its `CodecError` into a dead letter with the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, AwareDatetime, TypeAdapter, ValidationError

from carehub.events import EventType
from carehub.site import DeviceKind
from gateway.errors import GatewayError

MAX_PAYLOAD_BYTES = 4096
"""docs/devices.md: every uplink is at most 4 KiB; anything larger is refused before parsing."""


class Reason(StrEnum):
    """Why a message was refused; the label of the per-reason counter and dead letter."""

    NOT_JSON = "not_json"
    OVERSIZE = "oversize"
    WRONG_TOPIC = "wrong_topic"
    UNKNOWN_DEVICE = "unknown_device"
    UNKNOWN_MODEL = "unknown_model"
    UNKNOWN_TYPE = "unknown_type"
    TYPE_NOT_ALLOWED = "type_not_allowed"
    INVALID_FIELD = "invalid_field"
    IMPOSSIBLE_VALUE = "impossible_value"
    FUTURE_TS = "future_ts"
    INTERNAL_ERROR = "internal_error"
    RATE_LIMITED = "rate_limited"
    """Not the payload's fault: its device is over its rate budget (gateway/budget.py)."""


class CodecError(GatewayError):
    """A payload the codec refuses, with a machine reason and a human detail."""

    def __init__(self, reason: Reason, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}")


@dataclass(slots=True)
class DecodeContext:
    """What a codec may know besides the payload.

    `state` is the device's small codec memory (e.g. the radar's last fall state). The codec
    may change it; the pipeline keeps the change only when the message is accepted.
    """

    device_id: str
    kind: DeviceKind
    received_at: datetime
    state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Decoded:
    """One canonical event's worth of a device message, before enrichment."""

    type: EventType
    data: dict[str, Any] = field(default_factory=dict)
    ts: datetime | None = None
    """Device time in UTC; None when the device has no clock (the gateway uses received_at)."""
    seq: int | None = None
    """The device's own sequence number, if it has one."""
    key: str | None = None
    """A vendor's own event id, when duplicates are recognised by it rather than by seq."""
    battery: float | None = None
    rssi: int | None = None


DecodeFn = Callable[[bytes, DecodeContext], list[Decoded]]


@dataclass(frozen=True, slots=True)
class Codec:
    """A device model's codec, as the registry knows it (cf. zigbee-herdsman definitions)."""

    model: str
    kinds: frozenset[DeviceKind]
    decode: DecodeFn
    seq_modulus: int | None = None
    """Where the device's seq wraps (2^31 native); None when it has no seq."""
    webhook: str | None = None
    """Vendor name of the webhook route feeding this codec (`/api/webhooks/{webhook}`)."""
    device_of: Callable[[bytes], str] | None = None
    """For webhook payloads: which device a payload is about (raises CodecError)."""
    retained_uplinks: bool = False
    """Whether the model retains its uplinks on purpose (its retained message is its current
    state, to be read on subscribing). False for every model so far: a retained uplink is
    then a replay of a message already handled, and the gateway skips it."""
    urgent: Callable[[bytes], bool] | None = None
    """A cheap look at a raw payload, before any decoding: may it hold a fall or a fault?
    Such a message takes the gateway's urgent lane (docs/handover.md, "Urgent lane"). A false
    yes costs nothing but the lane; None: every message of the model is routine there."""


def _to_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError as err:  # e.g. 9999-12-31T23:00-05:00
        msg = "time out of range"
        raise ValueError(msg) from err


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""An RFC 3339 time with an offset, normalised to UTC."""

_RANGE_ERRORS = frozenset(
    {
        "greater_than",
        "greater_than_equal",
        "less_than",
        "less_than_equal",
        "finite_number",
    }
)
_UNKNOWN_TYPE_ERRORS = frozenset({"union_tag_invalid"})

T = TypeVar("T")


def check_size(payload: bytes) -> None:
    """Refuse oversized payloads before any parsing work is spent on them."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise CodecError(
            Reason.OVERSIZE, f"{len(payload)} bytes; at most {MAX_PAYLOAD_BYTES} allowed"
        )


def parse(adapter: TypeAdapter[T], payload: bytes) -> T:
    """Validate a JSON payload in one pass (`validate_json` is ~3x faster than json.loads)."""
    check_size(payload)
    try:
        return adapter.validate_json(payload)
    except ValidationError as err:
        raise validation_error(err) from err


def validation_error(err: ValidationError) -> CodecError:
    """Map pydantic's first complaint to a reason and a short detail without the input."""
    errors = err.errors(include_url=False, include_input=False, include_context=False)
    kinds = {e["type"] for e in errors}
    if "json_invalid" in kinds:
        return CodecError(Reason.NOT_JSON, "payload is not valid JSON (UTF-8)")
    first = errors[0]
    if kinds & _UNKNOWN_TYPE_ERRORS:
        return CodecError(Reason.UNKNOWN_TYPE, "type is not one this model sends")
    if first["type"] in ("dict_type", "model_type", "model_attributes_type") and not first["loc"]:
        return CodecError(Reason.INVALID_FIELD, "payload must be a JSON object")
    # in a tagged union the location starts with the type, e.g. `fall.confidence`
    where = ".".join(str(p) for p in first["loc"]) or "(payload)"
    reason = Reason.IMPOSSIBLE_VALUE if first["type"] in _RANGE_ERRORS else Reason.INVALID_FIELD
    return CodecError(reason, f"{where}: {first['msg']}"[:200])
