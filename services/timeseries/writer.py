# influxdb-client ships no type hints; its calls are untyped by nature.
# mypy: disable-error-code="no-untyped-call"
"""The one way the services write points into InfluxDB: synchronously, retried, buffered.

Nothing written here is on the alarm path. A point that cannot be written is retried and, at
worst, late; an alarm never waits for InfluxDB.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from influxdb_client.client.influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException
from urllib3.exceptions import HTTPError

from carehub.errors import CareHubError
from carehub.settings import Settings
from services.timeseries.points import freed_hours_points

_LOGGER = logging.getLogger(__name__)

RETRY_DELAYS_S = (0.5, 1.0, 2.0)
"""Waits between the attempts of one flush; the background writers add their own backoff."""
MAX_PENDING = 100_000
"""Points kept while InfluxDB is away; beyond that the oldest go (dashboards only)."""


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
        influx = settings.influx_target()
        if influx is None:
            return None
        return cls(influx.url, influx.token, influx.org, influx.bucket, **kwargs)

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
