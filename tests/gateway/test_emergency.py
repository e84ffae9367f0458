"""Provisional fall alarms (gateway/emergency.py): the preview says what ingest would say and
changes nothing; one alarm per device, repeats counted; cleared once nothing waits."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from carehub.site import SiteIndex
from carehub.subscriber import Delivery
from gateway.emergency import ProvisionalAlarms, Publish
from gateway.pipeline import Ingestor
from gateway.store.sqlite import SqliteEventStore

AT = datetime(2026, 11, 24, 23, 0, tzinfo=UTC)


def _fall(device: str, seq: int, confidence: float = 0.9, at: datetime = AT) -> Delivery:
    body = {
        "v": 1,
        "seq": seq,
        "ts": at.isoformat().replace("+00:00", "Z"),
        "type": "fall",
        "confidence": confidence,
    }
    topic = f"carehub/testhjem/devices/{device}/up"
    return Delivery(1, seq, 1, topic, json.dumps(body).encode(), at, False)


def _recorder() -> tuple[list[tuple[str, bytes, bool]], Publish]:
    """A publish function that keeps what it was given (the broker side is tested in
    tests/faults)."""
    sent: list[tuple[str, bytes, bool]] = []

    def publish(topic: str, payload: bytes, retain: bool) -> None:
        sent.append((topic, payload, retain))

    return sent, publish


def _count(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        conn.close()


def test_preview_says_what_ingest_says_and_changes_nothing(
    tmp_path: Path, test_index: SiteIndex
) -> None:
    store = SqliteEventStore(tmp_path / "hub.db")
    ingestor = Ingestor(test_index, store)
    item = _fall("fall-a1", 7)
    seen = ingestor.preview(item.topic, item.payload, item.received_at)
    ingestor.flush()
    assert _count(tmp_path / "hub.db") == 0
    assert ingestor.seq_state("fall-a1") is None  # no state touched
    stored = ingestor.ingest(item.topic, item.payload, item.received_at)
    assert [(e.type, e.ts, e.resident_id, e.room, e.seq) for e in seen] == [
        (e.type, e.ts, e.resident_id, e.room, e.seq) for e in stored.events
    ]
    # bad input previews as nothing (ingest dead-letters it later)
    assert ingestor.preview(item.topic, b"{", AT) == []
    assert ingestor.preview("carehub/testhjem/devices/nobody/up", item.payload, AT) == []
    ingestor.close()


def test_one_provisional_alarm_per_device_then_cleared(
    tmp_path: Path, test_index: SiteIndex
) -> None:
    ingestor = Ingestor(test_index, SqliteEventStore(tmp_path / "hub.db"))
    alarms = ProvisionalAlarms(ingestor, test_index)
    sent, publish = _recorder()

    first = _fall("fall-a1", 1)
    repeat = _fall("fall-a1", 2, at=AT + timedelta(seconds=30))
    unsure = _fall("fall-a2", 1, confidence=0.1)  # below the rule's min_confidence
    assert alarms.announce([first, unsure], publish) == 1
    assert alarms.announce([first, unsure, repeat], publish) == 1  # the repeat only
    topics = {t for t, _p, _r in sent}
    assert topics == {"carehub/testhjem/provisional/fall/fall-a1"}
    last = json.loads(sent[-1][1])
    assert (last["count"], last["provisional"], last["rule"]) == (2, True, "fall")
    assert last["resident_id"] == "r-001"
    assert all(r for _t, _p, r in sent)  # retained, so a board that connects later sees it
    assert alarms.open == 1

    assert alarms.settle([repeat], publish) == 0  # still waiting: keep announcing
    assert alarms.settle([], publish) == 1
    assert sent[-1] == ("carehub/testhjem/provisional/fall/fall-a1", b"", True)
    assert alarms.open == 0
    ingestor.close()


def test_a_list_of_waiting_messages_a_commit_settled_meanwhile_is_not_announced(
    tmp_path: Path, test_index: SiteIndex
) -> None:
    """The watchdog reads what waits, the commit thread stores it and settles, then the
    watchdog announces from its old list: the fall's provisional alarm came back after its
    stored alarm, and no later commit cleared it (a CI run under load)."""
    ingestor = Ingestor(test_index, SqliteEventStore(tmp_path / "hub.db"))
    alarms = ProvisionalAlarms(ingestor, test_index)
    sent, publish = _recorder()
    fall = _fall("fall-a1", 1)
    before = alarms.settled
    assert alarms.announce([fall], publish, before) == 1  # the store hangs: announced
    looked = alarms.settled
    waiting = [fall]  # the watchdog's copy, taken just before the commit went through
    assert alarms.settle([], publish) == 1  # stored: cleared
    assert alarms.announce(waiting, publish, looked) == 0  # stale: not announced again
    assert alarms.open == 0
    assert sent[-1] == ("carehub/testhjem/provisional/fall/fall-a1", b"", True)
    # a fresh look at what still waits announces as before
    again = _fall("fall-a1", 2, at=AT + timedelta(seconds=5))
    assert alarms.announce([again], publish, alarms.settled) == 1
    ingestor.close()


def test_a_store_failure_is_raised_and_keeps_everything_pending_not_dead_lettered(
    tmp_path: Path, test_index: SiteIndex
) -> None:
    """Found by the board test: a fall whose insert failed (the file locked) was turned into
    an `internal_error` dead letter, stored once the lock went and acknowledged: lost. A store
    failure must reach the caller, which retries the message."""
    store = SqliteEventStore(tmp_path / "hub.db")
    ingestor = Ingestor(test_index, store)
    item = _fall("fall-a1", 1)
    # the event insert fails while other writes (a dead letter) still work, as when a lock
    # is released between the two
    conn = sqlite3.connect(tmp_path / "hub.db")
    conn.execute(
        "CREATE TRIGGER no_room BEFORE INSERT ON events"
        " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
    )
    conn.commit()
    conn.close()
    # writes wait for the flush, so the failure comes there: raised, everything kept pending
    result = ingestor.ingest(item.topic, item.payload, item.received_at)
    assert result.accepted
    with pytest.raises(sqlite3.Error):
        ingestor.flush()
    assert _count(tmp_path / "hub.db") == 0
    with pytest.raises(sqlite3.Error):
        ingestor.flush()  # still failing: still pending, not dropped after the first try
    store._write.execute("DROP TRIGGER no_room")
    ingestor.flush()  # the caller's retry (the subscriber acknowledged nothing meanwhile)
    assert _count(tmp_path / "hub.db") == 1
    again = ingestor.ingest(item.topic, item.payload, item.received_at)
    assert again.duplicate
    ingestor.flush()
    assert _count(tmp_path / "hub.db") == 1
    conn = sqlite3.connect(tmp_path / "hub.db")
    try:
        assert conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM dedupe").fetchone()[0] == 1
    finally:
        conn.close()
    ingestor.close()


def test_a_technical_alarm_while_the_store_is_not_answering(
    tmp_path: Path, test_index: SiteIndex
) -> None:
    ingestor = Ingestor(test_index, SqliteEventStore(tmp_path / "hub.db"))
    alarms = ProvisionalAlarms(ingestor, test_index)
    sent, publish = _recorder()

    assert not alarms.store_state("ok", AT, publish)
    assert sent == []
    assert alarms.store_state("store not answering for 6 s", AT, publish)
    assert alarms.store_state("store not answering for 7 s", AT, publish)  # once, not again
    (topic, payload, retain) = sent[0]
    assert (topic, retain, len(sent)) == ("carehub/testhjem/provisional/store/gateway", True, 1)
    alarm = json.loads(payload)
    assert (alarm["rule"], alarm["priority"], alarm["provisional"]) == (
        "store_failing",
        "high",
        True,
    )
    assert not alarms.store_state("ok", AT, publish)
    assert sent[-1] == ("carehub/testhjem/provisional/store/gateway", b"", True)
    ingestor.close()


def test_no_provisional_alarm_for_a_resident_whose_monitoring_is_off(
    tmp_path: Path, test_index: SiteIndex
) -> None:
    ingestor = Ingestor(test_index, SqliteEventStore(tmp_path / "hub.db"))
    alarms = ProvisionalAlarms(ingestor, test_index)
    off = {"r-001"}
    alarms.monitored = lambda resident_id: resident_id not in off
    _sent, publish = _recorder()
    assert alarms.announce([_fall("fall-a1", 1)], publish) == 0  # r-001: monitoring off
    off.clear()
    assert alarms.announce([_fall("fall-a1", 2)], publish) == 1
    ingestor.close()
