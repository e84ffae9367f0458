"""Alarm changes → InfluxDB, for the Grafana dashboards: alarms live in SQLite, Grafana reads
InfluxDB only. Written by the rules part only, so each change is written once."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from influxdb_client.rest import ApiException
from urllib3.exceptions import HTTPError

from services.timeseries.background import Background
from services.timeseries.points import alarm_change_point, envelope_point
from services.timeseries.writer import TimeseriesUnavailableError, TimeseriesWriter

_LOGGER = logging.getLogger(__name__)

CURSOR_NAME = "timeseries"
"""The alarm change log cursor of the alarm-change writer (`alarm_cursors` table)."""


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
        self._thread = Background("alarm-timeseries", self.sync, None) if background else None
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
        """Buffer the point of one alarm (alarm JSON, docs/alarms.md) and wake the writer;
        keyword arguments as `alarm_change_point` (change, reason, change_id, at)."""
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
