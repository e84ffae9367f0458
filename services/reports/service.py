"""Reports from the stores: where the data comes from, and the CSV form of the report."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

import numpy as np

from carehub.site import DeviceKind, SiteIndex
from carehub.visits import PresenceEvent, Visit, pair_presence
from services.reports.before_after import Period, PeriodInput, before_after_report
from services.reports.checks import CheckRecord, digital_checks_section
from services.reports.freed_hours import (
    AlarmRecord,
    FreedHoursInput,
    ResidentNight,
    Seconds,
    freed_hours_report,
    nights_between,
    resident_nights,
)
from services.reports.utilisation import (
    DeliveryRecord,
    EventRecord,
    NightUse,
    events_window,
    night_uses,
    utilisation_report,
)

REPORT_EVENT_TYPES = ("dose_due", "taken", "missed", "saturation", "detached", "attached")
NOT_REPORTED_RULES = frozenset({"self_test"})
"""Alarms that are not care: an admin's self-test must not count as a night's work."""
DELIVERY_LOOKAHEAD = timedelta(hours=1)
"""Sends of an alarm raised just before a period's end are recorded just after it."""


@dataclass(frozen=True, slots=True)
class StoredNight:
    """What is kept of a night once its raw events are deleted (`CAREHUB_RETENTION_DAYS`):
    the freed-hours rows (docs/freed-hours.md) per resident and the utilisation report's figures."""

    night: date
    residents: dict[str, ResidentNight]
    use: NightUse


StoredNights = Callable[[date, date], Mapping[date, StoredNight]]
"""Nights in [first, last] kept as aggregates, by night label."""


class ReportSource(Protocol):
    """Read access to the stored time series and alarms."""

    def device_times(self, lo: datetime, hi: datetime) -> dict[str, Seconds]:
        """device id → sorted Unix-second times of every accepted message in [lo, hi)."""
        ...

    def alarms(self, lo: datetime, hi: datetime) -> list[AlarmRecord]:
        """Alarms raised in [lo, hi)."""
        ...

    def events(self, lo: datetime, hi: datetime, types: Sequence[str]) -> list[EventRecord]:
        """Canonical events of the given types in [lo, hi)."""
        ...

    def deliveries(self, lo: datetime, hi: datetime) -> list[DeliveryRecord]:
        """Sends to phones recorded in [lo, hi) (the notification outbox)."""
        ...


def _window(index: SiteIndex, first: date, last: date) -> tuple[datetime, datetime]:
    lo = index.night_bounds(first)[0]
    hi = index.night_bounds(last)[1]
    longest = max((b.heartbeat_seconds for s in index.bindings.values() for b in s), default=60)
    # a message shortly before the night keeps its device online into the night
    return lo - timedelta(seconds=3 * longest), hi


MAX_NIGHTS = 3 * 366
EARLIEST = date(2000, 1, 1)
LATEST = date(2199, 12, 31)


def report_period(
    index: SiteIndex, now: datetime, first: date | None, last: date | None
) -> tuple[date, date]:
    """The nights asked for; by default the last 30 complete nights. ValueError if impossible."""
    for given in (first, last):
        if given is not None and not EARLIEST <= given <= LATEST:
            msg = f"{given} is outside the dates a report can cover ({EARLIEST} … {LATEST})"
            raise ValueError(msg)
    today = now.astimezone(index.tz).date()
    last = last or today - timedelta(days=1)
    first = first or last - timedelta(days=29)
    if last < first:
        msg = f"'to' ({last}) is before 'from' ({first})"
        raise ValueError(msg)
    if (last - first).days >= MAX_NIGHTS:
        msg = f"at most {MAX_NIGHTS} nights per report"
        raise ValueError(msg)
    return first, last


def stored_nights(source: ReportSource, first: date, last: date) -> Mapping[date, StoredNight]:
    """Nights of [first, last] the source keeps only as aggregates (their raw events are
    gone); a source without `stored_nights(first, last)` keeps none."""
    read = getattr(source, "stored_nights", None)
    if read is None:
        return {}
    kept: Mapping[date, StoredNight] = read(first, last)
    return kept


