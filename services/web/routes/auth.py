"""Logging in and out: the OAuth2 token for API clients, the login form for browsers."""

from __future__ import annotations

import hmac
import logging
import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.security import OAuth2PasswordRequestForm

from services.web.deps import Ctx, get_signer
from services.web.i18n import translator
from services.web.models import Token
from services.web.pages import locale_for, page
from services.web.security import SESSION_COOKIE, SESSION_MAX_AGE_S, LoginThrottle

_LOGGER = logging.getLogger(__name__)

LOGIN_CSRF_COOKIE = "carehub_login_csrf"

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
    response = page(request, ctx, "login.html", None, next=_safe_next(next), form_csrf=login_csrf)
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


def _safe_next(target: str) -> str:
    """Only local paths: an open redirect after login would be a phishing aid."""
    return target if target.startswith("/") and not target.startswith("//") else "/"
