"""The FastAPI app factory: one router per domain, security headers on every response."""

from __future__ import annotations

import hmac
import logging
import secrets
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse
from fastapi.security import OAuth2PasswordRequestForm
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response

from carehub import __version__
from services.web.context import HubContext
from services.web.deps import Ctx, current_session, get_signer
from services.web.i18n import LOCALES, Locale, translator
from services.web.security import (
    SECURITY_HEADERS,
    SESSION_COOKIE,
    SESSION_MAX_AGE_S,
    LoginThrottle,
    Signer,
)
from services.web.users import User

_LOGGER = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")


def _num(value: float | None, spec: str = "%.1f") -> str:
    """A figure, or a dash where there is none (a report over no nights has no mean)."""
    return "–" if value is None else spec % value


templates.env.filters["num"] = _num
LOGIN_CSRF_COOKIE = "carehub_login_csrf"
LANG_COOKIE = "carehub_lang"


class Token(BaseModel):
    """OAuth2 password-flow answer."""

    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret


class _SecurityHeaders(BaseHTTPMiddleware):
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        return response


def locale_for(request: Request, ctx: HubContext) -> Locale:
    """?lang= beats the language cookie beats the site's locale."""
    for candidate in (request.query_params.get("lang"), request.cookies.get(LANG_COOKIE)):
        if candidate in LOCALES:
            return candidate
    return ctx.site.site.locale


def page(
    request: Request, ctx: HubContext, name: str, user: User | None, **extra: Any
) -> HTMLResponse:
    """Render a page template with the texts, the user and the CSRF token it needs."""
    locale = locale_for(request, ctx)
    session = current_session(request)
    response = templates.TemplateResponse(
        request,
        name,
        {
            "t": translator(locale),
            "locale": locale,
            "other_locale": "en" if locale == "da" else "da",
            "user": user,
            "csrf": session.csrf if session else "",
            "site": ctx.site.site,
            "demo": ctx.demo,
            "version": __version__,
            **extra,
        },
    )
    if request.query_params.get("lang") in LOCALES:
        response.set_cookie(
            LANG_COOKIE, locale, max_age=365 * 86400, httponly=True, samesite="strict"
        )
    return response


def _auth_router() -> APIRouter:
    router = APIRouter(tags=["auth"])

    @router.post("/api/token", response_model=Token)
    def token(
        request: Request, ctx: Ctx, form: Annotated[OAuth2PasswordRequestForm, Depends()]
    ) -> Token:
        """Log in an API client (OAuth2 password flow) and get a bearer token."""
        throttle: LoginThrottle = request.app.state.throttle
        client = request.client.host if request.client else "?"
        wait = throttle.retry_after(client, form.username)
        if wait:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                detail=f"too many failed logins; retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        user = ctx.users.authenticate(form.username, form.password)
        if user is None:
            throttle.failed(client, form.username)
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="wrong username or password",
                headers={"WWW-Authenticate": "Bearer"},
            )
        throttle.succeeded(form.username)
        return Token(access_token=get_signer(request).new_token(user.username))

    @router.get("/login", response_class=HTMLResponse, include_in_schema=True)
    def login_page(request: Request, ctx: Ctx, next: str = "/") -> HTMLResponse:
        """The login form."""
        login_csrf = secrets.token_urlsafe(16)
        response = page(
            request, ctx, "login.html", None, next=_safe_next(next), form_csrf=login_csrf
        )
        response.set_cookie(
            LOGIN_CSRF_COOKIE, login_csrf, max_age=3600, httponly=True, samesite="strict"
        )
        return response

    @router.post("/login", response_class=HTMLResponse, include_in_schema=True)
    def login_submit(
        request: Request,
        ctx: Ctx,
        username: Annotated[str, Form()],
        password: Annotated[str, Form()],
        csrf: Annotated[str, Form()] = "",
        next: Annotated[str, Form()] = "/",
    ) -> Response:
        """Check the password, set the session cookie and go on to the page asked for."""
        expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        if not expected or not hmac.compare_digest(expected, csrf):
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail="missing or wrong CSRF token")
        throttle: LoginThrottle = request.app.state.throttle
        client = request.client.host if request.client else "?"
        t = translator(locale_for(request, ctx))
        wait = throttle.retry_after(client, username)
        user = None if wait else ctx.users.authenticate(username, password)
        if user is None:
            if not wait:
                throttle.failed(client, username)
            error = t["login_throttled"].format(seconds=wait) if wait else t["login_failed"]
            response = page(
                request,
                ctx,
                "login.html",
                None,
                next=_safe_next(next),
                form_csrf=expected,
                error=error,
            )
            response.status_code = (
                status.HTTP_429_TOO_MANY_REQUESTS if wait else status.HTTP_401_UNAUTHORIZED
            )
            return response
        throttle.succeeded(username)
        cookie, _session = get_signer(request).new_session(user.username)
        redirect = RedirectResponse(_safe_next(next), status_code=status.HTTP_303_SEE_OTHER)
        redirect.set_cookie(
            SESSION_COOKIE,
            cookie,
            max_age=SESSION_MAX_AGE_S,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        redirect.delete_cookie(LOGIN_CSRF_COOKIE)
        _LOGGER.info("login: %s", user.username)
        return redirect

    @router.post("/logout", include_in_schema=True)
    def logout(request: Request) -> Response:
        """End the browser session."""
        response = RedirectResponse("/login", status_code=status.HTTP_303_SEE_OTHER)
        response.delete_cookie(SESSION_COOKIE)
        return response

    return router


def _safe_next(target: str) -> str:
    """Only local paths: an open redirect after login would be a phishing aid."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


def _system_router() -> APIRouter:
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
    def metrics(ctx: Ctx) -> PlainTextResponse:
        """Prometheus text format. For the hub's own network only (see docs/security.md)."""
        lines = []
        for name, value in sorted(ctx.metrics().items()):
            lines.append(f"{name} {value:g}")
        return PlainTextResponse("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")

    return router


def login_redirect(request: Request) -> RedirectResponse:
    """Send a browser without a session to the login page, remembering where it wanted to go."""
    return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)


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
    app.add_middleware(_SecurityHeaders)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(_system_router())
    app.include_router(_auth_router())
    for router in ctx.extra_routers:
        app.include_router(router)
    from services.web import routes

    routes.install(app)
    return app
