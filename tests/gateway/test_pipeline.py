"""The ingest pipeline in-process: dedupe, gaps, wrap, enrichment, rejections, status."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from carehub.events import EventType, event_id_for
from carehub.site import SiteIndex
from gateway.codecs.base import Decoded
from gateway.pipeline import (
    LATE_WINDOW,
    MAX_SEQ_GAP,
    SEQLESS_DUPLICATE_WINDOW,
    Ingestor,
    IngestOutcome,
    _decoded_digest,
    _raw_digest,
)
from gateway.store.sqlite import SqliteEventStore
from tests.gateway.conftest import SITE, T0, native, up


def stored(store: SqliteEventStore, device_id: str | None = None) -> list[str]:
    """Event ids stored, after a flush."""
    ids = [
        e.device_id
        for e in store.query_events(SITE, T0 - timedelta(days=400), T0 + timedelta(days=400))
    ]
    return [d for d in ids if device_id is None or d == device_id]


def test_accepts_and_enriches_a_native_fall(ingestor: Ingestor) -> None:
    result = ingestor.ingest(up("fall-a1"), native(7, "fall", confidence=0.93), T0)
    assert result.outcome is IngestOutcome.ACCEPTED
    assert result.device_id == "fall-a1"
    assert ingestor.metrics()["carehub_gateway_messages_accepted_total"] == 1
    assert ingestor.metrics()["carehub_gateway_events_total"] == 1
    (event,) = result.events
    assert event.event_id == event_id_for(SITE, "fall-a1", 7)
    assert (event.kind, event.type, event.seq) == ("fall", "fall", 7)
    assert event.data == {"confidence": 0.93}
    # a room-bound fall sensor in a single room counts for that room's one resident
    assert (event.room, event.resident_id) == ("a-1", "r-001")


def test_shared_room_has_no_single_resident(ingestor: Ingestor) -> None:
    (event,) = ingestor.ingest(up("fall-b1"), native(1, "fall", confidence=0.8), T0).events
    assert (event.room, event.resident_id) == ("b-1", None)


def test_resident_bound_device_gets_the_residents_room(ingestor: Ingestor) -> None:
    (event,) = ingestor.ingest(up("diaper-r001"), native(1, "saturation", level=55), T0).events
    assert (event.resident_id, event.room) == ("r-001", "a-1")


@pytest.mark.parametrize(
    ("ts", "resident", "room"),
    [
        (datetime(2026, 10, 31, 22, 59, tzinfo=UTC), "r-002", "a-2"),  # 23:59 local, Oct 31
        (datetime(2026, 10, 31, 23, 0, tzinfo=UTC), "r-003", "b-1"),  # local midnight Nov 1
        (datetime(2026, 11, 20, 12, 0, tzinfo=UTC), "r-003", "b-1"),
    ],
)
def test_binding_follows_the_device_time_across_a_move(
    ingestor: Ingestor, ts: datetime, resident: str, room: str
) -> None:
    result = ingestor.ingest(up("med-r00x"), native(1, "taken", ts, dose_id="d1"), T0)
    (event,) = result.events
    assert (event.resident_id, event.room) == (resident, room)


def test_duplicate_seq_is_dropped_and_survives_a_restart(
    test_index: SiteIndex, db_path: Path
) -> None:
    first = Ingestor(test_index, SqliteEventStore(db_path))
    payload = native(42, "heartbeat", battery=80, rssi=-60)
    assert first.ingest(up("fall-a1"), payload, T0).accepted
    assert first.ingest(up("fall-a1"), payload, T0 + timedelta(seconds=1)).duplicate
    first.close()
    second = Ingestor(test_index, SqliteEventStore(db_path))
    again = second.ingest(up("fall-a1"), payload, T0 + timedelta(minutes=5))
    assert again.duplicate
    assert again.duplicate_of == event_id_for(SITE, "fall-a1", 42)
    assert again.device_id == "fall-a1"
    assert second.metrics()["carehub_gateway_duplicates_total"] == 1
    second.close()
    check = SqliteEventStore(db_path)
    assert len(stored(check)) == 1
    check.close()


def test_unflushed_events_are_lost_with_a_crash_and_accepted_again(
    test_index: SiteIndex, db_path: Path
) -> None:
    store = SqliteEventStore(db_path)
    crashed = Ingestor(test_index, store)
    assert crashed.ingest(up("fall-a1"), native(1, "fall_cleared"), T0).accepted
    store.abandon()  # no flush: the broker still holds the unacknowledged message
    fresh = Ingestor(test_index, SqliteEventStore(db_path))
    assert fresh.ingest(up("fall-a1"), native(1, "fall_cleared"), T0).accepted
    fresh.close()


def test_gaps_are_counted_and_late_arrivals_fill_them(
    ingestor: Ingestor, store: SqliteEventStore
) -> None:
    for seq in (1, 2, 5):
        assert ingestor.ingest(up("fall-a1"), native(seq, "fall_cleared"), T0).accepted
    state = ingestor.seq_state("fall-a1")
    assert state is not None
    assert (state.last_seq, state.gaps) == (5, 2)
    assert ingestor.ingest(up("fall-a1"), native(3, "fall_cleared"), T0).accepted  # late
    state = ingestor.seq_state("fall-a1")
    assert state is not None
    assert (state.last_seq, state.gaps) == (5, 1)
    assert ingestor.ingest(up("fall-a1"), native(8, "fall_cleared"), T0).accepted  # 6, 7 lost
    assert ingestor.ingest(up("fall-a1"), native(7, "fall_cleared"), T0).accepted  # one late
    state = ingestor.seq_state("fall-a1")
    assert state is not None
    assert (state.last_seq, state.gaps, state.resets) == (8, 2, 0)  # gaps add up
    ingestor.flush()
    assert store.counters()['carehub_gateway_seq_gaps{device_id="fall-a1"}'] == 2
    assert ingestor.metrics()["carehub_gateway_seq_gaps_total"] == 4


def test_native_seq_wraps_at_2_pow_31_without_a_gap(ingestor: Ingestor) -> None:
    top = 2**31 - 1
    assert ingestor.ingest(up("fall-a1"), native(top - 1, "fall_cleared"), T0).accepted
    assert ingestor.ingest(up("fall-a1"), native(top, "fall_cleared"), T0).accepted
    assert ingestor.ingest(up("fall-a1"), native(0, "fall_cleared"), T0).accepted
    assert ingestor.ingest(up("fall-a1"), native(2, "fall_cleared"), T0).accepted
    state = ingestor.seq_state("fall-a1")
    assert state is not None
    assert (state.last_seq, state.gaps, state.resets) == (2, 1, 0)
    assert ingestor.ingest(up("fall-a1"), native(2**31, "fall_cleared"), T0).rejected


def wetsense(cnt: int, when: datetime, state: str = "ok") -> bytes:
    return json.dumps(
        {
            "dev": "diaper-r002",
            "cnt": cnt,
            "time": int(when.timestamp()),
            "state": state,
            "in_state_s": 10,
            "bat_mv": 2900,
        }
    ).encode()


def test_wetsense_counter_wraps_at_65536_and_reused_cnt_is_not_a_duplicate(
    ingestor: Ingestor,
) -> None:
    topic = up("diaper-r002")
    first = ingestor.ingest(topic, wetsense(0, T0), T0)
    assert first.accepted
    for i, cnt in enumerate((65534, 65535, 0, 1)):
        when = T0 + timedelta(days=50, minutes=i)
        assert ingestor.ingest(topic, wetsense(cnt, when), when).accepted, cnt
    state = ingestor.seq_state("diaper-r002")
    assert state is not None
    assert state.gaps == 0
    assert state.last_seq == 1
    # cnt 0 came twice 50 days apart with different content: two distinct events
    again = T0 + timedelta(days=50, minutes=2)
    assert ingestor.ingest(topic, wetsense(0, again), again + timedelta(seconds=3)).duplicate


def test_a_counter_reset_is_not_counted_as_lost_messages(ingestor: Ingestor) -> None:
    assert ingestor.ingest(up("fall-a1"), native(5000, "fall_cleared"), T0).accepted
    later = T0 + timedelta(hours=1)
    result = ingestor.ingest(up("fall-a1"), native(0, "fall_cleared", later), later)
    assert result.accepted
    state = ingestor.seq_state("fall-a1")
    assert state is not None
    assert (state.last_seq, state.gaps, state.resets) == (0, 0, 1)
    jump = ingestor.ingest(up("fall-a1"), native(MAX_SEQ_GAP + 5, "fall_cleared"), later)
    assert jump.accepted
    state = ingestor.seq_state("fall-a1")
    assert state is not None
    assert (state.gaps, state.resets) == (0, 2)
    assert ingestor.metrics()["carehub_gateway_seq_resets_total"] == 2


def test_seq_reused_with_other_content_after_a_reboot_is_stored(
    ingestor: Ingestor, store: SqliteEventStore
) -> None:
    a = ingestor.ingest(up("fall-a1"), native(3, "fall", confidence=0.7), T0)
    later = T0 + timedelta(minutes=10)
    b = ingestor.ingest(up("fall-a1"), native(3, "fall", later, confidence=0.7), later)
    assert a.accepted
    assert b.accepted
    assert a.events[0].event_id != b.events[0].event_id
    state = ingestor.seq_state("fall-a1")
    assert state is not None
    assert (state.last_seq, state.gaps, state.resets) == (3, 0, 1)  # the counter restarted
    ingestor.flush()
    assert len(stored(store, "fall-a1")) == 2


def test_seqless_redelivery_is_a_duplicate_but_a_later_repeat_is_not(
    ingestor: Ingestor, store: SqliteEventStore
) -> None:
    topic, payload = "zigbee2mqtt/bed-b1-window", b'{"water_leak": false, "battery": 90}'
    first = ingestor.ingest(topic, payload, T0)
    assert first.accepted
    soon = ingestor.ingest(topic, payload, T0 + timedelta(seconds=2))
    assert (soon.outcome, soon.device_id) == (IngestOutcome.DUPLICATE, "diaper-r003")
    assert ingestor.ingest(topic, payload, T0 + SEQLESS_DUPLICATE_WINDOW).duplicate  # the edge
    repeat = ingestor.ingest(topic, payload, T0 + timedelta(seconds=60))
    assert repeat.accepted
    assert repeat.events[0].event_id != first.events[0].event_id  # two events, both stored
    ingestor.flush()
    assert len(stored(store, "diaper-r003")) == 2
    # the broker's DUP flag marks a redelivery however late it comes
    late = T0 + timedelta(minutes=30)
    assert ingestor.ingest(topic, payload, late, redelivered=True).duplicate
    # replaying the same message with its original received_at (import) changes nothing
    replay = ingestor.ingest(topic, payload, T0)
    assert replay.duplicate
    assert (replay.device_id, replay.duplicate_of) == ("diaper-r003", first.events[0].event_id)


def test_radar_fall_then_cleared_then_heartbeat(ingestor: Ingestor) -> None:
    topic = up("fall-a2")
    types = []
    for i, fall_state in enumerate((0, 1, 1, 0, 0)):
        when = T0 + timedelta(seconds=30 * i)
        body = {"presence": 1, "movement": 1, "fall_state": fall_state}
        result = ingestor.ingest(topic, json.dumps(body).encode(), when)
        assert result.accepted
        types.append(result.events[0].type.value)
    assert types == ["heartbeat", "fall", "fall", "fall_cleared", "heartbeat"]


def test_radar_fall_state_survives_a_restart(test_index: SiteIndex, db_path: Path) -> None:
    first = Ingestor(test_index, SqliteEventStore(db_path))
    first.ingest(up("fall-a2"), b'{"presence": 1, "movement": 0, "fall_state": 1}', T0)
    first.close()
    second = Ingestor(test_index, SqliteEventStore(db_path))
    later = T0 + timedelta(seconds=30)
    result = second.ingest(up("fall-a2"), b'{"presence": 1, "movement": 2, "fall_state": 0}', later)
    assert result.events[0].type.value == "fall_cleared"
    second.close()


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (up("fall-a1"), b"not json", "not_json"),
        (up("fall-a1"), b"\xff\xfe\x00", "not_json"),
        (up("fall-a1"), b"[1, 2]", "invalid_field"),
        (up("fall-a1"), b'{"v": 1}' + b" " * 5000, "oversize"),
        (up("nobody"), native(1, "fall", confidence=0.5), "unknown_device"),
        (up("fall-a1"), native(1, "explode"), "unknown_type"),
        (up("fall-a1"), native(1, "saturation", level=50), "type_not_allowed"),
        (up("fall-a1"), native(1, "fall", confidence="high"), "invalid_field"),
        (up("fall-a1"), native(1, "fall"), "invalid_field"),
        (up("fall-a1"), native(-1, "fall_cleared"), "impossible_value"),
        (up("fall-a1"), native(1, "fall", confidence=1.5), "impossible_value"),
        (up("diaper-r001"), native(1, "saturation", level=101), "impossible_value"),
        (up("fall-a1"), native(1, "heartbeat", battery=250), "impossible_value"),
        (up("fall-a1"), native(1, "fall_cleared", T0 + timedelta(hours=25)), "future_ts"),
        (
            up("fall-a1"),
            native(1, "fall_cleared", datetime(1970, 1, 1, tzinfo=UTC)),
            "impossible_value",
        ),
        (
            up("fall-a1"),
            b'{"v":1,"seq":1,"ts":"2026-11-22T22:00:00","type":"fall_cleared"}',
            "invalid_field",
        ),
        (
            up("fall-a1"),
            b'{"v":2,"seq":1,"ts":"2026-11-22T22:00:00Z","type":"fall_cleared"}',
            "invalid_field",
        ),
        (f"carehub/{SITE}/devices/fall-a1/down", native(1, "fall_cleared"), "wrong_topic"),
        ("carehub/other-site/devices/fall-a1/up", native(1, "fall_cleared"), "wrong_topic"),
        (f"carehub/{SITE}/devices/fall-a1/status", b"sleeping", "invalid_field"),
        (f"carehub/{SITE}/webhooks/medcloud", b'{"device": "fall-a1"}', "wrong_topic"),
    ],
)
def test_rejections_are_dead_lettered_with_their_reason(
    ingestor: Ingestor, store: SqliteEventStore, topic: str, payload: bytes, reason: str
) -> None:
    result = ingestor.ingest(topic, payload, T0)
    assert result.rejected
    assert result.reason == reason, result.detail
    assert result.dead_letter is not None
    ingestor.flush()
    (letter,) = store.dead_letters(10)
    assert (letter.topic, letter.reason, letter.received_at) == (topic, reason, T0)
    assert ingestor.metrics()[f'carehub_gateway_rejected_total{{reason="{reason}"}}'] == 1
    assert stored(store) == []


def test_dead_letter_payload_is_truncated_and_base64_when_binary(ingestor: Ingestor) -> None:
    binary = ingestor.ingest(up("fall-a1"), b"\x00\xff" * 3000, T0)
    assert binary.dead_letter is not None
    body = binary.dead_letter.to_json()
    assert body["encoding"] == "base64"
    assert body["truncated"] is True
    assert body["reason"] == "oversize"
    assert body["received_at"] == "2026-11-22T22:00:00Z"
    assert set(body) >= {"topic", "payload", "reason", "received_at"}


def test_valid_traffic_continues_after_bad_input(ingestor: Ingestor) -> None:
    assert ingestor.ingest(up("fall-a1"), b"{{{", T0).rejected
    assert ingestor.ingest(up("fall-a1"), native(1, "fall_cleared"), T0).accepted


def test_status_and_availability_update_device_state(ingestor: Ingestor) -> None:
    assert ingestor.ingest(up("fall-a1"), native(1, "heartbeat", battery=77, rssi=-70), T0).accepted
    status = ingestor.ingest(f"carehub/{SITE}/devices/fall-a1/status", b"offline", T0)
    assert status.outcome is IngestOutcome.STATUS
    avail = ingestor.ingest("zigbee2mqtt/bed-b1-window/availability", b'{"state": "online"}', T0)
    assert avail.outcome is IngestOutcome.STATUS
    states = {s.device_id: s for s in ingestor.device_states()}
    fall = states["fall-a1"]
    assert (fall.online, fall.status_source, fall.battery, fall.rssi) == (False, "status", 77, -70)
    assert (states["diaper-r003"].online, states["diaper-r003"].status_source) == (
        True,
        "availability",
    )


def test_silent_devices_go_offline_after_three_heartbeats(
    ingestor: Ingestor, store: SqliteEventStore
) -> None:
    ingestor.ingest(up("fall-a1"), native(1, "heartbeat", battery=90), T0)
    assert ingestor.check_silence(T0 + timedelta(seconds=179)) == []
    assert ingestor.check_silence(T0 + timedelta(seconds=181)) == ["fall-a1"]
    assert ingestor.check_silence(T0 + timedelta(seconds=400)) == []  # only once
    ingestor.flush()
    (state,) = store.device_states()
    assert (state.online, state.status_source) == (False, "silence")
    back = T0 + timedelta(seconds=500)
    ingestor.ingest(up("fall-a1"), native(2, "heartbeat", battery=90), back)
    (state,) = ingestor.device_states()
    assert (state.online, state.status_source, state.status_at) == (True, "message", back)


def test_wetsense_battery_becomes_device_state(ingestor: Ingestor) -> None:
    ingestor.ingest(up("diaper-r002"), wetsense(1, T0, "consider_change"), T0)
    (state,) = ingestor.device_states()
    assert state.battery == pytest.approx(83.3)


def test_flushes_by_itself_every_n_messages(test_index: SiteIndex, db_path: Path) -> None:
    store = SqliteEventStore(db_path)
    ingestor = Ingestor(test_index, store, flush_every=10)
    for seq in range(25):
        ingestor.ingest(up("fall-a1"), native(seq, "fall_cleared"), T0)
    assert len(stored(store)) == 20  # the reader sees committed rows only
    ingestor.close()


def test_retained_uplinks_are_skipped_but_retained_status_is_read(
    ingestor: Ingestor, store: SqliteEventStore
) -> None:
    """docs/devices.md, "Retained messages": the broker's replay of an uplink is old news;
    a status (a last will) and Zigbee2MQTT's availability are retained on purpose."""
    radar = f"carehub/{SITE}/devices/fall-a2/up"
    fall = b'{"presence": 1, "movement": 0, "fall_state": 1}'
    skipped = ingestor.ingest(radar, fall, T0, retained=True)
    assert skipped.outcome is IngestOutcome.SKIPPED
    assert (skipped.events, skipped.dead_letter, skipped.device_id) == ((), None, "fall-a2")
    wet = ingestor.ingest("zigbee2mqtt/bed-b1-window", b'{"water_leak": true}', T0, retained=True)
    assert wet.skipped
    assert ingestor.ingest(up("fall-a1"), native(1, "fall"), T0, retained=True).skipped
    assert ingestor.preview(radar, fall, T0, retained=True) == []
    assert len(ingestor.preview(radar, fall, T0)) == 1
    status = ingestor.ingest(f"carehub/{SITE}/devices/fall-a1/status", b"online", T0, retained=True)
    assert status.outcome is IngestOutcome.STATUS
    avail = ingestor.ingest("zigbee2mqtt/bed-b1-window/availability", b"online", T0, retained=True)
    assert avail.outcome is IngestOutcome.STATUS
    ingestor.flush()
    assert stored(store) == []
    assert ingestor.metrics()["carehub_gateway_retained_skipped_total"] == 3
    # the same radar message, live, is a fall
    assert ingestor.ingest(radar, fall, T0 + timedelta(seconds=1)).accepted


