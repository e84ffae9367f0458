"""Device status: the JSON list and the devices page (docs/web-app.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from services.web.context import HubContext
from services.web.deps import Ctx, PageUser, StaffUser
from services.web.i18n import translator
from services.web.models import DevicePublic
from services.web.pages import login_redirect, monitoring_off, page

router = APIRouter()


# tagged "alarms" too: the OpenAPI document has listed it there since the route was written
@router.get("/api/devices", tags=["alarms", "devices"], response_model=list[DevicePublic])
def devices(ctx: Ctx, _user: StaffUser) -> list[dict[str, Any]]:
    """Device status: last seen, battery, online, binding."""
    return device_rows(ctx, with_names=False)


@router.get("/devices", response_class=HTMLResponse, include_in_schema=False)
def devices_page(request: Request, ctx: Ctx, user: PageUser) -> Response:
    """Every sensor, what needs fixing first."""
    if user is None:
        return login_redirect(request)
    rows = device_rows(ctx, with_names=True)
    rows.sort(key=lambda r: (not r["attention"], r["room"] or ""))
    return page(request, ctx, "devices.html", user, devices=rows, channels=channel_rows(ctx))


def channel_rows(ctx: HubContext) -> list[dict[str, str]]:
    """Each notification channel to each phone, failing first (docs/notifications.md)."""
    names = {p.id: p.name for p in ctx.site.site.phones}
    rows = []
    for key, state in ctx.channels().items():
        channel, _, phone = key.partition(":")
        rows.append(
            {"channel": channel, "phone": phone, "name": names.get(phone, phone), "state": state}
        )
    order = {"failing": 0, "unknown": 1, "ok": 2}
    rows.sort(key=lambda r: (order.get(r["state"], 0), r["name"], r["channel"]))
    return rows


def device_rows(ctx: HubContext, *, with_names: bool) -> list[dict[str, Any]]:
    """Every device of the site with its current binding and last known state."""
    now = ctx.clock.now()
    states = {s["device_id"]: s for s in (ctx.devices() if ctx.devices else [])}
    off = monitoring_off(ctx) if with_names else set()
    site_texts = translator(ctx.site.site.locale)  # the site's language, not the page's
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
            row["attention"] = _attention(ctx, row, site_texts)
        rows.append(row)
    return rows


def _local(ctx: HubContext, value: Any) -> str | None:
    if value is None:
        return None
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return when.astimezone(ctx.site.tz).strftime("%d.%m %H:%M")


def _attention(ctx: HubContext, row: dict[str, Any], t: dict[str, str]) -> str:
    """What the night shift must fix about a device first, or ""."""
    if not row["online"]:
        return t["attention_offline"]
    threshold = ctx.site.rules_for(row["resident_id"]).battery_low.threshold
    if row["battery"] is not None and row["battery"] <= threshold:
        return t["attention_battery_low"]
    return ""
