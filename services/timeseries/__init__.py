"""Alarm changes and nightly freed hours as InfluxDB points, for the Grafana dashboards.

Alarms live in SQLite and freed hours are computed on demand, but Grafana reads InfluxDB
only: these writers copy what the dashboards need into the gateway's bucket, in the layout of
`gateway.store.influx_schema`. They carry pseudonymous ids only (resident, room, device),
never a staff user's or resident's name.

Nothing here is on the alarm path. A dashboard point that cannot be written is retried and,
at worst, late; an alarm never waits for InfluxDB. Points are idempotent (same series, same
time), so writing a change or a night twice only rewrites it.

- `points`: alarm changes and freed-hours reports → points (pure);
- `writer`: `TimeseriesWriter`, synchronous retried writes, buffered until a flush succeeds;
- `background`: the thread each of the two writers below runs on;
- `alarm_sync`: `AlarmChangeWriter`, the alarm change log → points, from a cursor of its own;
- `nightly`: `FreedHoursJob`, the last few nights' freed hours → points, every hour.

Wiring (`carehub run`, in the rules part only, so each change is written by one process):

    ts = TimeseriesWriter.from_settings(settings)            # None without CAREHUB_INFLUX_URL
    alarm_points = AlarmChangeWriter(ts, log=alarm_service)  # catches up from its cursor
    unsubscribe = alarm_service.subscribe(alarm_points)
    nightly = FreedHoursJob(ts, index, report_source, clock).start()
    # on stop: unsubscribe(); alarm_points.close(); nightly.stop(); ts.close()

The municipality's side of docs/multisite.md, `CentralIngest`, is in `services.central`.
"""

from __future__ import annotations

from services.timeseries.alarm_sync import CURSOR_NAME, AlarmChangeWriter, ChangeLog
from services.timeseries.background import BACKGROUND_RETRY_S
from services.timeseries.nightly import (
    JOB_INTERVAL_S,
    NIGHTS_REWRITTEN,
    FreedHoursJob,
    ReportIndex,
    last_complete_night,
    write_nights,
)
from services.timeseries.points import (
    alarm_change_point,
    envelope_point,
    freed_hours_points,
    required_time,
)
from services.timeseries.writer import (
    MAX_PENDING,
    RETRY_DELAYS_S,
    TimeseriesUnavailableError,
    TimeseriesWriter,
    WriteApi,
)

__all__ = [
    "BACKGROUND_RETRY_S",
    "CURSOR_NAME",
    "JOB_INTERVAL_S",
    "MAX_PENDING",
    "NIGHTS_REWRITTEN",
    "RETRY_DELAYS_S",
    "AlarmChangeWriter",
    "ChangeLog",
    "FreedHoursJob",
    "ReportIndex",
    "TimeseriesUnavailableError",
    "TimeseriesWriter",
    "WriteApi",
    "alarm_change_point",
    "envelope_point",
    "freed_hours_points",
    "last_complete_night",
    "required_time",
    "write_nights",
]