def digital_checks(source: ReportSource, lo: datetime, hi: datetime) -> list[CheckRecord]:
    """Digital checks recorded in [lo, hi) (docs/round.md); a source without
    `digital_checks(lo, hi)` has none."""
    read = getattr(source, "digital_checks", None)
    if read is None:
        return []
    checks: list[CheckRecord] = read(lo, hi)
    return checks


def night_window(index: SiteIndex, night: date) -> tuple[datetime, datetime]:
    """Every event time one night's figures read: coverage's look back of three heartbeats,
    a diaper's last reading before the night, a dose taken after the night ends."""
    lo, hi = _window(index, night, night)
    ev_lo, ev_hi = events_window(index, night, night)
    return min(lo, ev_lo), max(hi, ev_hi)


def _raw_runs(first: date, last: date, stored: Mapping[date, Any]) -> list[tuple[date, date]]:
    """The runs of consecutive nights of [first, last] that are not stored: only those are
    read from the raw events."""
    runs: list[tuple[date, date]] = []
    for night in nights_between(first, last):
        if night in stored:
            continue
        if runs and runs[-1][1] == night - timedelta(days=1):
            runs[-1] = (runs[-1][0], night)
        else:
            runs.append((night, night))
    return runs


def _raw_device_times(
    index: SiteIndex, source: ReportSource, runs: list[tuple[date, date]]
) -> dict[str, Seconds]:
    parts = [source.device_times(*_window(index, a, b)) for a, b in runs]
    if len(parts) == 1:
        return parts[0]
    merged: dict[str, list[Seconds]] = {}
    for part in parts:
        for device_id, times in part.items():
            merged.setdefault(device_id, []).append(times)
    # windows of runs a day apart can overlap by the look back: a message counts once
    return {d: np.unique(np.concatenate(chunks)) for d, chunks in merged.items()}


def _raw_events(
    index: SiteIndex, source: ReportSource, runs: list[tuple[date, date]]
) -> list[EventRecord]:
    out: list[EventRecord] = []
    seen: set[tuple[str, datetime, str]] = set()
    for a, b in runs:
        for ev in source.events(*events_window(index, a, b), REPORT_EVENT_TYPES):
            key = (ev.device_id, ev.ts, ev.type)
            if len(runs) > 1 and key in seen:
                continue
            seen.add(key)
            out.append(ev)
    return out


def _input(
    index: SiteIndex, source: ReportSource, first: date, last: date
) -> tuple[FreedHoursInput, Mapping[date, StoredNight]]:
    """What the method reads: raw message times only for the nights not stored as
    aggregates (kept by retention, or cached once closed); alarms always."""
    lo, hi = _window(index, first, last)
    stored = stored_nights(source, first, last)
    coverage = {
        (resident_id, night): row.coverage
        for night, kept in stored.items()
        for resident_id, row in kept.residents.items()
    }
    runs = _raw_runs(first, last, stored)
    data = FreedHoursInput(
        _raw_device_times(index, source, runs),
        source.alarms(lo, hi),
        coverage=coverage,
        measured={night: kept.use.measured for night, kept in stored.items()},
    )
    return data, stored


def freed_hours(
    index: SiteIndex,
    source: ReportSource,
    first: date,
    last: date,
    ward: str | None = None,
    *,
    from_first_measured: bool = False,
) -> dict[str, Any]:
    """The freed-hours report (docs/freed-hours.md) for a period, from the stores (nights past
    retention from their aggregates). `from_first_measured`: the period is the default one,
    so it starts at its first measured night ("Unmeasured nights")."""
    data, _stored = _input(index, source, first, last)
    report = freed_hours_report(
        index, first, last, data, ward, from_first_measured=from_first_measured
    )
    return json_safe_report(report)


