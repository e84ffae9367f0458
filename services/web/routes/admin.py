"""Admin routes: residents' monitoring switches, their data exports, the alarm-path self-test.

The JSON API lives under `/api/admin` (role admin). The `/admin` page works without any
script of its own (the Content-Security-Policy forbids inline scripts): plain forms that
post to `/admin/...` with the session's CSRF token as a form field, and redirect back.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from services.web.context import HubContext
from services.web.deps import AdminUser, Ctx, PageUser, current_session, privacy_port
from services.web.models import MonitoringBody
from services.web.pages import login_redirect, page
from services.web.security import csrf_ok
from services.web.users import Role, User

_LOGGER = logging.getLogger(__name__)

router = APIRouter(tags=["admin"])


@router.get("/api/admin/residents")
def residents(ctx: Ctx, _user: AdminUser) -> list[dict[str, Any]]:
    """Every resident (pseudonymous id, room, ward) with their monitoring state."""
    return privacy_port(ctx).residents()


@router.post("/api/admin/residents/{resident_id}/monitoring")
def set_monitoring(
    ctx: Ctx, user: AdminUser, resident_id: str, body: MonitoringBody
) -> dict[str, Any]:
    """Switch a resident's alarms on or off, with a reason (stored with history, audited).
    404 for an unknown resident, 422 when switching off without a reason."""
    try:
        result = privacy_port(ctx).set_monitoring(
            resident_id, body.enabled, body.reason, user.username
        )
    except ValueError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(err)) from err
    return result


@router.get("/api/admin/residents/{resident_id}/export")
def export(ctx: Ctx, user: AdminUser, resident_id: str) -> JSONResponse:
    """Everything held about a resident and who accessed it (audited). 404 if unknown."""
    document = privacy_port(ctx).export(resident_id, user.username)
    name = f"carehub-export-{resident_id}-{document['generated_at'][:10]}.json"
    return JSONResponse(document, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.post(
    "/api/admin/selftest",
    responses={504: {"description": '`{"ok": false, "stage": ...}`: the stage that failed'}},
)
def selftest(ctx: Ctx, user: AdminUser) -> JSONResponse:
    """Send a synthetic message through the whole alarm path and wait (≤ 10 s) for its
    alarm: `{"ok": true, "alarm_id", "elapsed_ms"}`, or 504 naming the stage that failed
    (`not_published`, `no_event`, `no_alarm`). The alarm is resolved in the admin's name."""
    result = privacy_port(ctx).run_selftest(user.username)
    return JSONResponse(
        result.to_json(),
        status_code=status.HTTP_200_OK if result.ok else status.HTTP_504_GATEWAY_TIMEOUT,
    )


@router.get("/admin", response_class=HTMLResponse, include_in_schema=False)
def admin_page(request: Request, ctx: Ctx, user: PageUser) -> Response:
    """Residents with their monitoring switches and exports, and the self-test button."""
    if user is None:
        return login_redirect(request)
    if not user.role.allows(Role.ADMIN):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="needs role admin")
    return _render(request, ctx, user, changed=request.query_params.get("changed"))


@router.post(
    "/admin/residents/{resident_id}/monitoring",
    response_class=HTMLResponse,
    include_in_schema=False,
)
def admin_monitoring(
    request: Request,
    ctx: Ctx,
    resident_id: str,
    enabled: Annotated[str, Form()],
    csrf: Annotated[str, Form()] = "",
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    """The page's monitoring switch: back to the page, or the page again with the error."""
    user = _form_admin(request, ctx, csrf)
    try:
        privacy_port(ctx).set_monitoring(resident_id, enabled == "on", reason, user.username)
    except ValueError:
        return _render(request, ctx, user, 422, error_for=resident_id)
    return RedirectResponse(f"/admin?changed={resident_id}", status_code=303)


@router.post("/admin/selftest", response_class=HTMLResponse, include_in_schema=False)
def admin_selftest(request: Request, ctx: Ctx, csrf: Annotated[str, Form()] = "") -> Response:
    """The page's self-test button: the page again with the result."""
    user = _form_admin(request, ctx, csrf)
    result = privacy_port(ctx).run_selftest(user.username)
    return _render(request, ctx, user, 200 if result.ok else 504, selftest=result)


def _form_admin(request: Request, ctx: HubContext, csrf: str) -> User:
    """A browser form post: the session's user, who must be an admin, and its CSRF token
    as a form field (forms cannot send the header the scripts send).

    Called in the route's body, after FastAPI has read the form, as it always was: a
    malformed form is 422 before anyone is asked to log in."""
    session = current_session(request)
    user = ctx.users.get(session.username) if session else None
    if session is None or user is None or user.generation != session.generation:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="not logged in")
    if not csrf_ok(session, csrf):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="missing or wrong CSRF token")
    if not user.role.allows(Role.ADMIN):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="needs role admin")
    return user


def _render(
    request: Request, ctx: HubContext, user: User, code: int = 200, **extra: Any
) -> Response:
    """The admin page, with the residents' names (the staff page may name them)."""
    privacy = privacy_port(ctx)
    names = {r.id: r.name for r in ctx.site.site.residents}
    residents = [
        {
            **r,
            "name": names.get(r["resident_id"]),
            "changed_local": _local_time(ctx, r["monitoring"]["changed_at"]),
        }
        for r in privacy.residents()
    ]
    response = page(request, ctx, "admin.html", user, residents=residents, **extra)
    response.status_code = code
    return response


def _local_time(ctx: HubContext, value: str | None) -> str:
    """An RFC 3339 time as the site's local 'dd.mm.yyyy HH:MM'."""
    if value is None:
        return ""
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when.astimezone(ctx.site.tz).strftime("%d.%m.%Y %H:%M")
