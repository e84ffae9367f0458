"""The nightly freed hours → InfluxDB, for the Grafana dashboards: freed hours are computed
on demand, Grafana reads InfluxDB only, so the last few nights are computed and written every
hour (idempotent rewrites)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Protocol

from carehub.clock import Clock, SystemClock
from services.reports.service import freed_hours
from services.timeseries.background import Background
from services.timeseries.writer import TimeseriesWriter

NIGHTS_REWRITTEN = 3
"""Complete nights the nightly job rewrites each run: late data and imports are picked up."""
JOB_INTERVAL_S = 3600.0


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
        self._thread = Background("freed-hours-timeseries", self.run_once, interval_s)

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
