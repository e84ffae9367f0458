"""`--faults`: each fault does what it says, and the gateway notices it."""

from __future__ import annotations

import collections
import itertools
from datetime import datetime
from pathlib import Path

import pytest

from carehub.site import SiteIndex
from firmware_sim.faults import DISCONNECT, SILENCE, Faults, inject
from firmware_sim.world import Emission
from gateway.store.sqlite import SqliteEventStore
from tests.sim.support import body, by_device, ingest_all, night_of, rejected

SEQ_DEVICES = {"fall-a1", "fall-b1", "diaper-r001", "med-r001", "med-r00x", "bed-r001"}
"""carehub-v1 devices of the test site: they number their messages."""


@pytest.fixture(scope="module")
def clean(test_index: SiteIndex) -> list[Emission]:
    """One seeded night of the test site, without faults."""
    return night_of(test_index)


def faulty(clean: list[Emission], **rates: float) -> list[Emission]:
    return list(inject(iter(clean), Faults(**rates), seed=3))


def device_time(e: Emission) -> float:
    return datetime.fromisoformat(body(e)["ts"].replace("Z", "+00:00")).timestamp()


def test_parse_rates_and_refuse_nonsense() -> None:
    assert Faults.parse("silent=0.05, duplicate=0.02,late") == Faults(
        silent=0.05, duplicate=0.02, late=0.1
    )
    assert str(Faults.parse("flaky=0.1,clock-skew=0.05")) == "flaky=0.1,clock_skew=0.05"
    assert not Faults.parse("").any
    for bad, why in (
        ("bogus=1", "unknown fault"),
        ("late=x", "not a number"),
        ("late=2", "between"),
    ):
        with pytest.raises(ValueError, match=why):
            Faults.parse(bad)


def test_no_faults_no_change(clean: list[Emission]) -> None:
    assert faulty(clean) == clean


def test_staff_markers_pass_untouched(clean: list[Emission]) -> None:
    markers = [e for e in clean if e.what.startswith("staff:")]
    assert markers
    everything = Faults(**{f: 1.0 for f in ("duplicate", "malformed", "clock_skew", "late")})
    out = list(inject(iter(clean), everything, seed=3))
    assert [e for e in out if e.channel == "control" and e.what.startswith("staff:")] == markers


def test_duplicates_are_the_same_message_twice_and_dropped_by_the_gateway(
    test_index: SiteIndex, tmp_path: Path, clean: list[Emission]
) -> None:
    out = faulty(clean, duplicate=0.05)
    dups = [e for e in out if e.what == "fault:duplicate"]
    mqtt = [e for e in clean if e.what != "status"]
    assert 0.03 * len(mqtt) < len(dups) < 0.07 * len(mqtt)
    assert len(out) == len(clean) + len(dups)
    for d in dups[:50]:  # right after the original: same topic, same bytes (same seq)
        i = out.index(d)
        assert (out[i - 1].topic, out[i - 1].payload) == (d.topic, d.payload)
    metrics = ingest_all(test_index, tmp_path / "f.db", out).metrics()
    assert metrics["carehub_gateway_duplicates_total"] == len(dups)
    assert "carehub_gateway_seq_gaps_total" not in metrics


def test_malformed_payloads_are_dead_lettered_and_leave_seq_gaps(
    test_index: SiteIndex, tmp_path: Path, clean: list[Emission]
) -> None:
    out = faulty(clean, malformed=0.02)
    bad = [e for e in out if e.what == "fault:malformed"]
    assert len(bad) > 50
    ingestor = ingest_all(test_index, tmp_path / "f.db", out)
    reasons = rejected(ingestor.metrics())
    assert sum(reasons.values()) == len(bad)
    assert {"not_json", "invalid_field", "oversize"} <= set(reasons)
    # each broken message took a seq with it: the gateway counts those as lost
    lost = sum(1 for e in bad if e.device_id in SEQ_DEVICES)
    assert ingestor.metrics()["carehub_gateway_seq_gaps_total"] >= lost * 0.9
    store = SqliteEventStore(tmp_path / "f.db")
    try:
        gaps = {d: s.gaps for d, s in store.seq_states().items()}
    finally:
        store.close()
    assert sum(gaps.values()) > 0


def test_late_messages_keep_their_device_time(clean: list[Emission]) -> None:
    out = faulty(clean, late=0.02)
    late = [e for e in out if e.what == "fault:late"]
    assert len(late) > 50
    for e in late:
        if b'"ts"' in e.payload:
            delay = e.at.timestamp() - device_time(e)
            assert 58 <= delay <= 603  # made then, arrives 1-10 min later (± clock offset)
    assert [e.at for e in out] == sorted(e.at for e in out)  # still in send order


