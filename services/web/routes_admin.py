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
from pydantic import BaseModel, Field

from services.web.context import HubContext
from services.web.deps import AdminUser, Ctx, current_session, current_user
from services.web.security import csrf_ok
from services.web.users import Role, User

_LOGGER = logging.getLogger(__name__)


class MonitoringBody(BaseModel):
    """Switch a resident's alarms on or off; switching off needs a reason."""

    enabled: bool
    reason: str | None = Field(
        None, max_length=500, description="Why (required to switch off). No names."
    )


def _privacy(ctx: HubContext) -> Any:
    if ctx.privacy is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail="privacy service not running"
        )
    return ctx.privacy


def _local_time(ctx: HubContext, value: str | None) -> str:
    """An RFC 3339 time as the site's local 'dd.mm.yyyy HH:MM'."""
    if value is None:
        return ""
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return when.astimezone(ctx.site.tz).strftime("%d.%m.%Y %H:%M")


def _api_router() -> APIRouter:
    router = APIRouter(prefix="/api/admin", tags=["admin"])

    @router.get("/residents")
    def residents(ctx: Ctx, _user: AdminUser) -> list[dict[str, Any]]:
        """Every resident (pseudonymous id, room, ward) with their monitoring state."""
        result: list[dict[str, Any]] = _privacy(ctx).residents()
        return result

    @router.post("/residents/{resident_id}/monitoring")
    def set_monitoring(
        ctx: Ctx, user: AdminUser, resident_id: str, body: MonitoringBody
    ) -> dict[str, Any]:
        """Switch a resident's alarms on or off, with a reason (stored with history, audited).
        404 for an unknown resident, 422 when switching off without a reason."""
        try:
            result: dict[str, Any] = _privacy(ctx).set_monitoring(
                resident_id, body.enabled, body.reason, user.username
            )
        except ValueError as err:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(err)) from err
        return result

    @router.get("/residents/{resident_id}/export")
    def export(ctx: Ctx, user: AdminUser, resident_id: str) -> JSONResponse:
        """Everything held about a resident and who accessed it (audited). 404 if unknown."""
        document = _privacy(ctx).export(resident_id, user.username)
        name = f"carehub-export-{resident_id}-{document['generated_at'][:10]}.json"
        return JSONResponse(
            document, headers={"Content-Disposition": f'attachment; filename="{name}"'}
        )

    @router.post(
        "/selftest",
        responses={504: {"description": '`{"ok": false, "stage": ...}`: the stage that failed'}},
    )
    def selftest(ctx: Ctx, user: AdminUser) -> JSONResponse:
        """Send a synthetic message through the whole alarm path and wait (≤ 10 s) for its
        alarm: `{"ok": true, "alarm_id", "elapsed_ms"}`, or 504 naming the stage that failed
        (`not_published`, `no_event`, `no_alarm`). The alarm is resolved in the admin's name."""
        result = _privacy(ctx).run_selftest(user.username)
        return JSONResponse(
            result.to_json(),
            status_code=status.HTTP_200_OK if result.ok else status.HTTP_504_GATEWAY_TIMEOUT,
        )

    return router


def _pages_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def _page_admin(request: Request, ctx: HubContext) -> User | Response:
        from services.web.app import login_redirect

        try:
            user = current_user(request, ctx, None)
        except HTTPException:
            return login_redirect(request)
        if not user.role.allows(Role.ADMIN):
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="needs role admin")
        return user

    def _form_admin(request: Request, ctx: HubContext, csrf: str) -> User:
        """A browser form post: the session's user, who must be an admin, and its CSRF token
        as a form field (forms cannot send the header the scripts send)."""
        session = current_session(request)
        user = ctx.users.get(session.username) if session else None
        if session is None or user is None:
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="not logged in")
        if not csrf_ok(session, csrf):
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="missing or wrong CSRF token")
        if not user.role.allows(Role.ADMIN):
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="needs role admin")
        return user

    def _render(
        request: Request, ctx: HubContext, user: User, code: int = 200, **extra: Any
    ) -> Response:
        from services.web.app import page

        privacy = _privacy(ctx)
        names = {r.id: r.name for r in ctx.site.site.residents}  # the staff page may name them
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

    @router.get("/admin", response_class=HTMLResponse)
    def admin_page(request: Request, ctx: Ctx) -> Response:
        user = _page_admin(request, ctx)
        if isinstance(user, Response):
            return user
        return _render(request, ctx, user, changed=request.query_params.get("changed"))

    @router.post("/admin/residents/{resident_id}/monitoring", response_class=HTMLResponse)
    def admin_monitoring(
        request: Request,
        ctx: Ctx,
        resident_id: str,
        enabled: Annotated[str, Form()],
        csrf: Annotated[str, Form()] = "",
        reason: Annotated[str, Form(max_length=500)] = "",
    ) -> Response:
        user = _form_admin(request, ctx, csrf)
        try:
            _privacy(ctx).set_monitoring(resident_id, enabled == "on", reason, user.username)
        except ValueError:
            return _render(request, ctx, user, 422, error_for=resident_id)
        return RedirectResponse(f"/admin?changed={resident_id}", status_code=303)

    @router.post("/admin/selftest", response_class=HTMLResponse)
    def admin_selftest(request: Request, ctx: Ctx, csrf: Annotated[str, Form()] = "") -> Response:
        user = _form_admin(request, ctx, csrf)
        result = _privacy(ctx).run_selftest(user.username)
        return _render(request, ctx, user, 200 if result.ok else 504, selftest=result)

    return router


def router() -> list[APIRouter]:
    """The admin API and page routes."""
    return [_api_router(), _pages_router()]
