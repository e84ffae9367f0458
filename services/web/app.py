"""The FastAPI app: one router per domain (services.web.routes), security headers on every
response, and one handler that answers the kernel's domain errors with 404 and 409 (and a bad
acknowledge link with its own status)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request, status
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from carehub import __version__
from carehub.errors import ConflictError, NotFoundError
from services.notify.links import LinkError
from services.web.context import HubContext
from services.web.deps import CurrentUser
from services.web.routes import admin, alarms, auth, devices, notify, push, reports, system
from services.web.routes import round as round_view  # not the builtin round()
from services.web.security import LoginAudit, LoginThrottle, SecurityHeaders, Signer

HERE = Path(__file__).resolve().parent


def create_app(ctx: HubContext) -> FastAPI:
    """Build the web app over a hub context."""
    open_docs = ctx.demo
    app = FastAPI(
        title="CareHub",
        version=__version__,
        description="Alarms, device status and reports of a CareHub care-home sensor hub.",
        # the demo shows its API to anyone; a care home's only to those who may log in
        docs_url="/docs" if open_docs else None,
        redoc_url="/redoc" if open_docs else None,
        openapi_url="/openapi.json" if open_docs else None,
    )
    app.state.ctx = ctx
    app.state.signer = Signer(ctx.secret_key)
    app.state.throttle = LoginThrottle()
    app.state.login_audit = LoginAudit()
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
    if not open_docs:
        _docs_behind_login(app)
    return app


def _docs_behind_login(app: FastAPI) -> None:
    """/docs, /redoc and /openapi.json for logged-in users only (docs/security.md): the API's
    map is no secret, but nobody outside the staff needs it."""

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(_user: CurrentUser) -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    def swagger(_user: CurrentUser) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} API")

    @app.get("/redoc", include_in_schema=False)
    def redoc(_user: CurrentUser) -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} API")


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
