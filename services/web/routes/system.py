"""Health and metrics, open to the hub's own network (docs/security.md)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from services.web.deps import Ctx

router = APIRouter(tags=["system"])


@router.get("/healthz")
def healthz(ctx: Ctx) -> JSONResponse:
    """Whether broker, store and services work; 503 when any does not."""
    try:
        components = dict(ctx.health())
    except Exception as err:  # noqa: BLE001 - a failing probe is itself the answer
        components = {"health": f"probe failed: {type(err).__name__}"}
    ok = all(v == "ok" for v in components.values())
    return JSONResponse(
        {"status": "ok" if ok else "degraded", "components": components},
        status_code=200 if ok else 503,
    )


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(request: Request, ctx: Ctx) -> PlainTextResponse:
    """Prometheus text format. For the hub's own network only (see docs/security.md)."""
    lines = []
    values: dict[str, float] = dict(ctx.metrics())
    values.update(request.app.state.login_audit.snapshot())
    for name, value in sorted(values.items()):
        lines.append(f"{name} {value:g}")
    return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
