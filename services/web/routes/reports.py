"""Report routes for managers: JSON, CSV and the /reports page (docs/freed-hours.md,
docs/web-app.md).

A report over a long period costs seconds of CPU, so the web answers at most
`MAX_WEB_NIGHTS` nights and computes one report at a time per user: a second while the
first runs is 429 (docs/security.md, "Expensive reports"). `carehub report` has no such cap.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, PlainTextResponse, Response

from services.reports.service import (
    before_after,
    freed_hours,
    freed_hours_csv,
    report_period,
    sensitivity,
    utilisation,
)
from services.reports.xlsx import freed_hours_xlsx
from services.web.context import HubContext
from services.web.deps import Ctx, ManagerUser, PageUser, report_source
from services.web.i18n import Locale, translator
from services.web.pages import locale_for, login_redirect, page
from services.web.report_charts import before_after_chart, report_charts
from services.web.report_pdf import freed_hours_pdf
from services.web.users import Role, User

router = APIRouter(tags=["reports"])
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

From = Annotated[date | None, Query(alias="from", description="First night (local start date).")]
To = Annotated[date | None, Query(alias="to", description="Last night, included.")]
Ward = Annotated[str | None, Query(description="Only this ward.")]
BeforeFrom = Annotated[
    date | None, Query(alias="before_from", description="First night before the sensors.")
]
BeforeTo = Annotated[
    date | None, Query(alias="before_to", description="Last night before the sensors.")
]
Lang = Annotated[
    Locale | None, Query(description="da or en; else the language cookie, else the site's.")
]


MAX_WEB_NIGHTS = 366
"""A year, leap years included: enough for a yearly report, and a bound on one request's
cost (a three-year sensitivity report took 25 s of CPU)."""

BUSY_RETRY_AFTER_S = 5

_running: set[str] = set()
_running_lock = threading.Lock()


@contextmanager
def _one_at_a_time(user: User) -> Iterator[None]:
    """Hold the user's report slot; 429 with Retry-After while another of theirs runs."""
    with _running_lock:
        if user.username in _running:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                detail="another report of yours is being computed; try again when it is done",
                headers={"Retry-After": str(BUSY_RETRY_AFTER_S)},
            )
        _running.add(user.username)
    try:
        yield
    finally:
        with _running_lock:
            _running.discard(user.username)


def _period(ctx: HubContext, first: date | None, last: date | None) -> tuple[date, date]:
    try:
        a, b = report_period(ctx.site, ctx.clock.now(), first, last)
    except ValueError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(err)) from err
    if (b - a).days + 1 > MAX_WEB_NIGHTS:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"at most {MAX_WEB_NIGHTS} nights per report on the web; use carehub report",
        )
    return a, b


def _ward(ctx: HubContext, ward: str | None) -> str | None:
    if ward and ward not in {w.id for w in ctx.site.site.wards}:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=f"no ward {ward!r}")
    return ward or None


def _before(ctx: HubContext, first: date | None, last: date | None) -> tuple[date, date] | None:
    """The before period, when one is asked for: both ends, in order, within the web's cap."""
    if first is None and last is None:
        return None
    if first is None or last is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail="give both before_from and before_to, or neither",
        )
    return _period(ctx, first, last)


def before_after_section(
    ctx: HubContext,
    fh: dict[str, Any],
    before: tuple[date, date] | None,
    ward: str | None,
    t: dict[str, str],
) -> dict[str, Any] | None:
    """The before/after rows of the PDF (`reports/before_after.html`), with `fh` as the after
    period, when a before period is given: the measured work and visits per resident-night
    of both, and the modelled freed hours beside them (docs/freed-hours.md)."""
    if before is None:
        return None
    after = (date.fromisoformat(fh["from"]), date.fromisoformat(fh["to"]))
    ba = before_after(ctx.site, report_source(ctx), before, after, ward, modelled=fh)
    b, a = ba["before"], ba["after"]
    rows = [
        (t["report_nights"], "nights", ""),
        (t["report_resident_nights"], "resident_nights", ""),
        (t["report_visits_per_rn"], "visits_per_resident_night", ""),
        (t["report_work_per_rn"], "work_minutes_per_resident_night", ""),
    ]
    return {
        "before": {"from": b["from"], "to": b["to"]},
        "after": {"from": a["from"], "to": a["to"]},
        "rows": [
            {"label": label, "before": b[key], "after": a[key], "unit": unit}
            for label, key, unit in rows
        ],
        "difference": ba["difference"],
        "modelled": ba["modelled"],
    }


