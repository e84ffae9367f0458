# influxdb-client ships no type hints; its calls are untyped by nature.
# mypy: disable-error-code="no-untyped-call"
"""The InfluxDB 2 backend, for sites that want Grafana on their time series.

Writes are buffered in memory and sent synchronously on `flush()` (influxdb-client's default
background batching loses data unless closed, and hides failures from us). When InfluxDB is
away the flush retries with backoff and then raises `StoreUnavailableError` with the buffer
intact, so the caller keeps the messages unacknowledged and nothing is lost.

Dedupe keys live as fields of the event points; on start the store loads the recent ones
(`dedupe_lookback`) into memory, because a query per message would be far too slow.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write.point import Point
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException
from urllib3.exceptions import HTTPError

import gateway.store.influx_schema as s
from carehub import handover as handover_log
from carehub.events import CanonicalEvent, EventType
from carehub.site import DeviceKind
from carehub.timefmt import from_us, to_us
from carehub.walmode import enable_wal
from gateway.errors import StoreUnavailableError
from gateway.store.base import DeadLetter, DedupeHit, DeviceState, Seconds, SeqState

_LOGGER = logging.getLogger(__name__)

RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0)
DEDUPE_LOOKBACK = timedelta(days=7)
FAR_FUTURE = "2200-01-01T00:00:00Z"
"""Upper bound of open ranges: simulated and imported history may lie ahead of now()."""


def _dt(us: Any) -> datetime | None:
    return None if us is None else from_us(int(us))


def _flux_str(value: str) -> str:
    return json.dumps(value)  # a JSON string literal is a valid Flux string literal


def _flux_time(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat().replace("+00:00", "Z")


class InfluxEventStore:
    """`EventStore` on an InfluxDB 2 bucket."""

    def __init__(
        self,
        url: str,
        token: str,
        org: str,
        bucket: str,
        *,
        retry_delays_s: Sequence[float] = RETRY_DELAYS_S,
        timeout_ms: int = 10_000,
        dedupe_lookback: timedelta = DEDUPE_LOOKBACK,
        handover_db: Path | str | None = None,
    ) -> None:
        """`handover_db`: the SQLite file whose hand-over log the rules engine reads; each
        flush commits the new events' rows there before it writes to InfluxDB
        (docs/handover.md says why before, and why that is exactly once)."""
        self.bucket = bucket
        self.org = org
        self._client = InfluxDBClient(url=url, token=token, org=org, timeout=timeout_ms)
        self._write = self._client.write_api(write_options=SYNCHRONOUS)
        self._query = self._client.query_api()
        self._retry = tuple(retry_delays_s)
        self._lock = threading.RLock()
        self._buffer: list[Point] = []
        self._dedupe: dict[tuple[str, str], DedupeHit] = {}
        self._handover: list[CanonicalEvent] = []
        self._side: sqlite3.Connection | None = None
        if handover_db is not None:
            self._side = sqlite3.connect(
                handover_db, isolation_level=None, check_same_thread=False, timeout=30
            )
            enable_wal(self._side)
            self._side.execute("PRAGMA synchronous=FULL")
            side = self._side
            handover_log.create(lambda sql, args: side.execute(sql, args).fetchall())
        try:
            self._load_dedupe(dedupe_lookback)
        except (ApiException, HTTPError, OSError) as err:
            # a redelivery rewrites the same point (same series and time), so starting
            # without the cache costs duplicate counts at worst, never duplicate points
            _LOGGER.warning("InfluxDB unreachable at start (%s); dedupe cache empty", err)

    # --- writes ---------------------------------------------------------------------------

    def pending(self) -> int:
        """Points waiting for a successful flush."""
        with self._lock:
            return len(self._buffer)

    def add_event(self, event: CanonicalEvent, key: str, digest: str) -> None:
        """Buffer the event point; its dedupe key is remembered at once."""
        p = Point(s.EVENT_MEASUREMENT)
        tags = {
            "site": event.site,
            "device_id": event.device_id,
            "kind": event.kind.value,
            "type": event.type.value,
            "resident_id": event.resident_id,
            "room": event.room,
        }
        for name in s.EVENT_TAGS:
            if tags[name] is not None:
                p = p.tag(name, tags[name])
        p = (
            p.field(s.EVENT_FIELD_EVENT_ID, event.event_id)
            .field(s.EVENT_FIELD_RECEIVED_AT, to_us(event.received_at))
            .field(s.EVENT_FIELD_DATA, json.dumps(event.data, separators=(",", ":")))
            .field(s.EVENT_FIELD_DEDUPE_KEY, key)
            .field(s.EVENT_FIELD_DIGEST, digest)
        )
        if event.seq is not None:
            p = p.field(s.EVENT_FIELD_SEQ, event.seq)
        for name in s.EVENT_NUMERIC_FIELDS:
            value = event.data.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool):
                p = p.field(name, float(value))
        for name in s.EVENT_STRING_FIELDS:
            value = event.data.get(name)
            if isinstance(value, str):
                p = p.field(name, value)
        p = p.time(to_us(event.ts), WritePrecision.US)
        with self._lock:
            self._buffer.append(p)
            self._dedupe[(event.device_id, key)] = DedupeHit(event.event_id, digest)
            if self._side is not None:
                self._handover.append(event)

    def hand_over(self, events: Sequence[CanonicalEvent]) -> None:
        """Hand over events that are not stored (an admin's self-test) with the next flush."""
        with self._lock:
            if self._side is not None:
                self._handover.extend(events)

    def _flush_handover(self) -> None:
        """Commit the staged hand-over rows to the SQLite file, before the InfluxDB write.

        Before, not after: a crash between the two then leaves the device message
        unacknowledged and not in InfluxDB, so its redelivery is stored and handed over again
        under the same event id, which the rules engine ignores as already handled. After
        would leave it in InfluxDB, where the dedupe cache loaded at restart would call the
        redelivery a duplicate, and its hand-over would be lost.
        """
        if self._side is None or not self._handover:
            return
        now = datetime.now(UTC)
        side = self._side
        side.execute("BEGIN IMMEDIATE")
        try:
            side.executemany(
                handover_log.INSERT, [handover_log.row(e, now) for e in self._handover]
            )
        except BaseException:
            side.execute("ROLLBACK")
            raise
        side.execute("COMMIT")
        self._handover.clear()

    def lookup(self, device_id: str, key: str) -> DedupeHit | None:
        """From the in-memory dedupe index (recent keys loaded at start, plus new ones)."""
        with self._lock:
            return self._dedupe.get((device_id, key))

    def add_dead_letter(self, letter: DeadLetter) -> None:
        """Buffer a dead letter point."""
        p = (
            Point(s.DEAD_LETTER_MEASUREMENT)
            .tag("site", letter.site)
            .tag("reason", letter.reason)
            .field("topic", letter.topic)
            .field("device_id", letter.device_id or "")
            .field("detail", letter.detail)
            .field("payload", letter.payload)
            .field("encoding", letter.encoding)
            .field("truncated", letter.truncated)
            .time(to_us(letter.received_at), WritePrecision.US)
        )
        with self._lock:
            self._buffer.append(p)

    def put_device_state(self, state: DeviceState) -> None:
        """Buffer a device state point (the latest point is the state)."""
        p = (
            Point(s.DEVICE_STATE_MEASUREMENT)
            .tag("site", state.site)
            .tag("device_id", state.device_id)
            .tag("kind", state.kind.value)
        )
        values: dict[str, Any] = {
            "last_seen_us": to_us(state.last_seen) if state.last_seen else None,
            "battery": None if state.battery is None else float(state.battery),
            "rssi": state.rssi,
            "online": state.online,
            "status_source": state.status_source,
            "status_at_us": to_us(state.status_at) if state.status_at else None,
        }
        for name in s.DEVICE_STATE_FIELDS:
            if values[name] is not None:
                p = p.field(name, values[name])
        with self._lock:
            self._buffer.append(p.time(time.time_ns() // 1000, WritePrecision.US))

    def put_seq_state(self, state: SeqState) -> None:
        """Buffer a seq bookkeeping point."""
        p = (
            Point(s.DEVICE_SEQ_MEASUREMENT)
            .tag("device_id", state.device_id)
            .field("gaps", state.gaps)
            .field("resets", state.resets)
            .field("codec_state", json.dumps(state.codec_state))
        )
        if state.last_seq is not None:
            p = p.field("last_seq", state.last_seq)
        if state.last_digest is not None:
            p = p.field("last_digest", state.last_digest)
        if state.last_received_at is not None:
            p = p.field("last_received_at_us", to_us(state.last_received_at))
        with self._lock:
            self._buffer.append(p.time(time.time_ns() // 1000, WritePrecision.US))

    def flush(self) -> None:
        """Write the buffer; retry with backoff; keep it and raise if InfluxDB stays away."""
        with self._lock:
            self._flush_handover()
            if not self._buffer:
                return
            points = list(self._buffer)
            last_error: Exception | None = None
            for delay in (*self._retry, None):
                try:
                    self._write.write(bucket=self.bucket, org=self.org, record=points)
                except (ApiException, HTTPError, OSError) as err:
                    last_error = err
                    _LOGGER.warning("InfluxDB write failed (%s); %s points kept", err, len(points))
                    if delay is None:
                        break
                    time.sleep(delay)
                    continue
                del self._buffer[: len(points)]
                return
            msg = f"InfluxDB is unavailable: {last_error}"
            raise StoreUnavailableError(msg) from last_error

    def close(self) -> None:
        """Flush and close the client."""
        try:
            self.flush()
        finally:
            self._write.close()
            self._client.close()
            if self._side is not None:
                self._side.close()

    # --- reads ----------------------------------------------------------------------------

    def _rows(self, flux: str) -> list[dict[str, Any]]:
        tables = self._query.query(flux, org=self.org)
        return [dict(record.values) for table in tables for record in table.records]

    def _load_dedupe(self, lookback: timedelta) -> None:
        flux = (
            f"from(bucket: {_flux_str(self.bucket)})"
            f" |> range(start: -{int(lookback.total_seconds())}s, stop: {FAR_FUTURE})"
            f' |> filter(fn: (r) => r._measurement == "{s.EVENT_MEASUREMENT}")'
            f' |> filter(fn: (r) => r._field == "{s.EVENT_FIELD_DEDUPE_KEY}"'
            f' or r._field == "{s.EVENT_FIELD_DIGEST}" or r._field == "{s.EVENT_FIELD_EVENT_ID}")'
            ' |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")'
        )
        for row in self._rows(flux):
            key = row.get(s.EVENT_FIELD_DEDUPE_KEY)
            if key:
                self._dedupe[(row["device_id"], key)] = DedupeHit(
                    row[s.EVENT_FIELD_EVENT_ID], row[s.EVENT_FIELD_DIGEST]
                )

    def query_events(
        self,
        site: str,
        start: datetime,
        end: datetime,
        kinds: Sequence[DeviceKind | str] | None = None,
        types: Sequence[EventType | str] | None = None,
        device_ids: Sequence[str] | None = None,
    ) -> list[CanonicalEvent]:
        """Written events with device time in [start, end), oldest first."""
        flux = (
            f"from(bucket: {_flux_str(self.bucket)})"
            f" |> range(start: {_flux_time(start)}, stop: {_flux_time(end)})"
            f' |> filter(fn: (r) => r._measurement == "{s.EVENT_MEASUREMENT}"'
            f" and r.site == {_flux_str(site)})"
        )
        for column, values in (("kind", kinds), ("type", types), ("device_id", device_ids)):
            if values is not None:
                if not values:
                    return []
                ors = " or ".join(f"r.{column} == {_flux_str(str(v))}" for v in values)
                flux += f" |> filter(fn: (r) => {ors})"
        flux += (
            ' |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")'
            ' |> group() |> sort(columns: ["_time"])'
        )
        events = []
        for row in self._rows(flux):
            seq = row.get(s.EVENT_FIELD_SEQ)
            events.append(
                CanonicalEvent(
                    event_id=row[s.EVENT_FIELD_EVENT_ID],
                    site=row["site"],
                    device_id=row["device_id"],
                    kind=DeviceKind(row["kind"]),
                    type=EventType(row["type"]),
                    ts=row["_time"].astimezone(UTC),
                    received_at=_dt(row[s.EVENT_FIELD_RECEIVED_AT]) or row["_time"],
                    resident_id=row.get("resident_id"),
                    room=row.get("room"),
                    seq=None if seq is None else int(seq),
                    data=json.loads(row[s.EVENT_FIELD_DATA]),
                )
            )
        events.sort(key=lambda e: (e.ts, e.event_id))
        return events

    def device_times(self, site: str, start: datetime, end: datetime) -> dict[str, Seconds]:
        """device id → sorted Unix seconds of its events in [start, end)."""
        flux = (
            f"from(bucket: {_flux_str(self.bucket)})"
            f" |> range(start: {_flux_time(start)}, stop: {_flux_time(end)})"
            f' |> filter(fn: (r) => r._measurement == "{s.EVENT_MEASUREMENT}"'
            f' and r.site == {_flux_str(site)} and r._field == "{s.EVENT_FIELD_EVENT_ID}")'
            ' |> keep(columns: ["_time", "device_id"])'
        )
        out: dict[str, list[float]] = {}
        for row in self._rows(flux):
            out.setdefault(row["device_id"], []).append(row["_time"].timestamp())
        return {d: np.sort(np.asarray(v, dtype=np.float64)) for d, v in out.items()}

    def _latest(self, measurement: str) -> list[dict[str, Any]]:
        flux = (
            f"from(bucket: {_flux_str(self.bucket)}) |> range(start: 0, stop: " + FAR_FUTURE + ")"
            f' |> filter(fn: (r) => r._measurement == "{measurement}")'
            " |> last()"
            ' |> pivot(rowKey: ["device_id"], columnKey: ["_field"], valueColumn: "_value")'
        )
        return self._rows(flux)

    def device_states(self) -> list[DeviceState]:
        """Every device's latest state point."""
        states = [
            DeviceState(
                device_id=r["device_id"],
                site=r["site"],
                kind=DeviceKind(r["kind"]),
                last_seen=_dt(r.get("last_seen_us")),
                battery=r.get("battery"),
                rssi=None if r.get("rssi") is None else int(r["rssi"]),
                online=r.get("online"),
                status_source=r.get("status_source"),
                status_at=_dt(r.get("status_at_us")),
            )
            for r in self._latest(s.DEVICE_STATE_MEASUREMENT)
        ]
        return sorted(states, key=lambda st: st.device_id)

    def seq_states(self) -> dict[str, SeqState]:
        """Every device's latest seq bookkeeping."""
        out = {}
        for r in self._latest(s.DEVICE_SEQ_MEASUREMENT):
            out[r["device_id"]] = SeqState(
                device_id=r["device_id"],
                last_seq=None if r.get("last_seq") is None else int(r["last_seq"]),
                gaps=int(r.get("gaps") or 0),
                resets=int(r.get("resets") or 0),
                last_digest=r.get("last_digest"),
                last_received_at=_dt(r.get("last_received_at_us")),
                codec_state=json.loads(r.get("codec_state") or "{}"),
            )
        return out

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Newest first."""
        flux = (
            f"from(bucket: {_flux_str(self.bucket)}) |> range(start: 0, stop: " + FAR_FUTURE + ")"
            f' |> filter(fn: (r) => r._measurement == "{s.DEAD_LETTER_MEASUREMENT}")'
            ' |> pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")'
            f' |> group() |> sort(columns: ["_time"], desc: true) |> limit(n: {int(limit)})'
        )
        return [
            DeadLetter(
                site=r["site"],
                topic=r["topic"],
                payload=r["payload"],
                encoding=r["encoding"],
                reason=r["reason"],
                detail=r["detail"],
                received_at=r["_time"].astimezone(UTC),
                device_id=r.get("device_id") or None,
                truncated=bool(r.get("truncated")),
            )
            for r in self._rows(flux)
        ]

    def counters(self) -> dict[str, float]:
        """Seq gaps and resets per device, dead letters per reason."""
        out: dict[str, float] = {}
        for device_id, st in sorted(self.seq_states().items()):
            out[f'carehub_gateway_seq_gaps{{device_id="{device_id}"}}'] = float(st.gaps)
            out[f'carehub_gateway_seq_resets{{device_id="{device_id}"}}'] = float(st.resets)
        flux = (
            f"from(bucket: {_flux_str(self.bucket)}) |> range(start: 0, stop: " + FAR_FUTURE + ")"
            f' |> filter(fn: (r) => r._measurement == "{s.DEAD_LETTER_MEASUREMENT}"'
            ' and r._field == "topic") |> group(columns: ["reason"]) |> count()'
        )
        for r in self._rows(flux):
            out[f'carehub_gateway_dead_letters_stored{{reason="{r["reason"]}"}}'] = float(
                r["_value"]
            )
        return out
