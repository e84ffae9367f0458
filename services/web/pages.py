"""Rendering the staff pages: the templates, the page's language, the login redirect.

Every page goes through `page()`, so each gets the texts, the user, the CSRF token and the
language cookie the same way (docs/web-app.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates

from carehub import __version__
from services.web.context import HubContext
from services.web.deps import current_session
from services.web.i18n import LOCALES, Locale, translator
from services.web.users import User

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=HERE / "templates")
LANG_COOKIE = "carehub_lang"


def _num(value: float | None, spec: str = "%.1f") -> str:
    """A figure, or a dash where there is none (a report over no nights has no mean)."""
    return "–" if value is None else spec % value


templates.env.filters["num"] = _num


def locale_for(request: Request, ctx: HubContext) -> Locale:
    """?lang= beats the language cookie beats the site's locale."""
    for candidate in (request.query_params.get("lang"), request.cookies.get(LANG_COOKIE)):
        if candidate in LOCALES:
            return candidate
    return ctx.site.site.locale


def csrf_token(request: Request) -> str:
    """The session's CSRF token for the page's forms and scripts ("" without a session)."""
    session = current_session(request)
    return session.csrf if session else ""


def page(
    request: Request, ctx: HubContext, name: str, user: User | None, **extra: Any
) -> HTMLResponse:
    """Render a page template with the texts, the user and the CSRF token it needs."""
    locale = locale_for(request, ctx)
    response = templates.TemplateResponse(
        request,
        name,
        {
            "t": translator(locale),
            "locale": locale,
            "other_locale": "en" if locale == "da" else "da",
            "user": user,
            "csrf": csrf_token(request),
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


def login_redirect(request: Request) -> RedirectResponse:
    """Send a browser without a session to the login page, remembering where it wanted to go."""
    return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)


def monitoring_off(ctx: HubContext) -> set[str]:
    """Residents whose monitoring an admin switched off (none when the hub has no privacy
    service); the staff screens must say so, or a quiet board would look like a calm night."""
    return set() if ctx.privacy is None else ctx.privacy.monitoring_off()
