# influxdb-client ships no type hints; its calls are untyped by nature.
# mypy: disable-error-code="no-untyped-call"
"""Alarm changes and nightly freed hours as InfluxDB points, for the Grafana dashboards.

Alarms live in SQLite and freed hours are computed on demand, but Grafana reads InfluxDB
only: these writers copy what the dashboards need into the gateway's bucket, in the layout of
`gateway.store.influx_schema`. They carry pseudonymous ids only (resident, room, device),
never a staff user's or resident's name.

Nothing here is on the alarm path. A dashboard point that cannot be written is retried and,
at worst, late; an alarm never waits for InfluxDB. Points are idempotent (same series, same
time), so writing a change or a night twice only rewrites it.

Wiring (`carehub run`, in the rules part only, so each change is written by one process):

    ts = TimeseriesWriter.from_settings(settings)            # None without CAREHUB_INFLUX_URL
    alarm_points = AlarmChangeWriter(ts, log=alarm_service)  # catches up from its cursor
    unsubscribe = alarm_service.subscribe(alarm_points)
    nightly = FreedHoursJob(ts, index, report_source, clock).start()
    # on stop: unsubscribe(); alarm_points.close(); nightly.stop(); ts.close()

The municipality's side of docs/multisite.md, `CentralIngest`, is in `services.central`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write.point import Point
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.domain.write_precision import WritePrecision
from influxdb_client.rest import ApiException
from urllib3.exceptions import HTTPError

from carehub.clock import Clock, SystemClock
from carehub.errors import CareHubError, ConfigError
from carehub.settings import Settings
from carehub.timefmt import to_us
from gateway.store import influx_schema as s

_LOGGER = logging.getLogger(__name__)

RETRY_DELAYS_S = (0.5, 1.0, 2.0)
"""Waits between the attempts of one flush; the background writers add their own backoff."""
BACKGROUND_RETRY_S = 15.0
"""How long a background writer waits after a failed flush before it tries again."""
MAX_PENDING = 100_000
"""Points kept while InfluxDB is away; beyond that the oldest go (dashboards only)."""
CURSOR_NAME = "timeseries"
"""The alarm change log cursor of the alarm-change writer (`alarm_cursors` table)."""
NIGHTS_REWRITTEN = 3
"""Complete nights the nightly job rewrites each run: late data and imports are picked up."""
JOB_INTERVAL_S = 3600.0
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ACTIVE_STATES = frozenset({"raised", "acknowledged", "escalated"})


class TimeseriesUnavailableError(CareHubError):
    """InfluxDB did not take the points; they are kept for the next flush."""


class WriteApi(Protocol):
    """The part of influxdb-client's synchronous write API used here (tests fake it)."""

    def write(self, bucket: str, org: str, record: list[Any]) -> Any:
        """Write points; raise on failure."""
        ...

    def close(self) -> None:
        """Release the API."""
        ...


