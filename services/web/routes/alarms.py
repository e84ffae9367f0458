"""The alarm API (JSON and Server-Sent Events) and the alarm board page (docs/web-app.md)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent

from services.alarms.model import Outcome
from services.web.context import HubContext
from services.web.deps import Alarms, Ctx, PageUser, StaffUser, alarms_port
from services.web.i18n import translator
from services.web.models import (
    AlarmDetailPublic,
    AlarmPublic,
    ProvisionalAlarmPublic,
    ResolveBody,
    SupportedTime,
)
from services.web.pages import csrf_token, locale_for, login_redirect, monitoring_off, page
from services.web.ports import AlarmsPort, NotifyPort

_LOGGER = logging.getLogger(__name__)

PING_INTERVAL_S = 3.0
"""The board shows 'connection lost' after two missed pings."""

router = APIRouter(tags=["alarms"])


@router.get("/api/alarms", response_model=list[AlarmPublic | ProvisionalAlarmPublic])
def list_alarms(
    ctx: Ctx,
    _user: StaffUser,
    state: Annotated[Literal["active", "all"], Query()] = "active",
    since: Annotated[SupportedTime | None, Query()] = None,
) -> list[dict[str, Any]]:
    """Alarms (JSON, docs/alarms.md): active ones, or all raised since a time."""
    return alarms_port(ctx).list_alarms(state, since)


@router.post("/api/alarms/{alarm_id}/ack", response_model=AlarmPublic)
def acknowledge(ctx: Ctx, user: StaffUser, alarm_id: str) -> dict[str, Any]:
    """'I'm on it': acknowledge an alarm in the user's name (409 if impossible)."""
    return alarms_port(ctx).acknowledge(alarm_id, user.username)


@router.post("/api/alarms/{alarm_id}/resolve", response_model=AlarmPublic)
def resolve(ctx: Ctx, user: StaffUser, alarm_id: str, body: ResolveBody) -> dict[str, Any]:
    """Close an alarm with its outcome (409 if already resolved)."""
    return alarms_port(ctx).resolve(alarm_id, user.username, body.outcome, body.note)


@router.get("/api/alarms/stream", response_class=EventSourceResponse)
async def stream(
    request: Request, ctx: Ctx, _user: StaffUser, port: Alarms
) -> AsyncIterator[ServerSentEvent]:
    """One `alarm` event per alarm state change, a `deliveries` event whenever an alarm's
    sends to phones change (who was told, when, how it went), a `ping` with hub health every
    3 s."""
    loop = asyncio.get_running_loop()
    changes: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(maxsize=10_000)

    def _listener(envelope: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(changes.put_nowait, ("alarm", envelope))

    def _deliveries(update: dict[str, Any]) -> None:
        loop.call_soon_threadsafe(changes.put_nowait, ("deliveries", update))

    unsubscribers = [port.subscribe(_listener)]
    try:
        yield ServerSentEvent(event="ping", data=_health(ctx), retry=2000)
        if ctx.notify is not None:
            unsubscribers.append(ctx.notify.subscribe(_deliveries))
            for update in await asyncio.to_thread(_active_deliveries, port, ctx.notify):
                yield ServerSentEvent(event="deliveries", data=update)
        while not await request.is_disconnected():
            try:
                kind, data = await asyncio.wait_for(changes.get(), PING_INTERVAL_S)
            except TimeoutError:
                yield ServerSentEvent(event="ping", data=_health(ctx))
                continue
            yield ServerSentEvent(event=kind, data=data)
    finally:
        for unsubscribe in unsubscribers:
            unsubscribe()


def _active_deliveries(port: AlarmsPort, notify: NotifyPort) -> list[dict[str, Any]]:
    """What the phones were told of each active alarm so far (the stream's start)."""
    out = []
    for alarm in port.list_alarms("active", None):
        deliveries = notify.deliveries(str(alarm["alarm_id"]))
        if deliveries:
            out.append({"alarm_id": alarm["alarm_id"], "deliveries": deliveries})
    return out


def _health(ctx: HubContext) -> dict[str, Any]:
    """The stream's ping: the hub's health, and its clock."""
    try:
        components = dict(ctx.health())
    except Exception:  # noqa: BLE001 - the board shows degraded rather than failing
        components = {"health": "probe failed"}
    ok = all(v == "ok" for v in components.values())
    # the hub's clock, so ages on the board are right when it runs simulated time (the demo)
    now = ctx.clock.now().isoformat()
    return {"status": "ok" if ok else "degraded", "components": components, "now": now}


@router.get("/api/alarms/{alarm_id}", response_model=AlarmDetailPublic)
def get_alarm(ctx: Ctx, _user: StaffUser, alarm_id: str) -> dict[str, Any]:
    """One alarm with its delivery records: who was told, on which channel, at which step of
    the ladder, and how it went (docs/notifications.md)."""
    alarm = alarms_port(ctx).get(alarm_id)
    deliveries = ctx.notify.deliveries(alarm_id) if ctx.notify is not None else []
    return {**alarm, "deliveries": deliveries}


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def board(request: Request, ctx: Ctx, user: PageUser) -> Response:
    """The alarm board; its script (static/board.js) fills it from the API and the stream."""
    if user is None:
        return login_redirect(request)
    residents = {r.id: (r.name or r.id) for r in ctx.site.site.residents}  # names only here
    board_data = {
        "texts": translator(locale_for(request, ctx)),
        "residents": residents,
        "csrf": csrf_token(request),
        "outcomes": [o.value for o in Outcome],
        "stale_after_s": PING_INTERVAL_S * 2 + 1,
        "now": ctx.clock.now().isoformat(),
        "tz": ctx.site.site.timezone,
    }
    off = monitoring_off(ctx)
    unmonitored = [
        {"label": residents[r.id], "room": r.room} for r in ctx.site.site.residents if r.id in off
    ]
    return page(request, ctx, "board.html", user, board_data=board_data, unmonitored=unmonitored)
