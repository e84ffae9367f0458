"""The simulated home as a pure stream: deterministic, decodable by the gateway, lifelike."""

from __future__ import annotations

import collections
import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from carehub.site import Site, SiteIndex
from firmware_sim.encoders import NATIVE_SEQ_MODULUS, DeviceState, encode
from firmware_sim.world import CareHome, Emission, Pacing
from tests.sim.support import NIGHT, body, by_device, ingest_all, night_of

MODELS = {
    "carehub-v1",
    "wetsense-s2",
    "zigbee-water-leak",
    "zigbee-bed-mat",
    "mmwave-radar",
    "medcloud-webhook",
    "callpoint-presence",
}


def test_same_seed_same_home_byte_for_byte(test_index: SiteIndex) -> None:
    first = night_of(test_index, seed=7)
    again = night_of(test_index, seed=7)
    assert first == again  # every field: time, topic, payload, qos, retain, what
    assert len(first) > 5000
    other = night_of(test_index, seed=8)
    assert [e.payload for e in other] != [e.payload for e in first]
    assert [e.at for e in first] == sorted(e.at for e in first)


def test_every_model_speaks_and_the_gateway_decodes_it_all(
    test_index: SiteIndex, tmp_path: Path
) -> None:
    emissions = night_of(test_index, nights=2)
    ingestor = ingest_all(test_index, tmp_path / "x.db", [])
    outcomes: collections.Counter[str] = collections.Counter()
    types: dict[str, set[str]] = collections.defaultdict(set)
    for e in emissions:
        if e.channel == "control":
            continue
        result = ingestor.ingest(e.topic, e.payload, e.at + timedelta(milliseconds=80))
        outcomes[result.outcome.value] += 1
        assert not result.rejected, (e, result.reason, result.detail)
        for event in result.events:
            types[event.device_id].add(event.type.value)
    ingestor.close()
    models = {d.id: d.model for d in test_index.site.devices}
    status = [e for e in emissions if e.what == "status"]
    assert outcomes["status"] == len(status) == 12  # every MQTT device announced itself
    # a radar's report on a change may repeat its last one within the gateway's window
    assert outcomes["duplicate"] <= 5
    assert outcomes["accepted"] > 0.99 * (len(emissions) - len(status))
    assert {models[d] for d in types} == MODELS
    assert {"heartbeat", "saturation", "detached", "attached"} <= types["diaper-r001"]
    assert {"saturation", "detached"} <= types["diaper-r002"]  # wetsense states
    assert "saturation" in types["diaper-r003"]  # water-leak wet/dry
    assert {"dose_due", "dispensed", "heartbeat"} <= types["med-r004"]  # medcloud, webhook path
    assert {"dose_due", "dispensed", "taken"} <= types["med-r001"]
    assert "heartbeat" in types["fall-a2"]  # the radar
    assert "heartbeat" in types["fall-a1"]
    assert {"in_bed", "out_of_bed"} <= types["bed-r001"]  # native bed sensor
    assert {"in_bed", "out_of_bed", "heartbeat"} <= types["bed-r003"]  # the Zigbee mat
    assert "heartbeat" in types["presence-a1"]  # native presence
    assert "heartbeat" in types["presence-b1"]  # the nurse-call button's ALIVE


def test_heartbeats_every_minute_with_draining_battery_rssi_and_drifting_clocks(
    test_index: SiteIndex,
) -> None:
    emissions = night_of(test_index, nights=2)
    beats = [e for e in emissions if e.device_id == "fall-a1" and e.what == "heartbeat"]
    gaps = [(b.at - a.at).total_seconds() for a, b in itertools.pairwise(beats)]
    assert all(58 <= g <= 62 for g in gaps)
    bodies = [body(e) for e in beats]
    assert bodies[-1]["battery"] < bodies[0]["battery"]
    assert all(-100 <= b["rssi"] <= -30 for b in bodies)
    seqs = [b["seq"] for b in bodies]
    assert seqs == sorted(seqs)
    # each device's clock is a little off, its own way (the gateway keeps received_at too)
    offsets: dict[str, float] = {}
    for e in emissions:
        if e.topic.endswith("/up") and b'"ts"' in e.payload and e.device_id not in offsets:
            ts = datetime.fromisoformat(body(e)["ts"].replace("Z", "+00:00"))
            offsets[e.device_id] = (ts - e.at).total_seconds()
    assert all(abs(v) < 3 for v in offsets.values())
    assert len(set(offsets.values())) == len(offsets) >= 3


def test_seq_counts_up_per_message_and_wraps_at_2_31() -> None:
    dev = DeviceState("fall-x", "fall", "carehub-v1", "t/up", 60, seq=NATIVE_SEQ_MODULUS - 2)
    seqs = []
    for i in range(3):
        (wire,) = encode(dev, 1.8e9 + i, "heartbeat", {"battery": 90, "rssi": -60})
        seqs.append(json.loads(wire.payload)["seq"])
    assert seqs == [NATIVE_SEQ_MODULUS - 1, 0, 1]