def _time(value: Any) -> datetime | None:
    """An RFC 3339 string (how alarm JSON carries times) or a datetime → aware UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        when = value
    else:
        when = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if when.tzinfo is None:
        msg = f"time {value!r} has no time zone"
        raise ValueError(msg)
    return when.astimezone(UTC)


def required_time(alarm: Mapping[str, Any], key: str) -> datetime:
    """`alarm[key]` as aware UTC; ValueError when it is missing (or has no time zone)."""
    when = _time(alarm.get(key))
    if when is None:
        msg = f"alarm {alarm.get('alarm_id')!r} has no {key}"
        raise ValueError(msg)
    return when


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


# --- alarm changes ---------------------------------------------------------------------------


def _implied_change(alarm: Mapping[str, Any]) -> tuple[str, str, datetime]:
    """(change, reason, time) of a bare alarm dict, read from its state and timestamps."""
    state = str(alarm["state"])
    raised = required_time(alarm, "raised_at")
    if state == "resolved":
        sensor = alarm.get("resolved_by") == "sensor"
        at = _time(alarm.get("resolved_at")) or raised
        return "end", "sensor_resolved" if sensor else "resolved", at
    if state == "acknowledged":
        return "update", "acknowledged", _time(alarm.get("acknowledged_at")) or raised
    if state == "escalated":
        return "update", "escalated", _time(alarm.get("escalated_at")) or raised
    if int(alarm.get("count") or 1) > 1:
        return "update", "repeat", _time(alarm.get("last_seen_at")) or raised
    return "new", "raised", raised


def alarm_change_point(
    alarm: Mapping[str, Any],
    *,
    change: str | None = None,
    reason: str | None = None,
    change_id: int | None = None,
    at: datetime | str | None = None,
) -> Any:
    """One point for one alarm change (SPEC §5 alarm JSON); what is not given is implied by
    the alarm's state, so a bare alarm dict makes a sensible point too."""
    implied_change, implied_reason, implied_at = _implied_change(alarm)
    when = _time(at) or implied_at
    raised = required_time(alarm, "raised_at")
    acknowledged = _time(alarm.get("acknowledged_at"))
    resolved = _time(alarm.get("resolved_at"))
    tags = {
        "site": alarm["site"],
        "rule": alarm["rule"],
        "kind": alarm["kind"],
        "priority": alarm["priority"],
        "state": alarm["state"],
        "change": change or implied_change,
        "reason": reason or implied_reason,
        "outcome": alarm.get("outcome"),
        "resident_id": alarm.get("resident_id"),
        "room": alarm.get("room"),
        "device_id": alarm.get("device_id"),
    }
    fields: dict[str, Any] = {
        s.ALARM_CHANGE_FIELD_ALARM_ID: str(alarm["alarm_id"]),
        s.ALARM_CHANGE_FIELD_CHANGE_ID: change_id,
        s.ALARM_CHANGE_FIELD_COUNT: int(alarm.get("count") or 1),
        s.ALARM_CHANGE_FIELD_ACTIVE: str(alarm["state"]) in _ACTIVE_STATES,
        s.ALARM_CHANGE_FIELD_ACKNOWLEDGE_S: _seconds(raised, acknowledged),
        s.ALARM_CHANGE_FIELD_RESPONSE_S: _seconds(acknowledged, resolved),
        s.ALARM_CHANGE_FIELD_OPEN_S: _seconds(raised, resolved),
    }
    point = Point(s.ALARM_CHANGE_MEASUREMENT)
    for name in s.ALARM_CHANGE_TAGS:
        if tags[name] is not None:
            point = point.tag(name, str(tags[name]))
    for name in s.ALARM_CHANGE_FIELDS:
        if fields[name] is not None:
            point = point.field(name, fields[name])
    return point.time(to_us(when), WritePrecision.US)


def envelope_point(envelope: Mapping[str, Any]) -> Any:
    """The point of an `AlarmService` change envelope
    ({"type", "alarm", "reason", "change_id", "at"[, "target"]})."""
    return alarm_change_point(
        envelope["alarm"],
        change=envelope.get("type"),
        reason=envelope.get("reason"),
        change_id=envelope.get("change_id"),
        at=envelope.get("at"),
    )


# --- freed hours -----------------------------------------------------------------------------


def _night_start(report: Mapping[str, Any], label: str) -> datetime:
    """The night's local start (the report's night window), so points sit on the night."""
    window = (report.get("assumptions") or {}).get("night_window") or {}
    day = date.fromisoformat(label)
    if "start" not in window or "timezone" not in window:
        return datetime.combine(day, datetime.min.time(), tzinfo=UTC)
    hour, minute = (int(x) for x in str(window["start"]).split(":"))
    local = datetime(
        day.year, day.month, day.day, hour, minute, tzinfo=ZoneInfo(window["timezone"])
    )
    return local.astimezone(UTC)


def _freed_point(site: str, ward: str | None, when: datetime, values: Mapping[str, Any]) -> Any:
    point = Point(s.FREED_HOURS_MEASUREMENT).tag("site", site)
    point = point.tag("scope", "ward" if ward else "site")
    if ward:
        point = point.tag("ward", ward)
    for name in s.FREED_HOURS_FIELDS:
        value = values.get(name)
        if value is None or isinstance(value, bool):
            continue
        # one type per field for ever: counts are ints, everything else floats
        typed = int(value) if name == s.FREED_HOURS_FIELD_RESIDENT_NIGHTS else float(value)
        point = point.field(name, typed)
    return point.time(to_us(when), WritePrecision.US)