def _audit(ctx: HubContext, user: User, report: str, a: date, b: date, ward: str | None) -> None:
    """Every read of a report is in the audit log: who, which report, which period."""
    if ctx.alarms is not None:
        detail = {"report": report, "from": a.isoformat(), "to": b.isoformat(), "ward": ward}
        ctx.alarms.record_access(user.username, "report_read", detail)


@router.get("/api/reports/freed-hours")
def freed_json(
    ctx: Ctx, user: ManagerUser, first: From = None, last: To = None, ward: Ward = None
) -> dict[str, Any]:
    """Freed night-shift hours (docs/freed-hours.md) with the assumptions used."""
    a, b = _period(ctx, first, last)
    w = _ward(ctx, ward)
    _audit(ctx, user, "freed-hours", a, b, w)
    with _one_at_a_time(user):
        return freed_hours(ctx.site, report_source(ctx), a, b, w, from_first_measured=not first)


@router.get("/api/reports/freed-hours.csv", response_class=PlainTextResponse)
def freed_csv(
    ctx: Ctx, user: ManagerUser, first: From = None, last: To = None, ward: Ward = None
) -> Response:
    """The same as CSV, for a spreadsheet."""
    a, b = _period(ctx, first, last)
    w = _ward(ctx, ward)
    _audit(ctx, user, "freed-hours.csv", a, b, w)
    with _one_at_a_time(user):
        report = freed_hours(ctx.site, report_source(ctx), a, b, w, from_first_measured=not first)
    name = f"carehub-freed-hours-{ctx.site.site.site}-{report['from']}-{b}.csv"
    return Response(
        freed_hours_csv(report),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/api/reports/sensitivity")
def sensitivity_json(
    ctx: Ctx, user: ManagerUser, first: From = None, last: To = None, ward: Ward = None
) -> dict[str, Any]:
    """Freed hours per night with each assumption swept over its range, drivers first."""
    a, b = _period(ctx, first, last)
    w = _ward(ctx, ward)
    _audit(ctx, user, "sensitivity", a, b, w)
    with _one_at_a_time(user):
        return sensitivity(ctx.site, report_source(ctx), a, b, w, from_first_measured=not first)


PeriodBeforeFrom = Annotated[date, Query(description="First night of the before period.")]
PeriodBeforeTo = Annotated[date, Query(description="Last night of the before period, included.")]
AfterFrom = Annotated[date, Query(description="First night of the after period.")]
AfterTo = Annotated[date, Query(description="Last night of the after period, included.")]


@router.get("/api/reports/before-after")
def before_after_json(
    ctx: Ctx,
    user: ManagerUser,
    before_from: PeriodBeforeFrom,
    before_to: PeriodBeforeTo,
    after_from: AfterFrom,
    after_to: AfterTo,
    ward: Ward = None,
) -> dict[str, Any]:
    """Measured night work from the visit log, before and after, beside the modelled freed
    hours (docs/freed-hours.md, "Measured night work")."""
    before = _period(ctx, before_from, before_to)
    after = _period(ctx, after_from, after_to)
    w = _ward(ctx, ward)
    if ctx.alarms is not None:
        detail = {
            "report": "before-after",
            "before": f"{before[0]}:{before[1]}",
            "after": f"{after[0]}:{after[1]}",
            "ward": w,
        }
        ctx.alarms.record_access(user.username, "report_read", detail)
    with _one_at_a_time(user):
        return before_after(ctx.site, report_source(ctx), before, after, w)


@router.get("/api/reports/utilisation")
def utilisation_json(
    ctx: Ctx, user: ManagerUser, first: From = None, last: To = None
) -> dict[str, Any]:
    """Alarms, response times, coverage, uptime, adherence, diaper changes, concurrency."""
    a, b = _period(ctx, first, last)
    _audit(ctx, user, "utilisation", a, b, None)
    with _one_at_a_time(user):
        return utilisation(ctx.site, report_source(ctx), a, b, from_first_measured=not first)


@router.get("/reports", response_class=HTMLResponse, include_in_schema=False)
def reports_page(
    request: Request,
    ctx: Ctx,
    user: PageUser,
    first: From = None,
    last: To = None,
    ward: Ward = None,
    before_first: BeforeFrom = None,
    before_last: BeforeTo = None,
) -> Response:
    """All the reports on one page, with charts (managers and admins). The before/after
    section compares the page's period (after) with `before_from`…`before_to`, by default the
    as many nights just before it."""
    if user is None:
        return login_redirect(request)
    if not user.role.allows(Role.MANAGER):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="needs role manager or above")
    a, b = _period(ctx, first, last)
    w = _ward(ctx, ward)
    asked = _before(ctx, before_first, before_last)
    locale = locale_for(request, ctx)
    t = translator(locale)
    _audit(ctx, user, "reports-page", a, b, w)
    with _one_at_a_time(user):
        # without a `from`, the period starts at its first measured night (docs/freed-hours.md)
        fh = freed_hours(ctx.site, report_source(ctx), a, b, w, from_first_measured=not first)
        a = date.fromisoformat(fh["from"])
        ut = utilisation(ctx.site, report_source(ctx), a, b)
        sens = sensitivity(ctx.site, report_source(ctx), a, b, w)
        length = b - a + timedelta(days=1)
        before = asked or _period(ctx, a - length, a - timedelta(days=1))
        ba = before_after(ctx.site, report_source(ctx), before, (a, b), w, modelled=fh)
    charts = report_charts(fh, ut, t, locale)
    charts["before_after"] = before_after_chart(ba, t)
    return page(
        request,
        ctx,
        "reports.html",
        user,
        fh=fh,
        ut=ut,
        sens=sens,
        charts=charts,
        ba=ba,
        first=a.isoformat(),
        last=b.isoformat(),
        before_first=before[0].isoformat(),
        before_last=before[1].isoformat(),
        ward=w or "",
        wards=ctx.site.site.wards,
    )


