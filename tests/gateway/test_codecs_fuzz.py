"""Property tests: no payload, however wrong, makes a codec or the pipeline raise."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carehub.events import EventType
from carehub.site import DeviceKind, SiteIndex
from gateway.codecs import MAX_PAYLOAD_BYTES, CodecError, DecodeContext, Decoded, registry
from gateway.pipeline import Ingestor, IngestOutcome
from gateway.store.sqlite import SqliteEventStore

T0 = datetime(2026, 11, 22, 22, 0, tzinfo=UTC)
MODELS = sorted(registry())
DEVICE_FOR_MODEL = {
    "carehub-v1": ("fall-a1", DeviceKind.FALL, "carehub/testhjem/devices/fall-a1/up"),
    "wetsense-s2": ("diaper-r002", DeviceKind.DIAPER, "carehub/testhjem/devices/diaper-r002/up"),
    "zigbee-water-leak": ("diaper-r003", DeviceKind.DIAPER, "zigbee2mqtt/bed-b1-window"),
    "zigbee-bed-mat": ("bed-r003", DeviceKind.BED, "zigbee2mqtt/bedmat-b1"),
    "mmwave-radar": ("fall-a2", DeviceKind.FALL, "carehub/testhjem/devices/fall-a2/up"),
    "medcloud-webhook": ("med-r004", DeviceKind.MEDICATION, "carehub/testhjem/webhooks/medcloud"),
    "callpoint-presence": (
        "presence-b1",
        DeviceKind.PRESENCE,
        "carehub/testhjem/devices/presence-b1/up",
    ),
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(
        ["fall", "heartbeat", "saturation", "DOSE_DUE", "ok", "2026-11-22T22:00:00Z"]
    ),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=20,
)
keys = st.sampled_from(
    [
        "v",
        "seq",
        "ts",
        "type",
        "confidence",
        "level",
        "battery",
        "rssi",
        "dose_id",
        "due",
        "code",
        "dev",
        "cnt",
        "time",
        "state",
        "in_state_s",
        "bat_mv",
        "water_leak",
        "occupancy",
        "presence",
        "movement",
        "fall_state",
        "event_id",
        "device",
        "occurred_at",
        "event",
        "dose",
        "fault_code",
        "unit",
        "n",
        "t",
        "ev",
        "tag",
        "batt",
    ]
)
# objects shaped like device messages, so the fuzzer gets past the first field often
plausible = st.dictionaries(keys, json_values, max_size=10)


def _check_decode(model: str, payload: bytes) -> None:
    device_id, kind, _topic = DEVICE_FOR_MODEL[model]
    ctx = DecodeContext(device_id, kind, T0)
    try:
        out = registry()[model].decode(payload, ctx)
    except CodecError:
        return
    assert isinstance(out, list)
    for d in out:
        assert isinstance(d, Decoded)
        assert isinstance(d.type, EventType)
        json.dumps(d.data)  # canonical data must be JSON-serialisable


@pytest.mark.parametrize("model", MODELS)
@settings(max_examples=150, deadline=None)
@given(payload=st.binary(max_size=600))
def test_decoders_survive_arbitrary_bytes(model: str, payload: bytes) -> None:
    _check_decode(model, payload)


@pytest.mark.parametrize("model", MODELS)
@settings(max_examples=150, deadline=None)
@given(value=json_values | plausible)
def test_decoders_survive_arbitrary_json(model: str, value: Any) -> None:
    _check_decode(model, json.dumps(value).encode())


@pytest.mark.parametrize("model", MODELS)
def test_oversize_is_refused_before_parsing(model: str) -> None:
    device_id, kind, _topic = DEVICE_FOR_MODEL[model]
    with pytest.raises(CodecError) as info:
        registry()[model].decode(b" " * (MAX_PAYLOAD_BYTES + 1), DecodeContext(device_id, kind, T0))
    assert info.value.reason == "oversize"


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(model=st.sampled_from(MODELS), value=plausible | json_values, raw=st.binary(max_size=64))
def test_pipeline_never_raises(
    test_index: SiteIndex,
    tmp_path_factory: pytest.TempPathFactory,
    model: str,
    value: Any,
    raw: bytes,
) -> None:
    ingestor = _shared_ingestor(test_index, tmp_path_factory)
    _device, _kind, topic = DEVICE_FOR_MODEL[model]
    for payload in (json.dumps(value).encode(), raw):
        result = ingestor.ingest(topic, payload, T0)
        assert result.outcome in set(IngestOutcome)
        if result.rejected:
            assert result.reason is not None
            assert result.reason != "internal_error", result.detail


_INGESTORS: dict[int, Ingestor] = {}


def _shared_ingestor(index: SiteIndex, factory: pytest.TempPathFactory) -> Ingestor:
    """One store for all examples; a file per example would make the test slow."""
    key = id(index)
    if key not in _INGESTORS:
        _INGESTORS[key] = Ingestor(index, SqliteEventStore(factory.mktemp("fuzz") / "f.db"))
    return _INGESTORS[key]


@pytest.mark.long
@pytest.mark.parametrize("model", MODELS)
@settings(max_examples=5000, deadline=None)
@given(value=json_values | plausible)
def test_decoders_survive_many_more_json(model: str, value: Any) -> None:
    _check_decode(model, json.dumps(value).encode())
