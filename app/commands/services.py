"""`carehub report ...`: the freed-hours report (docs/freed-hours.md), measured night work before
and after, and the utilisation report in the terminal.

Heavy imports stay inside the command bodies so `carehub --help` stays fast.
"""

from __future__ import annotations

import getpass
import json
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:  # the command bodies import these lazily, for a fast `carehub --help`
    from carehub.site import SiteIndex
    from gateway.store.base import EventStore
    from services.alarms.service import AlarmService
    from services.reports.service import StoreReportSource

from app.cliutil import fail, resolve_site_path

report_app = typer.Typer(help="Reports from the stored history.", no_args_is_help=True)


class Format(StrEnum):
    """How a report is printed."""

    TABLE = "table"
    JSON = "json"
    CSV = "csv"


FromOption = Annotated[
    date | None,
    typer.Option("--from", formats=["%Y-%m-%d"], help="First night (its start date)."),
]
ToOption = Annotated[
    date | None, typer.Option("--to", formats=["%Y-%m-%d"], help="Last night, included.")
]
SiteOpt = Annotated[
    Path | None,
    typer.Option("--site", "--config", help="Site file. Default: $CAREHUB_SITE_FILE."),
]


def _fmt_hours(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f} h"


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:5.1f} %"


def table(report: dict[str, Any]) -> str:
    """The freed-hours report as a person reads it: the answer, its uncertainty, the basis."""
    mean = report["freed_hours_per_night"]
    lo, hi = mean["ci95"]
    lines = [
        f"Freed night-shift hours — site {report['site']}, "
        f"nights {report['from']} … {report['to']}",
        "",
        f"  nights                 {report['nights']}"
        f"  ({report['resident_nights']} resident-nights)",
        f"  unmeasured nights      {len(report['unmeasured_nights'])}"
        "  (no device sent anything: left out of every figure)",
        f"  freed, total           {_fmt_hours(report['freed_hours_total'])}",
        f"  freed per night        {_fmt_hours(mean['mean'])}"
        f"  (95 % CI {_fmt_hours(lo)} … {_fmt_hours(hi)})",
        f"  per year               {_fmt_hours(report['annual_hours'])}"
        f"  = {report['fte'] or 0:.2f} full-time posts",
        f"  sensor coverage        {_pct(report['coverage_mean'])}",
        f"  room entries avoided   {report['room_entries_avoided'] or 0:,.0f}",
        "",
        "  by ward                freed total   coverage",
    ]
    for ward, row in report["by_ward"].items():
        lines.append(
            f"    {ward:<20} {_fmt_hours(row['freed_hours_total']):>11}"
            f"   {_pct(row['coverage_mean'])}"
        )
    assumptions = report["assumptions"]
    lines += ["", "Assumptions (site file `benefit`; 'default' = not measured by this home):"]
    for key, p in assumptions["parameters"].items():
        lines.append(f"    {p['symbol']:<5} {key:<30} {p['value']!s:>8}  {p['source']}")
    if assumptions.get("resident_overrides"):
        lines.append(
            f"    per-resident overrides: {len(assumptions['resident_overrides'])} residents"
        )
    lines.append(f"  {assumptions['note']}")
    return "\n".join(lines)


def _open(
    site_path: Path | None,
) -> tuple[SiteIndex, EventStore, AlarmService, StoreReportSource]:
    from carehub.errors import ConfigError
    from carehub.settings import get_settings
    from carehub.site import SiteIndex, load_site
    from gateway.store import open_store
    from gateway.store.visits import visits_between_in
    from services.alarms.service import AlarmService
    from services.notify.outbox import Outbox
    from services.privacy.aggregates import site_digest, stored_nights_in
    from services.reports.service import StoreReportSource
    from services.round.checks import checks_between_in

    settings = get_settings()
    try:
        index = SiteIndex(load_site(resolve_site_path(site_path)))
        if not settings.db.exists() and not settings.influx_url:
            fail(f"no history at {settings.db}: set CAREHUB_DB, or run `carehub backfill` first")
        events = open_store(settings)
    except ConfigError as err:
        fail(str(err))
    alarms = AlarmService.open(settings.db)
    # nights past CAREHUB_RETENTION_DAYS, and closed nights the hub cached, are read as aggregates
    kept = stored_nights_in(settings.db, index.site.site, site_digest(index))
    outbox = Outbox(alarms.store)

    def deliveries(lo: datetime, hi: datetime) -> list[dict[str, Any]]:
        """The phones' sends, for the utilisation report's notification times."""
        return [{**r.delivery(), "alarm_id": r.alarm_id} for r in outbox.between(lo, hi)]

    return (
        index,
        events,
        alarms,
        StoreReportSource(
            index.site.site,
            events,
            alarms.raised_between,
            kept,
            deliveries=deliveries,
            checks=checks_between_in(settings.db, index.site.site),
            visits=visits_between_in(settings.db, index.site.site),
        ),
    )


def _period(index: SiteIndex, first: date | None, last: date | None) -> tuple[date, date]:
    from datetime import UTC, datetime

    from services.reports.service import report_period

    try:
        return report_period(index, datetime.now(UTC), first, last)
    except ValueError as err:
        fail(str(err))


