"""The hand-over log's contract without a broker: written only by the commit that stores the
event, read urgent-first in stored order, its stall alarm raised and cleared, and failpoints
parsed strictly (docs/handover.md)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from carehub import failpoints, handover
from carehub.events import CanonicalEvent
from carehub.site import SiteIndex
from gateway.handover import HandoverWatch
from gateway.store.sqlite import SqliteEventStore
from tests.services.conftest import NIGHT, make_event_factory


def rows(db: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(db) as conn:
        return [(int(r[0]), str(r[1])) for r in conn.execute("SELECT seq, event_id FROM handover")]


def events(index: SiteIndex) -> list[CanonicalEvent]:
    make = make_event_factory(index)
    return [
        make("fall-a1", "heartbeat", NIGHT, battery=90),
        make("diaper-r001", "saturation", NIGHT + timedelta(seconds=1), level=20),
        make("fall-b1", "fall", NIGHT + timedelta(seconds=2), confidence=0.9),
        make("diaper-r001", "saturation", NIGHT + timedelta(seconds=3), level=90),
        make("fall-a1", "fall", NIGHT + timedelta(seconds=4), confidence=0.9),
    ]


def test_rows_exist_only_once_their_events_are_committed(
    tmp_path: Path, test_index: SiteIndex
) -> None:
    db = tmp_path / "carehub.db"
    store = SqliteEventStore(db, handover=True)
    first, second = events(test_index)[:2]
    store.add_event(first, "s:1", "d1")
    store.flush()
    store.add_event(second, "s:2", "d2")
    store.add_event(first, "s:1", "d1")  # the same event again: stored once, handed over once
    store.abandon()  # a crash before the second commit
    assert [e for _, e in rows(db)] == [first.event_id]
    plain = SqliteEventStore(tmp_path / "import.db")  # imports and backfills hand nothing over
    plain.add_event(second, "s:2", "d2")
    plain.close()
    with sqlite3.connect(tmp_path / "import.db") as conn:
        assert (
            conn.execute("SELECT name FROM sqlite_master WHERE name = 'handover'").fetchall() == []
        )


def test_a_stored_event_again_after_its_key_is_gone_is_neither_stored_nor_handed_over_twice(
    tmp_path: Path, test_index: SiteIndex
) -> None:
    """A replay older than the dedupe keys' retention reaches the store with a new key: the
    flush finds its id in the file and hands nothing over; two events of one id in one batch
    are stored and handed over once (the first)."""
    db = tmp_path / "carehub.db"
    store = SqliteEventStore(db, handover=True)
    first, second, third = events(test_index)[:3]
    store.add_event(first, "s:1", "d1")
    store.flush()
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM dedupe")
    assert store.lookup(first.device_id, "s:1") is None
    store.add_event(first, "s:1", "d1")  # the replay
    store.add_event(second, "s:2", "d2")
    store.add_event(third, "s:3", "d3")
    store.add_event(third, "s:3b", "d3")  # the same id under another key
    store.flush()
    assert [e for _, e in rows(db)] == [first.event_id, second.event_id, third.event_id]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 3
        keys = {r[0] for r in conn.execute("SELECT key FROM dedupe")}
    assert keys == {"s:1", "s:2", "s:3", "s:3b"}
    store.close()


def test_a_batch_waiting_for_its_flush_holds_no_write_lock(
    tmp_path: Path, test_index: SiteIndex
) -> None:
    """Writes wait in memory until the flush: another writer of the file (the rules engine's
    transaction) is not kept waiting by a batch the gateway is still building, and the keys
    of that batch already count for deduplication."""
    db = tmp_path / "carehub.db"
    store = SqliteEventStore(db, handover=True)
    first, second = events(test_index)[:2]
    store.add_event(first, "s:1", "d1")
    store.add_event(second, "s:2", "d2")
    hit = store.lookup(first.device_id, "s:1")
    assert hit is not None
    assert (hit.event_id, hit.digest) == (first.event_id, "d1")
    other = sqlite3.connect(db, timeout=0)  # no busy wait: a held lock fails at once
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("CREATE TABLE rules_side (x INTEGER)")
        other.execute("COMMIT")
    finally:
        other.close()
    store.flush()
    assert [e for _, e in rows(db)] == [first.event_id, second.event_id]
    store.close()


def test_read_is_urgent_first_and_in_stored_order_within_a_priority(
    tmp_path: Path, test_index: SiteIndex
) -> None:
    conn = sqlite3.connect(tmp_path / "carehub.db", isolation_level=None)

    def sql(statement: str, args: object) -> list[tuple[object, ...]]:
        return conn.execute(statement, args).fetchall()  # type: ignore[arg-type]

    handover.create(sql)
    stored = events(test_index)
    handover.append(sql, stored, datetime.now(UTC))
    got = [r.event().event_id for r in handover.read(sql, 10)]
    order = [2, 4, 1, 3, 0]  # the falls, the diaper's two readings, the heartbeat: each in order
    assert got == [stored[i].event_id for i in order]
    first_two = handover.read(sql, 2)
    handover.delete(sql, [r.seq for r in first_two])
    assert handover.backlog(sql).rows == 3
    conn.close()


def test_stall_alarm_is_raised_once_and_cleared_when_the_log_drains(
    tmp_path: Path, test_index: SiteIndex
) -> None:
    db = tmp_path / "carehub.db"
    store = SqliteEventStore(db, handover=True)
    store.add_event(events(test_index)[2], "s:1", "d")
    store.flush()
    watch = HandoverWatch(db, "testhjem", "carehub", stall_s=30)
    sent: list[tuple[str, bytes, bool]] = []

    def publish(topic: str, payload: bytes, retain: bool) -> None:
        sent.append((topic, payload, retain))

    now = datetime.now(UTC)
    assert not watch.check(publish, connected=True, now=now)
    assert sent == [("carehub/testhjem/provisional/store/handover", b"", True)]  # a stale one
    assert watch.check(publish, connected=True, now=now + timedelta(seconds=31))
    assert watch.check(publish, connected=True, now=now + timedelta(seconds=32))
    raised = [json.loads(p) for _, p, _ in sent if p]
    assert len(raised) == 1
    assert (raised[0]["rule"], raised[0]["priority"], raised[0]["kind"]) == (
        "handover_stalled",
        "high",
        "technical",
    )
    assert watch.metrics(now + timedelta(seconds=32))["carehub_handover_backlog_rows"] == 1
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM handover")
    assert not watch.check(publish, connected=True, now=now + timedelta(seconds=33))
    assert sent[-1][1] == b""
    assert watch.metrics()["carehub_handover_stalls_total"] == 1
    watch.close()
    store.close()


def test_failpoints_parse_strictly_and_raise_when_armed() -> None:
    assert failpoints.parse("gateway.after_commit=crash; rules.after_commit=off") == {
        "gateway.after_commit": "crash"
    }
    with pytest.raises(ValueError, match="not point=action"):
        failpoints.parse("gateway.after_comit=crash")
    with pytest.raises(ValueError, match="not point=action"):
        failpoints.parse("rules.before_commit=explode")
    failpoints.hit("rules.before_commit")  # unarmed: nothing
    failpoints.arm("rules.before_commit", "raise")
    try:
        with pytest.raises(failpoints.FailpointError):
            failpoints.hit("rules.before_commit")
    finally:
        failpoints.disarm_all()
    failpoints.hit("rules.before_commit")