def freed_hours_points(report: Mapping[str, Any]) -> list[Any]:
    """Points of a freed-hours report (SPEC §6 JSON): one per night from `by_night`, and for a
    one-night report one per ward from `by_ward` (a longer report's `by_ward` sums its nights
    and cannot be split back into them: write those night by night, see `write_nights`)."""
    site = str(report["site"])
    ward = report.get("ward")
    nights = list(report.get("by_night") or [])
    points = []
    for night in nights:
        values = {
            s.FREED_HOURS_FIELD_TOTAL: night.get("freed_hours_total"),
            s.FREED_HOURS_FIELD_NIGHT_HOURS: night.get("hours"),
            s.FREED_HOURS_FIELD_RESIDENT_NIGHTS: night.get("resident_nights"),
            s.FREED_HOURS_FIELD_COVERAGE: night.get("coverage_mean"),
        }
        if len(nights) == 1:
            values[s.FREED_HOURS_FIELD_ENTRIES_AVOIDED] = report.get("room_entries_avoided")
        points.append(_freed_point(site, ward, _night_start(report, night["night"]), values))
    if len(nights) == 1 and ward is None:
        when = _night_start(report, nights[0]["night"])
        for ward_id, summary in sorted((report.get("by_ward") or {}).items()):
            values = {name: summary.get(name) for name in s.FREED_HOURS_FIELDS}
            values[s.FREED_HOURS_FIELD_NIGHT_HOURS] = nights[0].get("hours")
            points.append(_freed_point(site, str(ward_id), when, values))
    return points


# --- the writer ------------------------------------------------------------------------------


class TimeseriesWriter:
    """Synchronous writes into the gateway's bucket, buffered until a flush succeeds.

    influxdb-client's default batching writes in the background and loses what it holds
    unless closed; synchronous writes tell us at once whether a point is stored.
    """

    def __init__(
        self,
        url: str,
        token: str,
        org: str,
        bucket: str,
        *,
        retry_delays_s: Sequence[float] = RETRY_DELAYS_S,
        timeout_ms: int = 10_000,
        max_pending: int = MAX_PENDING,
        write_api: WriteApi | None = None,
    ) -> None:
        self.org = org
        self.bucket = bucket
        self._client = InfluxDBClient(url=url, token=token, org=org, timeout=timeout_ms)
        self._write: WriteApi = write_api or self._client.write_api(write_options=SYNCHRONOUS)
        self._retry = tuple(retry_delays_s)
        self._pending: deque[tuple[int, Any]] = deque()
        self._next = 0
        self._max_pending = max_pending
        self._dropped = 0
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> TimeseriesWriter | None:
        """The writer for `CAREHUB_INFLUX_*`, or None when InfluxDB is not configured."""
        if not settings.influx_url:
            return None
        missing = [
            name
            for name, value in (
                ("CAREHUB_INFLUX_TOKEN", settings.influx_token),
                ("CAREHUB_INFLUX_ORG", settings.influx_org),
                ("CAREHUB_INFLUX_BUCKET", settings.influx_bucket),
            )
            if not value
        ]
        if missing or settings.influx_token is None:
            msg = f"CAREHUB_INFLUX_URL is set, so set {', '.join(missing)} too"
            raise ConfigError(msg)
        return cls(
            settings.influx_url,
            settings.influx_token.get_secret_value(),
            settings.influx_org or "",
            settings.influx_bucket or "",
            **kwargs,
        )

    @property
    def dropped(self) -> int:
        """Points given up because the buffer was full (InfluxDB away for long)."""
        return self._dropped

    def pending(self) -> int:
        """Points waiting for a successful flush."""
        with self._lock:
            return len(self._pending)

    def add(self, points: Iterable[Any]) -> None:
        """Buffer points; the oldest go when the buffer is full."""
        with self._lock:
            for point in points:
                self._pending.append((self._next, point))
                self._next += 1
            over = len(self._pending) - self._max_pending
            for _ in range(max(0, over)):
                self._pending.popleft()
            if over > 0:
                self._dropped += over
                _LOGGER.warning("InfluxDB away too long: %s dashboard points dropped", over)

    def flush(self) -> None:
        """Write what is buffered; retry with backoff; keep it and raise if InfluxDB stays away."""
        with self._flush_lock:
            with self._lock:
                batch = list(self._pending)
            if not batch:
                return
            self._send([p for _, p in batch])
            written = batch[-1][0]
            with self._lock:
                while self._pending and self._pending[0][0] <= written:
                    self._pending.popleft()

    def write(self, points: Sequence[Any]) -> None:
        """Write points now, unbuffered, for callers that can produce them again (a change
        log read from a cursor, a report recomputed); raise if InfluxDB stays away."""
        if points:
            self._send(list(points))

    def _send(self, points: list[Any]) -> None:
        last_error: Exception | None = None
        for delay in (*self._retry, None):
            try:
                self._write.write(bucket=self.bucket, org=self.org, record=points)
            except (ApiException, HTTPError, OSError) as err:
                last_error = err
                if delay is None:
                    break
                time.sleep(delay)
                continue
            return
        msg = f"InfluxDB did not take {len(points)} points: {last_error}"
        raise TimeseriesUnavailableError(msg) from last_error

    def write_freed_hours(self, report: Mapping[str, Any]) -> int:
        """Write a freed-hours report's points now (see `freed_hours_points`); answers how
        many. `TimeseriesUnavailableError` if InfluxDB is away: nothing is kept, because the
        report can be computed again (the nightly job does, every hour)."""
        points = freed_hours_points(report)
        self.write(points)
        return len(points)

    def close(self) -> None:
        """Try a last flush, then close the client; what InfluxDB refused is logged, not raised."""
        try:
            self.flush()
        except TimeseriesUnavailableError as err:
            _LOGGER.warning("closing with points unwritten: %s", err)
        finally:
            self._write.close()
            self._client.close()


