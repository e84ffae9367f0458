"""Alarm and device routes (JSON, Server-Sent Events) and the staff pages (SPEC §7)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import AwareDatetime, BaseModel, Field

from carehub.errors import ConflictError, NotFoundError
from services.alarms.model import Outcome
from services.web.app import login_redirect, page
from services.web.context import HubContext
from services.web.deps import Ctx, StaffUser, current_user
from services.web.ports import AlarmsPort

_LOGGER = logging.getLogger(__name__)

PING_INTERVAL_S = 3.0
"""The board shows 'connection lost' after two missed pings."""


class ResolveBody(BaseModel):
    """What staff say when they close an alarm."""

    outcome: Outcome
    note: str | None = Field(None, max_length=2000)


def _alarms(ctx: HubContext) -> AlarmsPort:
    if ctx.alarms is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="alarm service not running")
    port: AlarmsPort = ctx.alarms
    return port


def _alarms_dep(ctx: Ctx) -> AlarmsPort:
    return _alarms(ctx)


Alarms = Annotated[AlarmsPort, Depends(_alarms_dep)]


def _api_router() -> APIRouter:
    router = APIRouter(prefix="/api", tags=["alarms"])

    @router.get("/alarms")
    def list_alarms(
        ctx: Ctx,
        _user: StaffUser,
        state: Annotated[Literal["active", "all"], Query()] = "active",
        since: Annotated[AwareDatetime | None, Query()] = None,
    ) -> list[dict[str, Any]]:
        """Alarms (SPEC §5 JSON): active ones, or all raised since a time."""
        return _alarms(ctx).list_alarms(state, since)

    @router.post("/alarms/{alarm_id}/ack")
    def acknowledge(ctx: Ctx, user: StaffUser, alarm_id: str) -> dict[str, Any]:
        """'I'm on it': acknowledge an alarm in the user's name (409 if impossible)."""
        return _alarms(ctx).acknowledge(alarm_id, user.username)

    @router.post("/alarms/{alarm_id}/resolve")
    def resolve(ctx: Ctx, user: StaffUser, alarm_id: str, body: ResolveBody) -> dict[str, Any]:
        """Close an alarm with its outcome (409 if already resolved)."""
        return _alarms(ctx).resolve(alarm_id, user.username, body.outcome, body.note)

    @router.get("/alarms/stream", response_class=EventSourceResponse)
    async def stream(
        request: Request, ctx: Ctx, _user: StaffUser, port: Alarms
    ) -> AsyncIterator[ServerSentEvent]:
        """One `alarm` event per alarm state change, a `ping` with hub health every 3 s."""
        loop = asyncio.get_running_loop()
        changes: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=10_000)

        def _listener(envelope: dict[str, Any]) -> None:
            loop.call_soon_threadsafe(changes.put_nowait, envelope)

        unsubscribe = port.subscribe(_listener)
        try:
            yield ServerSentEvent(event="ping", data=_health(ctx), retry=2000)
            while not await request.is_disconnected():
                try:
                    envelope = await asyncio.wait_for(changes.get(), PING_INTERVAL_S)
                except TimeoutError:
                    yield ServerSentEvent(event="ping", data=_health(ctx))
                    continue
                yield ServerSentEvent(event="alarm", data=envelope)
        finally:
            unsubscribe()

    @router.get("/devices", tags=["devices"])
    def devices(ctx: Ctx, _user: StaffUser) -> list[dict[str, Any]]:
        """Device status: last seen, battery, online, binding."""
        return device_rows(ctx, with_names=False)

    return router


def _health(ctx: HubContext) -> dict[str, Any]:
    try:
        components = dict(ctx.health())
    except Exception:  # noqa: BLE001 - the board shows degraded rather than failing
        components = {"health": "probe failed"}
    ok = all(v == "ok" for v in components.values())
    # the hub's clock, so ages on the board are right when it runs simulated time (the demo)
    now = ctx.clock.now().isoformat()
    return {"status": "ok" if ok else "degraded", "components": components, "now": now}


def device_rows(ctx: HubContext, *, with_names: bool) -> list[dict[str, Any]]:
    """Every device of the site with its current binding and last known state."""
    now = ctx.clock.now()
    states = {s["device_id"]: s for s in (ctx.devices() if ctx.devices else [])}
    off = monitoring_off(ctx) if with_names else set()
    rows = []
    for device_id, bindings in sorted(ctx.site.bindings.items()):
        binding = ctx.site.binding_at(device_id, now) or bindings[-1]
        st = states.get(device_id, {})
        residents = ctx.site.residents_of(binding)
        row: dict[str, Any] = {
            "device_id": device_id,
            "kind": binding.kind.value,
            "model": binding.model,
            "room": ctx.site.room_of(binding),
            "resident_id": binding.resident,
            "ward": ctx.site.room_ward.get(ctx.site.room_of(binding) or ""),
            "last_seen": st.get("last_seen"),
            "battery": st.get("battery"),
            "rssi": st.get("rssi"),
            "online": bool(st.get("online", False)),
        }
        if with_names:
            names = [ctx.site.residents[r].name or r for r in residents if r in ctx.site.residents]
            row["resident_label"] = ", ".join(names)
            row["monitoring_off"] = bool(residents) and all(r in off for r in residents)
            row["last_seen_local"] = _local(ctx, row["last_seen"])
            row["attention"] = _attention(ctx, row)
        rows.append(row)
    return rows


def monitoring_off(ctx: HubContext) -> set[str]:
    """Residents whose monitoring an admin switched off (none when the hub has no privacy
    service); the staff screens must say so, or a quiet board would look like a calm night."""
    if ctx.privacy is None:
        return set()
    off: set[str] = ctx.privacy.monitoring_off()
    return off


def _local(ctx: HubContext, value: Any) -> str | None:
    if value is None:
        return None
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return when.astimezone(ctx.site.tz).strftime("%d.%m %H:%M")


def _attention(ctx: HubContext, row: dict[str, Any]) -> str:
    lang_da = ctx.site.site.locale == "da"
    if not row["online"]:
        return "Offline" if not lang_da else "Offline – tjek sensoren"
    threshold = ctx.site.rules_for(row["resident_id"]).battery_low.threshold
    if row["battery"] is not None and row["battery"] <= threshold:
        return "Battery low" if not lang_da else "Lavt batteri – skift det"
    return ""


def _pages_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    def _user_or_none(request: Request, ctx: HubContext) -> Any:
        try:
            return current_user(request, ctx, None)
        except HTTPException:
            return None

    @router.get("/", response_class=HTMLResponse)
    def board(request: Request, ctx: Ctx) -> Response:
        user = _user_or_none(request, ctx)
        if user is None:
            return login_redirect(request)
        from services.web.app import locale_for
        from services.web.i18n import translator

        residents = {
            r.id: (r.name or r.id) for r in ctx.site.site.residents
        }  # names only on the staff screen
        board_data = {
            "texts": translator(locale_for(request, ctx)),
            "residents": residents,
            "csrf": _csrf(request),
            "outcomes": [o.value for o in Outcome],
            "stale_after_s": PING_INTERVAL_S * 2 + 1,
            "now": ctx.clock.now().isoformat(),
        }
        off = monitoring_off(ctx)
        unmonitored = [
            {"label": residents[r.id], "room": r.room}
            for r in ctx.site.site.residents
            if r.id in off
        ]
        return page(
            request, ctx, "board.html", user, board_data=board_data, unmonitored=unmonitored
        )

    @router.get("/devices", response_class=HTMLResponse)
    def devices_page(request: Request, ctx: Ctx) -> Response:
        user = _user_or_none(request, ctx)
        if user is None:
            return login_redirect(request)
        rows = device_rows(ctx, with_names=True)
        rows.sort(key=lambda r: (not r["attention"], r["room"] or ""))
        return page(request, ctx, "devices.html", user, devices=rows)

    return router


def _csrf(request: Request) -> str:
    from services.web.deps import current_session

    session = current_session(request)
    return session.csrf if session else ""


def install(app: FastAPI) -> None:
    """Mount the alarm, device and page routes."""
    from services.web import routes_admin, routes_reports

    app.include_router(_api_router())
    app.include_router(_pages_router())
    app.include_router(routes_reports.router())
    for admin in routes_admin.router():
        app.include_router(admin)

    app.add_exception_handler(NotFoundError, _domain_error)
    app.add_exception_handler(ConflictError, _domain_error)


async def _domain_error(_request: Request, err: Exception) -> JSONResponse:
    """The kernel's "no such thing" is 404 and "not in a state that allows it" is 409, for
    every route at once: the routes need no try/except of their own."""
    code = status.HTTP_404_NOT_FOUND if isinstance(err, NotFoundError) else status.HTTP_409_CONFLICT
    return JSONResponse({"detail": str(err)}, status_code=code)
