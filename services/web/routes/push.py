"""Web Push from the board: the web app manifest, the service worker, the app icons, the
hub's VAPID public key and the subscriptions of signed-in users (docs/notifications.md,
"Web Push").

The service worker is served from the root (`/sw.js`) so that its scope covers the board; it
is a file of its own, as the Content-Security-Policy allows no inline script. Subscribing is
a state change of a signed-in user: staff and above, with the session's CSRF token for a
cookie session, like the other state-changing routes.
"""

from __future__ import annotations

import struct
import zlib
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, HTTPException, Response, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.web.deps import Ctx, StaffUser
from services.web.routes.notify import notify_port

router = APIRouter(tags=["notifications"])

STATIC = Path(__file__).resolve().parents[1] / "static"
ICON_SIZES = (192, 512)
BACKGROUND = (0x10, 0x14, 0x1A)
"""The board's dark background."""
MARK = (0xD9, 0x30, 0x25)
"""An alarm red square in the middle: recognisable on a home screen, no artwork to ship."""


@lru_cache(maxsize=len(ICON_SIZES))
def icon_png(size: int) -> bytes:
    """A square PNG made in code: dark, with a red square in the middle third."""
    low, high = size // 3, size - size // 3
    plain = bytes(BACKGROUND) * size
    marked = bytes(BACKGROUND) * low + bytes(MARK) * (high - low) + bytes(BACKGROUND) * low
    raw = b"".join(b"\x00" + (marked if low <= y < high else plain) for y in range(size))

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)  # 8-bit RGB
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


@router.get("/manifest.webmanifest", include_in_schema=False)
def manifest(ctx: Ctx) -> Response:
    """The web app manifest: the board added to a home screen opens as an app (iOS delivers
    Web Push only to such apps)."""
    body = {
        "name": f"CareHub · {ctx.site.site.name}",
        "short_name": "CareHub",
        "start_url": "/",
        "scope": "/",
        "display": "standalone",
        "background_color": "#10141a",
        "theme_color": "#10141a",
        "icons": [
            {"src": f"/icon-{s}.png", "sizes": f"{s}x{s}", "type": "image/png"} for s in ICON_SIZES
        ],
    }
    return JSONResponse(body, media_type="application/manifest+json")


@router.get("/sw.js", include_in_schema=False)
def service_worker() -> Response:
    """The service worker, from the root so that its scope is the whole app."""
    return Response(
        (STATIC / "sw.js").read_bytes(),
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "no-cache"},
    )


@router.get("/icon-{size}.png", include_in_schema=False)
def icon(size: int) -> Response:
    """The app icons the manifest names."""
    if size not in ICON_SIZES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such icon")
    return Response(
        icon_png(size), media_type="image/png", headers={"Cache-Control": "max-age=86400"}
    )


class PushKey(BaseModel):
    """What the board needs to subscribe."""

    public_key: str | None = Field(description="VAPID public key (base64url); null when off")
    wards: list[dict[str, str]] = Field(description="The site's wards, `id` and `name`")
    subscriptions: list[dict[str, Any]] = Field(description="The user's subscribed browsers")


class PushSubscriptionIn(BaseModel):
    """A browser's `PushSubscription.toJSON()` and the wards it should hear."""

    subscription: dict[str, Any] = Field(description="endpoint and keys (p256dh, auth)")
    wards: list[str] = Field(min_length=1, max_length=50)


class PushEndpoint(BaseModel):
    """Which subscription to forget."""

    endpoint: str = Field(max_length=2048)


@router.get("/api/push/key", response_model=PushKey)
def push_key(ctx: Ctx, user: StaffUser) -> Any:
    """The hub's VAPID public key, the wards to choose from, the user's subscriptions."""
    port = notify_port(ctx)
    return {
        "public_key": port.push_key(),
        "wards": [{"id": w.id, "name": w.name} for w in ctx.site.site.wards],
        "subscriptions": port.push_subscriptions(user.username),
    }


@router.post("/api/push/subscriptions", status_code=status.HTTP_201_CREATED)
def subscribe(ctx: Ctx, user: StaffUser, body: PushSubscriptionIn) -> dict[str, Any]:
    """Store this browser's subscription for the user and wards: it becomes a phone of the
    `webpush` channel (subscribing again with the same endpoint updates it)."""
    try:
        return notify_port(ctx).push_subscribe(user.username, body.wards, body.subscription)
    except ValueError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(err)) from err


@router.delete("/api/push/subscriptions", status_code=status.HTTP_204_NO_CONTENT)
def unsubscribe(ctx: Ctx, user: StaffUser, body: Annotated[PushEndpoint, Body()]) -> Response:
    """Forget one of the user's subscriptions (404 when there is none)."""
    notify_port(ctx).push_unsubscribe(user.username, body.endpoint)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