class _Background:
    """A thread that runs `step` when woken or every `interval_s`, backing off on failure."""

    def __init__(self, name: str, step: Callable[[], object], interval_s: float | None) -> None:
        self._step = step
        self._interval_s = interval_s
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.failing = False

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._step()
            except (TimeseriesUnavailableError, ApiException, HTTPError, OSError) as err:
                if not self.failing:
                    _LOGGER.warning(
                        "%s: InfluxDB unavailable (%s); retrying", self._thread.name, err
                    )
                self.failing = True
                self._stopping.wait(BACKGROUND_RETRY_S)
                continue
            except Exception:
                _LOGGER.exception("%s failed; retrying", self._thread.name)
                self._stopping.wait(BACKGROUND_RETRY_S)
                continue
            if self.failing:
                _LOGGER.info("%s: InfluxDB is back", self._thread.name)
            self.failing = False
            self._wake.wait(self._interval_s)
            self._wake.clear()


class ChangeLog(Protocol):
    """What `AlarmChangeWriter` needs of `services.alarms.service.AlarmService` to be durable."""

    @property
    def store(self) -> Any:
        """An `AlarmStore` (its named cursors: `cursor(name)`, `set_cursor(name, seq)`)."""
        ...

    def changes_since(self, change_id: int) -> list[dict[str, Any]]:
        """Change envelopes after `change_id`, oldest first."""
        ...