def test_a_device_clock_far_off_is_counted_and_logged_once_an_hour(
    ingestor: Ingestor, caplog: pytest.LogCaptureFixture
) -> None:
    """docs/devices.md, "Device clocks": the ts is kept, the skew is a per-device warning."""
    behind = T0 - timedelta(hours=6)
    for seq in range(1, 4):
        at = T0 + timedelta(minutes=seq)
        result = ingestor.ingest(up("fall-a1"), native(seq, "heartbeat", behind), at)
        assert result.accepted
        assert result.events[0].ts == behind
    assert ingestor.ingest(up("fall-b1"), native(1, "heartbeat", T0), T0).accepted
    ingestor.ingest(up("fall-a1"), native(9, "heartbeat", behind), T0 + timedelta(hours=2))
    metrics = ingestor.metrics()
    assert metrics['carehub_gateway_clock_skew_total{device="fall-a1"}'] == 4
    assert 'carehub_gateway_clock_skew_total{device="fall-b1"}' not in metrics
    warnings = [r for r in caplog.records if "clock is" in r.getMessage()]
    assert len(warnings) == 2  # the first, and the next after an hour


WEBHOOK = f"carehub/{SITE}/webhooks/medcloud"


def medcloud(event_id: str, indent: int | None = None) -> bytes:
    """A MedCloud webhook body (gateway/codecs/medcloud_webhook.py) for med-r004."""
    body = {
        "event_id": event_id,
        "device": "med-r004",
        "occurred_at": "2026-11-22T22:01:00Z",
        "event": "DOSE_DUE",
        "dose": {"id": "night-2026-11-22", "scheduled": "2026-11-22T22:00:00Z"},
    }
    return json.dumps(body, indent=indent).encode()