def _export_name(ctx: HubContext, a: date, b: date, suffix: str) -> dict[str, str]:
    name = f"carehub-freed-hours-{ctx.site.site.site}-{a}-{b}.{suffix}"
    return {"Content-Disposition": f'attachment; filename="{name}"'}


def _made_at(ctx: HubContext) -> str:
    """Now on the care home's clock, as its staff read it."""
    now = ctx.clock.now().astimezone(ctx.site.tz)
    return f"{now:%Y-%m-%d %H:%M} ({ctx.site.site.timezone})"


def _ward_name(ctx: HubContext, ward: str | None, t: dict[str, str]) -> str:
    names = {w.id: w.name for w in ctx.site.site.wards}
    return names.get(ward, ward) if ward else t["all_wards"]


@router.get(
    "/api/reports/freed-hours.pdf",
    response_class=Response,
    responses={200: {"content": {"application/pdf": {}}}},
)
def freed_pdf(
    request: Request,
    ctx: Ctx,
    user: ManagerUser,
    first: From = None,
    last: To = None,
    ward: Ward = None,
    before_first: BeforeFrom = None,
    before_last: BeforeTo = None,
    lang: Lang = None,
) -> Response:
    """One printable page for a municipality: the figures, the 95 % interval, the chart, the
    assumptions with the defaults marked, before/after where a before period is given
    (docs/freed-hours.md, "Exports")."""
    a, b = _period(ctx, first, last)
    w = _ward(ctx, ward)
    before = _before(ctx, before_first, before_last)
    locale = lang or locale_for(request, ctx)
    t = translator(locale)
    _audit(ctx, user, "freed-hours.pdf", a, b, w)
    with _one_at_a_time(user):
        fh = freed_hours(ctx.site, report_source(ctx), a, b, w)
        pdf = freed_hours_pdf(
            fh,
            locale,
            site=ctx.site.site,
            user=user.username,
            ward_name=_ward_name(ctx, w, t),
            made_at=_made_at(ctx),
            before_after=before_after_section(ctx, fh, before, w, t),
        )
    return Response(pdf, media_type="application/pdf", headers=_export_name(ctx, a, b, "pdf"))


@router.get(
    "/api/reports/freed-hours.xlsx",
    response_class=Response,
    responses={200: {"content": {XLSX: {}}}},
)
def freed_xlsx(
    request: Request,
    ctx: Ctx,
    user: ManagerUser,
    first: From = None,
    last: To = None,
    ward: Ward = None,
    lang: Lang = None,
) -> Response:
    """The report as a business-case workbook: benefits low / expected / high, assumptions
    with their source, measurements by night and by ward (docs/freed-hours.md, "Exports")."""
    a, b = _period(ctx, first, last)
    w = _ward(ctx, ward)
    locale = lang or locale_for(request, ctx)
    _audit(ctx, user, "freed-hours.xlsx", a, b, w)
    with _one_at_a_time(user):
        fh = freed_hours(ctx.site, report_source(ctx), a, b, w)
    body = freed_hours_xlsx(fh, locale, _ward_name(ctx, w, translator(locale)), _made_at(ctx))
    return Response(body, media_type=XLSX, headers=_export_name(ctx, a, b, "xlsx"))
