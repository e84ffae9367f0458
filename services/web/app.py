"""The FastAPI app: one router per domain (services.web.routes), security headers on every
response, and one handler that answers the kernel's domain errors with 404 and 409 (and a bad
acknowledge link with its own status)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from carehub import __version__
from carehub.errors import ConflictError, NotFoundError
from services.notify.links import LinkError
from services.web.context import HubContext
from services.web.routes import admin, alarms, auth, devices, notify, push, reports, system
from services.web.routes import round as round_view  # not the builtin round()
from services.web.security import LoginThrottle, SecurityHeaders, Signer

HERE = Path(__file__).resolve().parent


def create_app(ctx: HubContext) -> FastAPI:
    """Build the web app over a hub context."""
    app = FastAPI(
        title="CareHub",
        version=__version__,
        description="Alarms, device status and reports of a CareHub care-home sensor hub.",
    )
    app.state.ctx = ctx
    app.state.signer = Signer(ctx.secret_key)
    app.state.throttle = LoginThrottle()
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(system.router)
    app.include_router(auth.router)
    for router in ctx.extra_routers:
        app.include_router(router)
    for module in (alarms, devices, round_view, reports, admin, notify, push):
        app.include_router(module.router)
    app.add_exception_handler(NotFoundError, _domain_error)
    app.add_exception_handler(ConflictError, _domain_error)
    app.add_exception_handler(LinkError, _domain_error)
    return app


async def _domain_error(_request: Request, err: Exception) -> JSONResponse:
    """The kernel's "no such thing" is 404 and "not in a state that allows it" is 409, for
    every route at once: the routes need no try/except of their own."""
    if isinstance(err, LinkError):
        code = err.status  # an acknowledge link: 403 not ours, 410 expired, 409 used
    elif isinstance(err, NotFoundError):
        code = status.HTTP_404_NOT_FOUND
    else:
        code = status.HTTP_409_CONFLICT
    return JSONResponse({"detail": str(err)}, status_code=code)
