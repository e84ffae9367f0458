"""Acknowledge links and the phones page (docs/notifications.md).

A link is `/ack/{alarm_id}/{token}`: the ntfy action button POSTs to it; a phone's browser
that opens it GETs a page with a confirm button, so a prefetch or a link preview never
acknowledges. The token is the only credential (signed, single-use, bound to one alarm and
one phone, expiring): no session, so no CSRF token either.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, Response

from services.web.context import HubContext
from services.web.deps import Ctx, PageUser
from services.web.models import AlarmPublic
from services.web.pages import login_redirect, page
from services.web.ports import NotifyPort

router = APIRouter(tags=["notifications"])


def notify_port(ctx: HubContext) -> NotifyPort:
    """The notifications desk; 404 when the site has no phones (no link can be valid)."""
    if ctx.notify is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="notifications are not set up")
    return ctx.notify


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


@router.get("/ack/{alarm_id}/{token}", response_class=HTMLResponse, include_in_schema=False)
def ack_page(request: Request, ctx: Ctx, alarm_id: str, token: str) -> Response:
    """The confirm page a phone's browser shows; it changes nothing."""
    phone = notify_port(ctx).phone_name(alarm_id, token)
    alarm = ctx.alarms.get(alarm_id) if ctx.alarms is not None else {"rule": "", "room": ""}
    title = f"{alarm.get('rule', '')} · {alarm.get('room') or ''}".strip(" ·")
    return page(
        request, ctx, "ack.html", None, phone=phone, alarm_title=title, action=request.url.path
    )


@router.post("/ack/{alarm_id}/{token}", response_model=AlarmPublic)
def ack(request: Request, ctx: Ctx, alarm_id: str, token: str) -> Any:
    """Acknowledge through a link, once: 403 not this hub's or another alarm's, 410 expired,
    409 used already or the alarm no longer waits. The audit log says which phone."""
    alarm = notify_port(ctx).redeem(alarm_id, token)
    if _wants_html(request):
        return page(request, ctx, "ack.html", None, done=alarm["acknowledged_by"])
    return JSONResponse(alarm)


@router.get("/phones", response_class=HTMLResponse, include_in_schema=False)
def phones(request: Request, ctx: Ctx, user: PageUser) -> Response:
    """What each phone was sent and when: the ladder, visible without any hardware."""
    if user is None:
        return login_redirect(request)
    sent = ctx.notify.phones_sent() if ctx.notify is not None else []
    return page(request, ctx, "phones.html", user, phones=sent)