def sensitivity(
    index: SiteIndex,
    source: ReportSource,
    first: date,
    last: date,
    ward: str | None = None,
    *,
    from_first_measured: bool = False,
) -> dict[str, Any]:
    """How the freed hours move with each assumption, for a period, from the stores."""
    from services.reports.sensitivity import sensitivity_report

    data, _stored = _input(index, source, first, last)
    report = sensitivity_report(
        index, first, last, data, ward, from_first_measured=from_first_measured
    )
    return json_safe_report(report)


def utilisation(
    index: SiteIndex,
    source: ReportSource,
    first: date,
    last: date,
    *,
    from_first_measured: bool = False,
) -> dict[str, Any]:
    """The utilisation report for a period, from the stores, with the digital checks."""
    lo, hi = _window(index, first, last)
    stored = stored_nights(source, first, last)
    runs = _raw_runs(first, last, stored)
    alarms = source.alarms(lo, hi)
    report = utilisation_report(
        index,
        first,
        last,
        alarms,
        _raw_events(index, source, runs),
        _raw_device_times(index, source, runs),
        {night: kept.use for night, kept in stored.items()},
        source.deliveries(lo, hi + DELIVERY_LOOKAHEAD),
        from_first_measured=from_first_measured,
    )
    first = date.fromisoformat(report["from"])
    unmeasured = set(report["unmeasured_nights"])
    measured = [n for n in nights_between(first, last) if n.isoformat() not in unmeasured]
    # checks are never pruned: read for every night, like the alarms
    checks_lo, checks_hi = index.night_bounds(first)[0], index.night_bounds(last)[1]
    report["digital_checks"] = digital_checks_section(
        index, first, last, digital_checks(source, checks_lo, checks_hi), alarms, measured
    )
    return json_safe_report(report)


PRESENCE_TYPES = ("staff_in", "staff_out")


def visit_log(source: ReportSource, lo: datetime, hi: datetime) -> list[Visit]:
    """Imported visits overlapping [lo, hi) (docs/freed-hours.md); a source without
    `visits(lo, hi)` has none."""
    read = getattr(source, "visits", None)
    if read is None:
        return []
    visits: list[Visit] = read(lo, hi)
    return visits


def period_visits(index: SiteIndex, source: ReportSource, first: date, last: date) -> PeriodInput:
    """One period's visit log: the imported visits, and the presence devices' visits paired
    from their stored `staff_in` / `staff_out` events, with the presence devices' message
    times (docs/freed-hours.md, "Measured night work")."""
    lo, hi = index.night_bounds(first)[0], index.night_bounds(last)[1]
    visits = list(visit_log(source, lo, hi))
    presence = {d for d, s in index.bindings.items() if s[0].kind is DeviceKind.PRESENCE}
    device_times: dict[str, Seconds] = {}
    if presence:
        cap = timedelta(minutes=index.benefit_for(None)["response_cap_minutes"])
        events = [
            PresenceEvent(
                e.device_id,
                e.ts,
                "staff_in" if e.type == "staff_in" else "staff_out",
                e.data.get("staff"),
            )
            for e in source.events(lo - cap, hi + cap, PRESENCE_TYPES)
            if e.device_id in presence
        ]
        for pv in pair_presence(events, cap):
            b = index.binding_at(pv.device_id, pv.entered_at)
            if b is not None:
                visits.append(
                    Visit(
                        index.site.site,
                        pv.entered_at,
                        pv.left_at,
                        b.room,
                        b.resident,
                        pv.staff,
                        None,
                        f"device:{pv.device_id}",
                    )
                )
        times = source.device_times(lo, hi)
        device_times = {d: t for d, t in times.items() if d in presence}
    return PeriodInput(Period(first, last), visits, device_times)