def test_a_vendor_keyed_event_is_a_duplicate_by_its_key_alone(
    test_index: SiteIndex, db_path: Path
) -> None:
    """A vendor's event id is the dedupe key (docs/devices.md): the same id again, in other
    bytes and much later, and after a restart, is a duplicate of the stored event; another
    id with the same content is a new event."""
    first = Ingestor(test_index, SqliteEventStore(db_path))
    stored_ = first.ingest(WEBHOOK, medcloud("ev-1"), T0)
    assert stored_.accepted
    (event,) = stored_.events
    later = T0 + timedelta(hours=2)
    again = first.ingest(WEBHOOK, medcloud("ev-1", indent=2), later)
    assert (again.outcome, again.device_id, again.duplicate_of) == (
        IngestOutcome.DUPLICATE,
        "med-r004",
        event.event_id,
    )
    first.close()
    second = Ingestor(test_index, SqliteEventStore(db_path))
    assert second.ingest(WEBHOOK, medcloud("ev-1"), later).duplicate_of == event.event_id
    other = second.ingest(WEBHOOK, medcloud("ev-2"), later)
    assert other.accepted
    assert other.events[0].event_id != event.event_id
    second.close()
    check = SqliteEventStore(db_path)
    assert len(stored(check, "med-r004")) == 2
    check.close()


