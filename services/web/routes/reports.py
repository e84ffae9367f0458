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

from services.reports import svg
from services.reports.service import (
    before_after,
    freed_hours,
    freed_hours_csv,
    report_period,
    sensitivity,
    utilisation,
)
from services.web.context import HubContext
from services.web.deps import Ctx, ManagerUser, PageUser, report_source
from services.web.i18n import translator
from services.web.pages import locale_for, login_redirect, page
from services.web.users import Role, User

router = APIRouter(tags=["reports"])

From = Annotated[date | None, Query(alias="from", description="First night (local start date).")]
To = Annotated[date | None, Query(alias="to", description="Last night, included.")]
Ward = Annotated[str | None, Query(description="Only this ward.")]


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
        return freed_hours(ctx.site, report_source(ctx), a, b, w)


@router.get("/api/reports/freed-hours.csv", response_class=PlainTextResponse)
def freed_csv(
    ctx: Ctx, user: ManagerUser, first: From = None, last: To = None, ward: Ward = None
) -> Response:
    """The same as CSV, for a spreadsheet."""
    a, b = _period(ctx, first, last)
    w = _ward(ctx, ward)
    _audit(ctx, user, "freed-hours.csv", a, b, w)
    with _one_at_a_time(user):
        report = freed_hours(ctx.site, report_source(ctx), a, b, w)
    name = f"carehub-freed-hours-{ctx.site.site.site}-{a}-{b}.csv"
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
        return sensitivity(ctx.site, report_source(ctx), a, b, w)


BeforeFrom = Annotated[date, Query(description="First night of the before period.")]
BeforeTo = Annotated[date, Query(description="Last night of the before period, included.")]
AfterFrom = Annotated[date, Query(description="First night of the after period.")]
AfterTo = Annotated[date, Query(description="Last night of the after period, included.")]


@router.get("/api/reports/before-after")
def before_after_json(
    ctx: Ctx,
    user: ManagerUser,
    before_from: BeforeFrom,
    before_to: BeforeTo,
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
        return utilisation(ctx.site, report_source(ctx), a, b)


@router.get("/reports", response_class=HTMLResponse, include_in_schema=False)
def reports_page(
    request: Request,
    ctx: Ctx,
    user: PageUser,
    first: From = None,
    last: To = None,
    ward: Ward = None,
    before_from: Annotated[date | None, Query()] = None,
    before_to: Annotated[date | None, Query()] = None,
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
    _audit(ctx, user, "reports-page", a, b, w)
    length = b - a + timedelta(days=1)
    before = _period(ctx, before_from or a - length, before_to or a - timedelta(days=1))
    with _one_at_a_time(user):
        fh = freed_hours(ctx.site, report_source(ctx), a, b, w)
        ut = utilisation(ctx.site, report_source(ctx), a, b)
        sens = sensitivity(ctx.site, report_source(ctx), a, b, w)
        ba = before_after(ctx.site, report_source(ctx), before, (a, b), w, modelled=fh)
    t = translator(locale_for(request, ctx))
    charts = _charts(fh, ut, t)
    charts["before_after"] = _before_after_chart(ba, t)
    return page(
        request,
        ctx,
        "reports.html",
        user,
        fh=fh,
        ut=ut,
        sens=sens,
        ba=ba,
        charts=charts,
        first=a.isoformat(),
        last=b.isoformat(),
        before_first=before[0].isoformat(),
        before_last=before[1].isoformat(),
        ward=w or "",
        wards=ctx.site.site.wards,
    )


def _before_after_chart(ba: dict[str, Any], t: dict[str, str]) -> str:
    """Both periods' nights by their work per resident-night (docs/freed-hours.md)."""

    def per_night(period: dict[str, Any]) -> list[float]:
        return [n["work_minutes"] / n["resident_nights"] for n in period["by_night"]]

    return svg.two_histograms(
        t["chart_before_after"],
        t["chart_before_after_x"],
        t["chart_before_after_y"],
        [
            (t["report_before"], per_night(ba["before"])),
            (t["report_after"], per_night(ba["after"])),
        ],
    )


def _charts(fh: dict[str, Any], ut: dict[str, Any], t: dict[str, str]) -> dict[str, str]:
    """The page's SVG charts, drawn from the freed-hours and utilisation reports."""
    ci = fh["freed_hours_per_night"]["ci95"]
    return {
        "freed": svg.line_with_band(
            t["chart_freed"],
            [n["night"][5:] for n in fh["by_night"]],
            [n["freed_hours_total"] for n in fh["by_night"]],
            (ci[0], ci[1]) if ci[0] is not None and ci[1] is not None else None,
            " h",
        ),
        "by_hour": svg.bars(
            t["chart_by_hour"],
            [f"{h['hour']:02d}" for h in ut["alarms"]["by_hour_of_night"]],
            [float(h["count"]) for h in ut["alarms"]["by_hour_of_night"]],
        ),
        "concurrency": svg.bars(
            t["chart_concurrency"],
            [f"{h['hour']:02d}" for h in ut["concurrency"]["by_hour_of_night"]],
            [h["minutes_with_two_or_more"] for h in ut["concurrency"]["by_hour_of_night"]],
            " min",
        ),
        "response": svg.bars(
            t["chart_response"],
            [
                f"{h['from']}–{h['to']}" if h["to"] is not None else f"{h['from']}+"
                for h in ut["response_minutes_histogram"]
            ],
            [float(h["count"]) for h in ut["response_minutes_histogram"]],
        ),
        "coverage": svg.bars(
            t["chart_coverage"],
            list(ut["device_uptime"]),
            [v * 100 for v in ut["device_uptime"].values()],
            " %",
        ),
    }