def before_after(
    index: SiteIndex,
    source: ReportSource,
    before: tuple[date, date],
    after: tuple[date, date],
    ward: str | None = None,
    modelled: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Measured night work before and after (docs/freed-hours.md), beside the modelled freed
    hours of the after period (`modelled`: that freed-hours report, when already made)."""
    if modelled is None:
        modelled = freed_hours(index, source, after[0], after[1], ward)
    report = before_after_report(
        index,
        period_visits(index, source, *before),
        period_visits(index, source, *after),
        modelled["freed_hours_per_night"]["mean"],
        ward,
    )
    return json_safe_report(report)


def before_after_csv(report: dict[str, Any]) -> str:
    """The periods, the difference and the assumptions as rows, for a spreadsheet."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["section", "key", "value", "ci95_low", "ci95_high"])
    for name in ("before", "after"):
        period = report[name]
        for key in (
            "from",
            "to",
            "nights",
            "resident_nights",
            "visits_per_resident_night",
            "work_minutes_per_resident_night",
        ):
            value = period[key]
            w.writerow([name, key, _num(value, 3) if isinstance(value, float) else value, "", ""])
    diff = report["difference"]
    for key in ("work_minutes_per_resident_night", "visits_per_resident_night"):
        lo, hi = diff[key]["ci95"]
        w.writerow(["difference", key, _num(diff[key]["mean"], 3), _num(lo, 3), _num(hi, 3)])
    for key in ("hours_per_night", "annual_hours", "fte"):
        w.writerow(["difference", key, _num(diff[key], 3), "", ""])
    modelled = report["modelled"]["freed_hours_per_night"]
    w.writerow(["modelled", "freed_hours_per_night", _num(modelled, 3), "", ""])
    for key, p in report["assumptions"]["parameters"].items():
        w.writerow(["assumption", f"{p['symbol']} ({key})", p["value"], p["source"], ""])
    for name in ("before", "after"):
        for night in report[name]["by_night"]:
            w.writerow(
                [
                    f"{name}_night",
                    night["night"],
                    _num(night["work_minutes"], 2),
                    night["resident_nights"],
                    _num(night["visits"], 2),
                ]
            )
    return out.getvalue()


def night_aggregates(
    index: SiteIndex, source: ReportSource, first: date, last: date
) -> dict[date, StoredNight]:
    """What to keep of each night of [first, last] before its raw events are deleted,
    computed from the raw events (the caller makes sure they are all still there)."""
    lo, hi = _window(index, first, last)
    ev_lo, ev_hi = events_window(index, first, last)
    data = FreedHoursInput(source.device_times(lo, hi), source.alarms(lo, hi))
    rows = resident_nights(index, first, last, data)
    uses = night_uses(
        index, first, last, source.events(ev_lo, ev_hi, REPORT_EVENT_TYPES), data.device_times
    )
    return {
        night: StoredNight(night, {r.resident_id: r for r in rows if r.night == night}, uses[night])
        for night in nights_between(first, last)
    }


def json_safe_report(report: dict[str, Any]) -> dict[str, Any]:
    """A report with NaN/inf as None (see json_safe)."""
    safe: dict[str, Any] = json_safe(report)
    return safe


def json_safe(value: Any) -> Any:
    """NaN and infinities (no nights, no alarms) → None: JSON has no NaN, and a number that
    is not there must not look like one."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _num(value: float | None, places: int) -> str:
    return "" if value is None else f"{value:.{places}f}"


def freed_hours_csv(report: dict[str, Any]) -> str:
    """One row per resident and night-total, then the assumptions, for a spreadsheet."""
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["section", "key", "freed_hours_total", "coverage_mean", "alarm_minutes", "nights"])
    w.writerow(
        [
            "site",
            report["site"],
            _num(report["freed_hours_total"], 3),
            _num(report["coverage_mean"], 4),
            "",
            report["nights"],
        ]
    )
    for ward, row in report["by_ward"].items():
        w.writerow(
            ["ward", ward, _num(row["freed_hours_total"], 3), _num(row["coverage_mean"], 4), "", ""]
        )
    for resident, row in report["by_resident"].items():
        w.writerow(
            [
                "resident",
                resident,
                _num(row["freed_hours_total"], 3),
                _num(row["coverage_mean"], 4),
                _num(row["alarm_minutes"], 1),
                row["nights"],
            ]
        )
    for night in report["by_night"]:
        w.writerow(
            ["night", night["night"], _num(night["freed_hours_total"], 3), "", "", night["hours"]]
        )
    mean = report["freed_hours_per_night"]
    w.writerow(["summary", "mean_per_night", _num(mean["mean"], 3), "", "", ""])
    w.writerow(["summary", "ci95_low", _num(mean["ci95"][0], 3), "", "", ""])
    w.writerow(["summary", "ci95_high", _num(mean["ci95"][1], 3), "", "", ""])
    w.writerow(["summary", "annual_hours", _num(report["annual_hours"], 1), "", "", ""])
    w.writerow(["summary", "fte", _num(report["fte"], 3), "", "", ""])
    # nights no device sent anything on: in no figure above (docs/freed-hours.md)
    w.writerow(["summary", "unmeasured_nights", "", "", "", len(report["unmeasured_nights"])])
    for key, p in report["assumptions"]["parameters"].items():
        w.writerow(["assumption", f"{p['symbol']} ({key})", p["value"], p["source"], "", ""])
    return out.getvalue()


class StoreReportSource:
    """A ReportSource over the gateway's event store and the alarm store."""

    def __init__(
        self,
        site: str,
        events: Any,
        alarms: Callable[[datetime, datetime], list[dict[str, Any]]],
        stored: StoredNights | None = None,
        deliveries: Callable[[datetime, datetime], list[dict[str, Any]]] | None = None,
        checks: Callable[[datetime, datetime], Sequence[Any]] | None = None,
        visits: Callable[[datetime, datetime], list[Visit]] | None = None,
    ) -> None:
        """`events` is a gateway EventStore; `alarms(lo, hi)` answers alarm JSON (docs/alarms.md);
        `stored(first, last)` the nights kept as aggregates (none when not given);
        `deliveries(lo, hi)` the notification outbox's records with their `alarm_id`
        (none when the site sends to no phone); `checks(lo, hi)` the digital checks, objects
        with `resident_id`, `at` and `result` (none when not given; docs/round.md);
        `visits(lo, hi)` the imported visit log (none when not given; docs/freed-hours.md)."""
        self._site = site
        self._events = events
        self._alarms = alarms
        self._stored = stored
        self._deliveries = deliveries
        self._checks = checks
        self._visits = visits

    def device_times(self, lo: datetime, hi: datetime) -> dict[str, Seconds]:
        """Message times per device from the event store."""
        times: dict[str, Seconds] = self._events.device_times(self._site, lo, hi)
        return times

    def alarms(self, lo: datetime, hi: datetime) -> list[AlarmRecord]:
        """Alarms raised in [lo, hi) from the alarm store, self-tests left out."""
        return [
            AlarmRecord.from_json(a)
            for a in self._alarms(lo, hi)
            if a.get("rule") not in NOT_REPORTED_RULES
        ]

    def events(self, lo: datetime, hi: datetime, types: Sequence[str]) -> list[EventRecord]:
        """Canonical events of the given types."""
        return [
            EventRecord(e.device_id, e.resident_id, e.type.value, e.ts, e.data)
            for e in self._events.query_events(self._site, lo, hi, types=list(types))
        ]

    def deliveries(self, lo: datetime, hi: datetime) -> list[DeliveryRecord]:
        """Sends to phones from the notification outbox, when there is one."""
        if self._deliveries is None:
            return []
        return [DeliveryRecord.from_json(d) for d in self._deliveries(lo, hi)]

    def stored_nights(self, first: date, last: date) -> Mapping[date, StoredNight]:
        """Nights kept as aggregates, from the aggregate store when there is one."""
        return {} if self._stored is None else self._stored(first, last)

    def digital_checks(self, lo: datetime, hi: datetime) -> list[CheckRecord]:
        """Digital checks recorded in [lo, hi), from the check store when there is one."""
        if self._checks is None:
            return []
        return [CheckRecord(c.resident_id, c.at, c.result) for c in self._checks(lo, hi)]

    def visits(self, lo: datetime, hi: datetime) -> list[Visit]:
        """Imported visits overlapping [lo, hi), from the visit store when there is one."""
        return [] if self._visits is None else self._visits(lo, hi)