@pytest.mark.parametrize(
    ("seqs", "gaps", "resets"),
    [
        ((1, 1 + MAX_SEQ_GAP), MAX_SEQ_GAP - 1, 0),  # the largest jump still counts as lost
        ((1, 2 + MAX_SEQ_GAP), 0, 1),  # one more is a counter reset
        ((500, 502, 502 - LATE_WINDOW), 0, 0),  # the furthest back that is late
        ((500, 502, 501 - LATE_WINDOW), 1, 1),  # one further back is a reset
    ],
)
def test_seq_windows_end_where_documented(
    ingestor: Ingestor, seqs: tuple[int, ...], gaps: int, resets: int
) -> None:
    """MAX_SEQ_GAP and LATE_WINDOW are inclusive bounds: a jump of exactly MAX_SEQ_GAP is lost
    messages and a seq exactly LATE_WINDOW behind is a late arrival."""
    for seq in seqs:
        assert ingestor.ingest(up("fall-a1"), native(seq, "fall_cleared"), T0).accepted
    state = ingestor.seq_state("fall-a1")
    assert state is not None
    assert (state.gaps, state.resets) == (gaps, resets)


def test_an_instance_sharing_a_subscription_counts_no_gaps(
    test_index: SiteIndex, store: SqliteEventStore
) -> None:
    """`count_gaps=False`: an instance that sees only a share of a device's messages does not
    report the others' seqs as lost."""
    shared = Ingestor(test_index, store, count_gaps=False)
    for seq in (1, 5):
        assert shared.ingest(up("fall-a1"), native(seq, "fall_cleared"), T0).accepted
    state = shared.seq_state("fall-a1")
    assert state is not None
    assert (state.last_seq, state.gaps) == (5, 0)
    assert shared.metrics().get("carehub_gateway_seq_gaps_total", 0) == 0