class AlarmChangeWriter:
    """Alarm changes → InfluxDB points, on a thread of its own (never holding up the feed).

    Subscribe it: `alarm_service.subscribe(writer)`. Given the service as `log`, it reads the
    change log from its own cursor (`timeseries`) and moves the cursor only after InfluxDB took
    the points, so changes made while InfluxDB or this process was down are written later.
    Without `log`, the envelopes it is called with are buffered in memory (best effort).
    """

    def __init__(
        self,
        writer: TimeseriesWriter,
        *,
        log: ChangeLog | None = None,
        cursor_name: str = CURSOR_NAME,
        background: bool = True,
    ) -> None:
        self.writer = writer
        self._log = log
        self._cursor_name = cursor_name
        self._thread = _Background("alarm-timeseries", self.sync, None) if background else None
        if self._thread is not None:
            self._thread.start()

    def __call__(self, envelope: dict[str, Any]) -> None:
        """AlarmService listener: note the change and return at once."""
        if self._log is None:
            try:
                self.writer.add([envelope_point(envelope)])
            except (KeyError, ValueError) as err:
                _LOGGER.warning("alarm change %s not written: %s", envelope.get("change_id"), err)
                return
        self.wake()

    def write(self, alarm: Mapping[str, Any], **change: Any) -> None:
        """Buffer the point of one alarm (SPEC §5 dict) and wake the writer; keyword arguments
        as `alarm_change_point` (change, reason, change_id, at)."""
        self.writer.add([alarm_change_point(alarm, **change)])
        self.wake()

    def wake(self) -> None:
        """Write soon (at once, without a background thread)."""
        if self._thread is not None:
            self._thread.wake()
        else:
            self.sync()

    def sync(self) -> int:
        """Write what is pending; with a change log, everything after the cursor first.
        Answers how many changes were read from the log."""
        if self._log is None:
            self.writer.flush()
            return 0
        store = self._log.store
        cursor = int(store.cursor(self._cursor_name))
        read = 0
        while True:
            envelopes = self._log.changes_since(cursor)
            if not envelopes:
                break
            points = []
            for envelope in envelopes:
                try:
                    points.append(envelope_point(envelope))
                except (KeyError, ValueError) as err:
                    _LOGGER.warning("alarm change %s skipped: %s", envelope.get("change_id"), err)
            self.writer.write(points)
            cursor = int(envelopes[-1]["change_id"])
            store.set_cursor(self._cursor_name, cursor)
            read += len(envelopes)
        return read

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread after a last attempt to write (the writer itself stays open)."""
        if self._thread is not None:
            self._thread.stop(timeout)
        try:
            self.sync()
        except (TimeseriesUnavailableError, ApiException, HTTPError, OSError) as err:
            _LOGGER.warning("alarm changes left for the next start: %s", err)


# --- nightly freed hours ---------------------------------------------------------------------


class ReportIndex(Protocol):
    """What the nightly job needs of `carehub.site.SiteIndex`."""

    def night_bounds(self, label: date) -> tuple[datetime, datetime]:
        """UTC start and end of the night labelled `label`."""
        ...

    @property
    def tz(self) -> Any:
        """The site's time zone."""
        ...


def last_complete_night(index: ReportIndex, now: datetime) -> date:
    """The label of the newest night that has ended by `now`."""
    label = now.astimezone(index.tz).date()
    while index.night_bounds(label)[1] > now:
        label -= timedelta(days=1)
    return label


def write_nights(
    writer: TimeseriesWriter,
    index: Any,
    source: Any,
    first: date,
    last: date,
) -> int:
    """Compute and write the freed hours of every night in [first, last], night by night
    (so each night gets its ward points too); answers how many points were written.

    `index` is a `SiteIndex`, `source` a `services.reports.service.ReportSource`.
    """
    from services.reports.service import freed_hours

    total = 0
    night = first
    while night <= last:
        total += writer.write_freed_hours(freed_hours(index, source, night, night))
        night += timedelta(days=1)
    return total


class FreedHoursJob:
    """Writes the last few complete nights' freed hours every hour (idempotent rewrites), so
    the dashboard is at most an hour behind and late data (imports, a gateway catching up)
    reaches it."""

    def __init__(
        self,
        writer: TimeseriesWriter,
        index: Any,
        source: Any,
        clock: Clock | None = None,
        *,
        nights: int = NIGHTS_REWRITTEN,
        interval_s: float = JOB_INTERVAL_S,
    ) -> None:
        self.writer = writer
        self.index = index
        self.source = source
        self.clock: Clock = clock or SystemClock()
        self.nights = nights
        self._thread = _Background("freed-hours-timeseries", self.run_once, interval_s)

    def run_once(self) -> int:
        """Write the last `nights` complete nights; answers how many points."""
        last = last_complete_night(self.index, self.clock.now())
        first = last - timedelta(days=self.nights - 1)
        return write_nights(self.writer, self.index, self.source, first, last)

    def start(self) -> FreedHoursJob:
        """Run now and then every interval, on a thread of its own."""
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread."""
        self._thread.stop(timeout)