def test_residents_fall_rarely_and_staff_close_the_loop(demo_site: Site) -> None:
    index = SiteIndex(demo_site)
    emissions = night_of(index, nights=12, pacing=Pacing(night=2.9, day=60))
    falls = [e for e in emissions if e.what == "fall" and _confident(e)]
    fall_rooms = {d.id for d in demo_site.devices if d.kind.value == "fall"}
    fallen = {e.device_id for e in falls}
    assert 0 < len(fallen) < len(fall_rooms) / 2  # some rooms see falls, most never
    devices = by_device(emissions)
    for device_id in fallen:  # repeated every 30 s with a new seq until cleared by staff
        items = devices[device_id]
        first = next(i for i, e in enumerate(items) if e.what == "fall" and _confident(e))
        run = list(itertools.takewhile(lambda e: e.what != "fall_cleared", items[first:]))
        repeats = [e for e in run if e.what == "fall"]
        assert len(repeats) > 1
        if b'"seq"' in repeats[0].payload:
            assert len(repeats) > 3
            assert len({body(e)["seq"] for e in repeats}) == len(repeats)
            assert all((b.at - a.at).total_seconds() == 30 for a, b in itertools.pairwise(repeats))
        staff = [e for e in emissions if e.device_id == device_id and e.what.startswith("staff:")]
        assert {e.what for e in staff} == {"staff:ack", "staff:resolve"}
    # diapers fill in steps and are changed: detached, attached, a fresh reading ≈ 0
    changes = [e for e in emissions if e.what == "detached"]
    assert len(changes) > 40
    fresh = []
    for items in devices.values():
        for a, b in itertools.pairwise(items):
            if a.what == "attached" and b.what == "saturation" and b'"v":1' in b.payload:
                fresh.append(body(b)["level"])
    assert fresh
    assert max(fresh) <= 4
    # the night dose around 22:00 local; mostly taken, sometimes late or missed
    due = [e for e in emissions if e.what == "dose_due"]
    taken = [e for e in emissions if e.what == "taken"]
    assert len(taken) >= 0.8 * len(due) > 0
    assert {e.at.astimezone(index.tz).hour for e in due} == {22}
    assert any(e.what == "missed" for e in emissions) or any(e.what == "fault" for e in emissions)


def _confident(e: Emission) -> bool:
    b = body(e)
    return float(b.get("confidence", 0)) >= 0.6 or b.get("fall_state") == 1


def test_saturation_every_5_min_and_at_once_on_a_change_of_10(test_index: SiteIndex) -> None:
    sat = [
        e
        for e in night_of(test_index, nights=2)
        if e.device_id == "diaper-r001" and e.what == "saturation"
    ]
    levels = [body(e)["level"] for e in sat]
    gaps = [(b.at - a.at).total_seconds() for a, b in itertools.pairwise(sat)]
    assert sum(1 for g in gaps if abs(g - 300) < 1) > len(gaps) / 2  # the 5-minute report
    assert any(g < 299 for g in gaps)  # reports between ticks: a rise of 10 or a fresh diaper
    rises = [b - a for a, b in itertools.pairwise(levels) if b > a]
    assert rises  # it fills in steps, and is changed (back to about 0)
    assert all(0 <= v <= 100 for v in levels)


def test_sleep_and_wakefulness_show_on_the_radar(test_index: SiteIndex) -> None:
    radar = [
        body(e)
        for e in night_of(test_index, nights=2, lead_in_h=10)
        if e.device_id == "fall-a2" and e.what == "heartbeat"
    ]
    assert {r["movement"] for r in radar} == {0, 1, 2}  # out, asleep/still, up and about
    assert {r["presence"] for r in radar} == {0, 1}


def test_runs_on_forever_days_quieter_than_nights(demo_site: Site) -> None:
    index = SiteIndex(demo_site)
    start = index.night_bounds(NIGHT)[0]
    home = CareHome(demo_site, start, seed=3, pacing=Pacing(night=2.9, day=60))
    stream = home.emissions(None)  # no end
    took = list(itertools.takewhile(lambda e: e.at < start + timedelta(days=3), stream))
    assert took[-1].at > start + timedelta(days=2, hours=23)
    visits = {True: 0, False: 0}  # alarms that brought someone, at night and by day
    for e in took:
        if e.what == "staff:ack":
            visits[index.is_night(e.at)] += 1
    assert any(e.what == "heartbeat" and not index.is_night(e.at) for e in took)
    assert visits[False] > 0
    # 9 night hours against 15 day hours: by the hour the night keeps the staff busier, the
    # day round changing diapers before they alarm
    assert visits[True] / 9 > 1.5 * visits[False] / 15


def test_a_start_inside_the_night_begins_there(test_index: SiteIndex) -> None:
    start = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    home = CareHome(test_index.site, start, seed=1)
    first = list(itertools.islice(home.emissions(start + timedelta(hours=1)), 20))
    assert first[0].at >= start
    assert first[0].what == "status"
    assert first[0].retain


def test_pacing_is_checked() -> None:
    with pytest.raises(ValueError, match="supervision"):
        Pacing(night=3)
    with pytest.raises(ValueError, match="positive"):
        Pacing(day=0)


def test_residents_get_in_and_out_of_bed_like_people(test_index: SiteIndex) -> None:
    """In at bedtime, out in the morning, short bathroom trips between; the same each run."""
    emissions = night_of(test_index, seed=3, nights=8)
    assert emissions == night_of(test_index, seed=3, nights=8)
    moves = [
        e for e in emissions if e.device_id == "bed-r001" and e.what in ("in_bed", "out_of_bed")
    ]
    whats = [e.what for e in moves]
    assert all(a != b for a, b in itertools.pairwise(whats))  # each a change
    assert whats.count("in_bed") >= 7  # to bed every night
    tz = test_index.tz
    trips = [
        (b.at - a.at).total_seconds() / 60
        for a, b in itertools.pairwise(moves)
        if a.what == "out_of_bed" and b.at - a.at < timedelta(hours=3)
    ]
    assert trips, "no bathroom trip in eight nights"
    assert sorted(trips)[len(trips) // 2] < 10  # most trips are short
    rises = [e.at.astimezone(tz).hour for e in moves if e.what == "out_of_bed"]
    assert {5, 6, 7, 8} & set(rises)  # up in the morning
