"""One contract, every backend: what the pipeline and the services rely on from a store.

InfluxDB runs only when CAREHUB_TEST_INFLUX_URL (+ _TOKEN, _ORG, _BUCKET) names a disposable
InfluxDB 2 bucket; without it those cases skip and say why.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from carehub.events import CanonicalEvent, EventType, event_id_for
from carehub.site import DeviceKind
from gateway.store.base import DeadLetter, DeviceState, EventStore, SeqState
from gateway.store.sqlite import SqliteEventStore

T0 = datetime(2026, 11, 22, 22, 0, tzinfo=UTC)
INFLUX_ENV = ("URL", "TOKEN", "ORG", "BUCKET")
NO_INFLUX = "InfluxDB contract tests need CAREHUB_TEST_INFLUX_URL, _TOKEN, _ORG and _BUCKET"


def _influx_config() -> dict[str, str] | None:
    values = {k.lower(): os.environ.get(f"CAREHUB_TEST_INFLUX_{k}", "") for k in INFLUX_ENV}
    return values if all(values.values()) else None


def _open(kind: str, tmp_path: Path, site: str) -> EventStore:
    if kind == "sqlite":
        return SqliteEventStore(tmp_path / "contract.db")
    from gateway.store.influx import InfluxEventStore

    cfg = _influx_config()
    assert cfg is not None
    return InfluxEventStore(cfg["url"], cfg["token"], cfg["org"], cfg["bucket"], retry_delays_s=())


BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "influx",
        id="influx",
        marks=[
            pytest.mark.influx,
            pytest.mark.skipif(_influx_config() is None, reason=NO_INFLUX),
        ],
    ),
]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """Which backend this run checks."""
    return str(request.param)


@pytest.fixture
def site() -> str:
    """A site id of its own, so runs against a shared InfluxDB bucket do not meet."""
    return f"contract-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def store(backend: str, tmp_path: Path, site: str) -> Iterator[EventStore]:
    """The backend under test."""
    s = _open(backend, tmp_path, site)
    yield s
    s.close()


def event(site: str, device: str, seq: int, minutes: float, **kw: object) -> CanonicalEvent:
    fields: dict[str, object] = {
        "event_id": event_id_for(site, device, seq),
        "site": site,
        "device_id": device,
        "kind": DeviceKind.FALL,
        "type": EventType.FALL,
        "ts": T0 + timedelta(minutes=minutes),
        "received_at": T0 + timedelta(minutes=minutes, seconds=1),
        "resident_id": "r-001",
        "room": "a-1",
        "data": {"confidence": 0.8},
        "seq": seq,
    }
    fields.update(kw)
    return CanonicalEvent.model_validate(fields)


def test_events_round_trip_and_filter(store: EventStore, site: str) -> None:
    a = event(site, "fall-a1", 1, 0)
    b = event(site, "fall-a1", 2, 5, type=EventType.FALL_CLEARED, data={})
    c = event(
        site,
        "diaper-r001",
        1,
        10,
        kind=DeviceKind.DIAPER,
        type=EventType.SATURATION,
        data={"level": 55.5},
        resident_id=None,
        room=None,
    )
    for e in (c, a, b):
        store.add_event(e, f"s:{e.seq}", "d" + e.event_id[:8])
    store.flush()
    window = (T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    assert store.query_events(site, *window) == [a, b, c]
    assert store.query_events(site, *window, kinds=["diaper"]) == [c]
    assert store.query_events(site, *window, types=[EventType.FALL]) == [a]
    assert store.query_events(site, *window, device_ids=["fall-a1"]) == [a, b]
    assert store.query_events(site, T0 + timedelta(minutes=5), T0 + timedelta(minutes=10)) == [b]
    assert store.query_events("another-site", *window) == []


def test_device_times_are_sorted_unix_seconds(store: EventStore, site: str) -> None:
    for seq, minutes in ((2, 3), (1, 1)):
        e = event(site, "fall-a1", seq, minutes)
        store.add_event(e, f"s:{seq}", "x")
    store.flush()
    times = store.device_times(site, T0, T0 + timedelta(hours=1))
    assert list(times) == ["fall-a1"]
    expected = np.array([(T0 + timedelta(minutes=m)).timestamp() for m in (1, 3)])
    np.testing.assert_allclose(times["fall-a1"], expected)


def test_dedupe_keys_are_seen_before_and_after_flush_and_reopen(
    backend: str, tmp_path: Path, site: str
) -> None:
    store = _open(backend, tmp_path, site)
    e = event(site, "fall-a1", 9, 0)
    assert store.lookup("fall-a1", "s:9") is None
    store.add_event(e, "s:9", "digest-9")
    hit = store.lookup("fall-a1", "s:9")
    assert hit is not None
    assert (hit.event_id, hit.digest) == (e.event_id, "digest-9")
    assert store.lookup("fall-a2", "s:9") is None
    store.close()
    reopened = _open(backend, tmp_path, site)
    hit = reopened.lookup("fall-a1", "s:9")
    assert hit is not None
    assert hit.event_id == e.event_id
    reopened.close()


def test_storing_the_same_event_twice_keeps_one(store: EventStore, site: str) -> None:
    e = event(site, "fall-a1", 1, 0)
    store.add_event(e, "s:1", "x")
    store.flush()
    store.add_event(e, "s:1", "x")
    store.flush()
    assert len(store.query_events(site, T0 - timedelta(hours=1), T0 + timedelta(hours=1))) == 1


def test_device_state_and_seq_state_replace_and_survive(
    backend: str, tmp_path: Path, site: str
) -> None:
    store = _open(backend, tmp_path, site)
    first = DeviceState("fall-a1", site, DeviceKind.FALL, T0, 90.0, -60, True, "message", T0)
    later = DeviceState(
        "fall-a1",
        site,
        DeviceKind.FALL,
        T0 + timedelta(minutes=1),
        89.0,
        -61,
        False,
        "status",
        T0 + timedelta(minutes=2),
    )
    store.put_device_state(first)
    store.put_device_state(later)
    seq = SeqState("fall-a1", 41, 3, 1, "abc", T0, {"fall_state": 1})
    store.put_seq_state(seq)
    store.close()
    reopened = _open(backend, tmp_path, site)
    assert [s for s in reopened.device_states() if s.site == site] == [later]
    assert reopened.seq_states()["fall-a1"] == seq
    counters = reopened.counters()
    assert counters['carehub_gateway_seq_gaps{device_id="fall-a1"}'] == 3
    reopened.close()


def test_dead_letters_newest_first_and_counted(store: EventStore, site: str) -> None:
    for i, reason in enumerate(("not_json", "oversize", "not_json")):
        store.add_dead_letter(
            DeadLetter.of(site, "t/x", b"\xff" * (i + 1), reason, "why", T0 + timedelta(seconds=i))
        )
    store.flush()
    letters = [d for d in store.dead_letters(10) if d.site == site]
    assert [d.reason for d in letters] == ["not_json", "oversize", "not_json"]
    assert letters[0].received_at == T0 + timedelta(seconds=2)
    assert letters[0].encoding == "base64"
    assert len(store.dead_letters(1)) == 1
    assert store.counters()['carehub_gateway_dead_letters_stored{reason="not_json"}'] == 2


def test_unflushed_writes_are_not_visible_to_readers(store: EventStore, site: str) -> None:
    store.add_event(event(site, "fall-a1", 1, 0), "s:1", "x")
    window = (T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    assert store.query_events(site, *window) == []
    store.flush()
    assert len(store.query_events(site, *window)) == 1


def test_sqlite_tables_do_not_clash_with_other_components(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "shared.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE alarms (alarm_id TEXT PRIMARY KEY)")
        conn.execute("CREATE TABLE users (name TEXT PRIMARY KEY)")
    store = SqliteEventStore(path)
    store.close()
    SqliteEventStore(path).close()  # IF NOT EXISTS: opening twice is fine
    with sqlite3.connect(path) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"alarms", "users", "events", "dedupe", "dead_letters", "device_state"} <= names
    assert "device_seq" in names


class _FlakyWrites:
    """Stands in for influxdb-client's write API: fails `failures` times, then records."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.written: list[object] = []

    def write(self, bucket: str, org: str, record: list[object]) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionRefusedError("influxdb is away")
        self.written.extend(record)

    def close(self) -> None:
        return