def test_reordered_messages_overtake_within_a_device(
    test_index: SiteIndex, tmp_path: Path, clean: list[Emission]
) -> None:
    out = faulty(clean, reorder=0.02)
    swapped = [e for e in out if e.what == "fault:reorder"]
    assert len(swapped) > 50
    backwards = 0
    for device_id, items in by_device(out).items():
        if device_id not in SEQ_DEVICES:
            continue
        seqs = [body(e)["seq"] for e in items if e.channel == "mqtt" and e.what != "status"]
        backwards += sum(1 for a, b in itertools.pairwise(seqs) if b < a)
    assert backwards > 20
    assert [e.at for e in out] == sorted(e.at for e in out)
    metrics = ingest_all(test_index, tmp_path / "r.db", out).metrics()
    assert sum(rejected(metrics).values()) == 0  # a late arrival is not an error


def test_silent_devices_stop_and_their_will_says_offline(
    test_index: SiteIndex, tmp_path: Path, clean: list[Emission]
) -> None:
    out = faulty(clean, silent=1.0)
    metrics = ingest_all(test_index, tmp_path / "q.db", out).metrics()
    assert metrics['carehub_gateway_status_total{status="offline"}'] == 12  # every MQTT device
    last = max(e.at for e in clean)
    for device_id, items in by_device(out).items():
        if not device_id:  # digital checks: about a resident, not a device
            continue
        cut = next(i for i, e in enumerate(items) if e.what == SILENCE)
        assert items[cut].channel == "control"
        after = [e for e in items[cut + 1 :] if not e.what.startswith("staff:")]
        assert all(e.what == "status" for e in after)  # nothing but the will
        assert items[cut].at < last
        if device_id != "med-r004":  # the webhook device has no MQTT will
            assert after[0].payload.replace(b'{"state":"', b"").startswith(b"offline")
            assert after[0].retain


def test_skewed_clocks_are_hours_off_and_still_accepted(
    test_index: SiteIndex, tmp_path: Path, clean: list[Emission]
) -> None:
    out = faulty(clean, clock_skew=1.0)
    skewed = [e for e in out if e.what == "fault:clock_skew" and b'"ts"' in e.payload]
    assert skewed
    for e in skewed[:100]:
        assert 1.9 * 3600 < abs(device_time(e) - e.at.timestamp()) < 6.1 * 3600
    wetsense = [e for e in out if e.device_id == "diaper-r002" and e.channel == "mqtt"]
    wetsense = [e for e in wetsense if e.what != "status"]
    assert all(e.what == "fault:clock_skew" for e in wetsense)
    metrics = ingest_all(test_index, tmp_path / "s.db", out).metrics()
    assert sum(rejected(metrics).values()) == 0  # hours off, but within the 24 h the hub allows


def test_flaky_links_drop_and_deliver_what_waited_in_order(
    test_index: SiteIndex, tmp_path: Path, clean: list[Emission]
) -> None:
    out = faulty(clean, flaky=1.0)
    calm = ingest_all(test_index, tmp_path / "calm.db", clean).metrics()
    metrics = ingest_all(test_index, tmp_path / "flaky.db", out).metrics()

    def arrived(m: dict[str, float]) -> float:
        return m["carehub_gateway_messages_accepted_total"] + m.get(
            "carehub_gateway_duplicates_total", 0
        )

    # late, but all of it; a seqless device's backlog, sent at once, may repeat itself within
    # the gateway's 10-second window and count as redelivered
    assert arrived(metrics) == arrived(calm)
    assert metrics['carehub_gateway_status_total{status="offline"}'] > 10
    drops = [e for e in out if e.what == DISCONNECT]
    assert len(drops) > 10
    real = [e for e in out if e.channel != "control" and e.what != "status"]
    made = [e for e in clean if e.channel != "control" and e.what != "status"]
    assert sorted(e.payload for e in real) == sorted(e.payload for e in made)  # nothing lost
    words: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for e in out:
        if e.what == "status":
            words[e.topic]["offline" if b"offline" in e.payload else "online"] += 1
    for counts in words.values():  # each drop: the will says offline, then online again
        assert counts["online"] == counts["offline"] + 1
    for device_id in {e.device_id for e in drops}:
        sent = [e.payload for e in real if e.device_id == device_id]
        assert sent == [e.payload for e in made if e.device_id == device_id]  # late, in order
    assert [e.at for e in out] == sorted(e.at for e in out)