def test_device_state_keeps_what_a_message_does_not_say(ingestor: Ingestor) -> None:
    """A message without battery or rssi leaves the last known ones, and one that arrives
    with an older received_at (a replay) does not move last_seen back."""
    later = T0 + timedelta(minutes=5)
    ingestor.ingest(up("fall-a1"), native(1, "heartbeat", later, battery=77, rssi=-70), later)
    assert ingestor.ingest(up("fall-a1"), native(2, "fall", confidence=0.9), T0).accepted
    (state,) = ingestor.device_states()
    assert (state.battery, state.rssi, state.last_seen) == (77, -70, later)


def test_digests_are_stable_across_versions() -> None:
    """The dedupe digests are stored with each key and compared after a restart, an upgrade
    included: a digest that changed its form would make every redelivery of a seq'd message
    look like a restarted counter, stored twice. Pinned to their values."""
    at = datetime(2026, 11, 22, 22, 0, tzinfo=UTC)
    decoded = [
        Decoded(EventType.FALL, {"z": 1, "a": {"y": 2, "b": at}}, ts=at, seq=7),
        Decoded(EventType.HEARTBEAT, {}, ts=None, key="e:1"),
    ]
    assert _decoded_digest(decoded) == "e02668314a3cc446d6a2486be6ca7906"
    assert _raw_digest(b'{"water_leak": false}') == "505eb99a0bb66474480d703f6ec6abc6"