def test_influx_flush_retries_and_loses_nothing_while_away() -> None:
    from gateway.errors import StoreUnavailableError
    from gateway.store.influx import InfluxEventStore

    # nothing listens on port 9: start-up survives, writes are buffered
    store = InfluxEventStore(
        "http://127.0.0.1:9", "token", "org", "bucket", retry_delays_s=(0, 0), timeout_ms=500
    )
    flaky = _FlakyWrites(failures=5)
    store._write = flaky  # type: ignore[assignment]
    store.add_event(event("s", "fall-a1", 1, 0), "s:1", "x")
    store.add_dead_letter(DeadLetter.of("s", "t", b"x", "not_json", "bad", T0))
    with pytest.raises(StoreUnavailableError):
        store.flush()
    assert (flaky.calls, store.pending()) == (3, 2)  # first try + two retries, buffer kept
    store.flush()  # fails twice more, then InfluxDB is back
    assert store.pending() == 0
    assert len(flaky.written) == 2
    assert store.lookup("fall-a1", "s:1") is not None
    store.close()


def test_open_store_picks_the_backend_from_settings(tmp_path: Path) -> None:
    from carehub.errors import ConfigError
    from carehub.settings import Settings
    from gateway.store import open_store

    store = open_store(Settings(db=tmp_path / "s.db"))
    assert isinstance(store, SqliteEventStore)
    store.close()
    with pytest.raises(ConfigError, match="CAREHUB_INFLUX_TOKEN"):
        open_store(Settings(db=tmp_path / "s.db", influx_url="http://127.0.0.1:9"))
