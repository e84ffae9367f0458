"""Logging in and out: the OAuth2 token for API clients, the login form for browsers.

Guessing is slowed per (login name, client address) (docs/security.md, "Logins"); each
failure goes to the audit log with the address, and the counts to /metrics. Behind a reverse
proxy the address is the proxy's unless uvicorn trusts its `X-Forwarded-For`
(`forwarded_allow_ips`).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import OAuth2PasswordRequestForm

from services.web.context import HubContext
from services.web.deps import Ctx, current_session, get_signer
from services.web.i18n import translator
from services.web.models import Token
from services.web.pages import locale_for, page
from services.web.security import SESSION_COOKIE, SESSION_MAX_AGE_S, LoginAudit, LoginThrottle
from services.web.users import MAX_LOGIN_NAME, MAX_PASSWORD, User

_LOGGER = logging.getLogger(__name__)

LOGIN_CSRF_COOKIE = "carehub_login_csrf"

router = APIRouter(tags=["auth"])


@router.post("/api/token", response_model=Token)
def token(
    request: Request, ctx: Ctx, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> Token:
    """Log in an API client (OAuth2 password flow) and get a bearer token."""
    if _oversize(request, form.username, form.password):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"username at most {MAX_LOGIN_NAME}, password at most {MAX_PASSWORD} chars",
        )
    wait, user = _attempt(request, ctx, form.username, form.password)
    if wait:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"too many failed logins; retry in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    if user is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="wrong username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return Token(access_token=get_signer(request).new_token(user.username, user.generation))


def _client(request: Request) -> str:
    """The client's address (the proxy's, unless uvicorn trusts its forwarded header)."""
    return request.client.host if request.client else "?"


def _oversize(request: Request, username: str, password: str) -> bool:
    """A login name or password too long to be real: refused before any hashing or throttle
    entry, so a flood of megabyte names costs neither CPU nor memory."""
    if len(username) <= MAX_LOGIN_NAME and len(password) <= MAX_PASSWORD:
        return False
    audit: LoginAudit = request.app.state.login_audit
    audit.count("carehub_login_refused_oversize_total")
    return True


def _attempt(
    request: Request, ctx: HubContext, username: str, password: str
) -> tuple[int, User | None]:
    """(seconds to wait, None) while the pair is throttled, else (0, the user or None)."""
    throttle: LoginThrottle = request.app.state.throttle
    audit: LoginAudit = request.app.state.login_audit
    client = _client(request)
    wait = throttle.retry_after(client, username)
    if wait:
        audit.count("carehub_login_throttled_total")
        return wait, None
    user = ctx.users.authenticate(username, password)
    if user is None:
        in_a_row = throttle.failed(client, username)
        audit.count("carehub_login_failures_total")
        _LOGGER.info("failed login for %r from %s (%d in a row)", username, client, in_a_row)
        if ctx.alarms is not None and audit.may_write():
            try:
                ctx.alarms.record_access(
                    username, "login_failed", {"address": client, "in_a_row": in_a_row}
                )
            except Exception:
                _LOGGER.exception("could not audit a failed login")
        return 0, None
    throttle.succeeded(client, username)
    audit.count("carehub_logins_total")
    return 0, user


@router.get("/login", response_class=HTMLResponse, include_in_schema=True)
def login_page(request: Request, ctx: Ctx, next: str = "/") -> HTMLResponse:
    """The login form."""
    login_csrf = secrets.token_urlsafe(16)
    response = page(request, ctx, "login.html", None, next=_safe_next(next), form_csrf=login_csrf)
    response.set_cookie(
        LOGIN_CSRF_COOKIE, login_csrf, max_age=3600, httponly=True, samesite="strict"
    )
    return response


@router.post("/login", response_class=HTMLResponse, include_in_schema=True)
def login_submit(
    request: Request,
    ctx: Ctx,
    username: Annotated[str, Form(max_length=MAX_LOGIN_NAME)],
    password: Annotated[str, Form(max_length=MAX_PASSWORD)],
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    """Check the password, set the session cookie and go on to the page asked for."""
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected, csrf):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="missing or wrong CSRF token")
    t = translator(locale_for(request, ctx))
    wait, user = _attempt(request, ctx, username, password)
    if user is None:
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
    cookie, _session = get_signer(request).new_session(user.username, user.generation)
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
def logout(request: Request, ctx: Ctx) -> Response:
    """End the session everywhere it is used: the user's generation goes up, so this cookie
    (and any copy of it) and the user's other sessions and tokens stop working."""
    session = current_session(request)
    user = ctx.users.get(session.username) if session else None
    if session is not None and user is not None and user.generation == session.generation:
        ctx.users.revoke(user.username)
        _LOGGER.info("logout: %s", user.username)
    response = RedirectResponse("/login", status_code=status.HTTP_303_SEE_OTHER)
    response.delete_cookie(SESSION_COOKIE)
    return response


def _safe_next(target: str) -> str:
    """Only local paths: an open redirect after login would be a phishing aid."""
    return target if target.startswith("/") and not target.startswith("//") else "/"