@report_app.command("freed-hours")
def freed_hours_cmd(
    first: FromOption = None,
    last: ToOption = None,
    ward: Annotated[str | None, typer.Option(help="Only this ward.")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="table, json or csv.")] = Format.TABLE,
    site: SiteOpt = None,
) -> None:
    """How many night-shift hours the sensors freed (docs/freed-hours.md), with the assumptions
    used."""
    from services.reports.service import freed_hours, freed_hours_csv

    index, events, alarms, source = _open(site)
    try:
        a, b = _period(index, first, last)
        if ward is not None and ward not in {w.id for w in index.site.wards}:
            fail(f"unknown ward {ward!r}; the site has {', '.join(w.id for w in index.site.wards)}")
        report = freed_hours(index, source, a, b, ward, from_first_measured=first is None)
        alarms.record_access(
            _actor(),
            "report_read",
            {
                "report": "freed-hours",
                "via": "cli",
                "from": a.isoformat(),
                "to": b.isoformat(),
                "ward": ward,
            },
        )
    finally:
        events.close()
        alarms.close()
    if fmt is Format.JSON:
        typer.echo(json.dumps(report, indent=2, default=str))
    elif fmt is Format.CSV:
        typer.echo(freed_hours_csv(report), nl=False)
    else:
        typer.echo(table(report))


@report_app.command("utilisation")
def utilisation_cmd(
    first: FromOption = None,
    last: ToOption = None,
    site: SiteOpt = None,
) -> None:
    """Alarms, response times, coverage, device uptime, adherence, diaper changes, digital
    checks (JSON)."""
    from services.reports.service import utilisation

    index, events, alarms, source = _open(site)
    try:
        a, b = _period(index, first, last)
        report = utilisation(index, source, a, b, from_first_measured=first is None)
        alarms.record_access(
            _actor(),
            "report_read",
            {"report": "utilisation", "via": "cli", "from": a.isoformat(), "to": b.isoformat()},
        )
    finally:
        events.close()
        alarms.close()
    typer.echo(json.dumps(report, indent=2, default=str))


def _span(value: str) -> tuple[date, date]:
    """`FROM:TO` night labels, both included."""
    first, sep, last = value.partition(":")
    try:
        if not sep:
            raise ValueError(value)
        return date.fromisoformat(first), date.fromisoformat(last)
    except ValueError:
        raise typer.BadParameter(f"{value!r}: use FROM:TO, e.g. 2026-01-01:2026-03-31") from None


SpanOption = Annotated[str, typer.Option(help="Nights FROM:TO (local start dates), both included.")]


def before_after_table(report: dict[str, Any]) -> str:
    """Measured night work as a person reads it: both periods, the difference, the model."""

    def num(value: float | None, fmt: str = ".2f") -> str:
        return "—" if value is None else format(value, fmt)

    lines = [
        f"Measured night work, before and after — site {report['site']}"
        + (f", ward {report['ward']}" if report["ward"] else ""),
        "",
        "  period   nights        resident-nights   visits / r-n   work min / r-n",
    ]
    for name in ("before", "after"):
        p = report[name]
        lines.append(
            f"  {name:<7}  {p['from']} … {p['to']}  {p['nights']:>4}"
            f"  {p['resident_nights']:>8}   {num(p['visits_per_resident_night']):>10}"
            f"   {num(p['work_minutes_per_resident_night'], '.1f'):>12}"
        )
    d = report["difference"]
    work, visits = d["work_minutes_per_resident_night"], d["visits_per_resident_night"]
    lines += [
        "",
        "  before − after",
        f"    work per resident-night   {num(work['mean'], '.1f')} min"
        f"  (95 % CI {num(work['ci95'][0], '.1f')} … {num(work['ci95'][1], '.1f')})",
        f"    visits per resident-night {num(visits['mean'])}"
        f"  (95 % CI {num(visits['ci95'][0])} … {num(visits['ci95'][1])})",
        f"    site hours per night      {num(d['hours_per_night'])} h"
        f" = {num(d['annual_hours'], ',.0f')} h a year = {num(d['fte'])} full-time posts",
        "",
        f"  modelled freed hours per night (after period): "
        f"{num(report['modelled']['freed_hours_per_night'])} h",
        "",
        "Assumptions:",
    ]
    for key, p in report["assumptions"]["parameters"].items():
        lines.append(f"    {p['symbol']:<5} {key:<30} {p['value']!s:>8}  {p['source']}")
    lines.append(f"  {report['assumptions']['measured']}.")
    return "\n".join(lines)


@report_app.command("before-after")
def before_after_cmd(
    before: SpanOption,
    after: SpanOption,
    ward: Annotated[str | None, typer.Option(help="Only this ward.")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="table, json or csv.")] = Format.TABLE,
    site: SiteOpt = None,
) -> None:
    """Measured night work from the visit log, before and after the sensors, beside the
    modelled freed hours (docs/freed-hours.md)."""
    from services.reports.service import before_after, before_after_csv

    spans = (_span(before), _span(after))
    index, events, alarms, source = _open(site)
    try:
        periods = [_period(index, a, b) for a, b in spans]
        if ward is not None and ward not in {w.id for w in index.site.wards}:
            fail(f"unknown ward {ward!r}; the site has {', '.join(w.id for w in index.site.wards)}")
        report = before_after(index, source, periods[0], periods[1], ward)
        alarms.record_access(
            _actor(),
            "report_read",
            {
                "report": "before-after",
                "via": "cli",
                "before": f"{periods[0][0]}:{periods[0][1]}",
                "after": f"{periods[1][0]}:{periods[1][1]}",
                "ward": ward,
            },
        )
    finally:
        events.close()
        alarms.close()
    if fmt is Format.JSON:
        typer.echo(json.dumps(report, indent=2, default=str))
    elif fmt is Format.CSV:
        typer.echo(before_after_csv(report), nl=False)
    else:
        typer.echo(before_after_table(report))


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"


def register(app: typer.Typer) -> None:
    """Add `carehub report ...`."""
    app.add_typer(report_app, name="report")
