"""FastAPI dependencies: the hub context and its parts, the current user, and role checks.

The routes take them as the `Annotated` aliases at the end of each section (`Ctx`,
`CurrentUser`, `StaffUser`, ...), so a route's signature says what it needs.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer

from services.reports.service import ReportSource
from services.web.context import HubContext
from services.web.ports import AlarmsPort, PrivacyPort
from services.web.security import SESSION_COOKIE, Session, Signer, csrf_ok
from services.web.users import Role, User

# auto_error=False: the stock scheme answers 403 on a missing token; the spec wants 401.
bearer = OAuth2PasswordBearer(tokenUrl="/api/token", auto_error=False)

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def get_ctx(request: Request) -> HubContext:
    """The hub context the app was built with."""
    ctx: HubContext = request.app.state.ctx
    return ctx


def get_signer(request: Request) -> Signer:
    """The app's signer."""
    signer: Signer = request.app.state.signer
    return signer


Ctx = Annotated[HubContext, Depends(get_ctx)]


def alarms_port(ctx: HubContext) -> AlarmsPort:
    """The alarm service; 503 when the hub runs the web app without one."""
    if ctx.alarms is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="alarm service not running")
    return ctx.alarms


def _alarms_dep(ctx: Ctx) -> AlarmsPort:
    return alarms_port(ctx)


Alarms = Annotated[AlarmsPort, Depends(_alarms_dep)]
"""For the event stream, whose 503 must come before the stream starts. The other routes call
`alarms_port` in their body, after FastAPI has validated the request, so a malformed request
is 422 whether or not the service runs."""


def privacy_port(ctx: HubContext) -> PrivacyPort:
    """The privacy service; 503 when the hub runs the web app without one."""
    if ctx.privacy is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail="privacy service not running"
        )
    return ctx.privacy


def report_source(ctx: HubContext) -> ReportSource:
    """The stores the reports read; 503 when the hub runs the web app without them."""
    if ctx.reports is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, detail="report store not available"
        )
    return ctx.reports


def _unauthorized() -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail="not logged in: POST /api/token or log in at /login",
        headers={"WWW-Authenticate": "Bearer"},
    )


def current_session(request: Request) -> Session | None:
    """The browser session, if the request carries a valid one."""
    return get_signer(request).read_session(request.cookies.get(SESSION_COOKIE))


def current_user(request: Request, ctx: Ctx, token: Annotated[str | None, Depends(bearer)]) -> User:
    """The logged-in user from a bearer token or the session cookie; 401 otherwise.

    Cookie-authenticated state changes must carry the session's CSRF token. A session or
    token issued before the user's last logout, password change or disable is refused.
    """
    signer = get_signer(request)
    if token:
        claim = signer.read_token(token)
        user = ctx.users.get(claim[0]) if claim else None
        if claim is None or user is None or user.generation != claim[1]:
            raise _unauthorized()  # revoked: logout, new password or disabled
        return user
    session = current_session(request)
    user = ctx.users.get(session.username) if session else None
    if session is None or user is None or user.generation != session.generation:
        raise _unauthorized()
    if request.method in UNSAFE_METHODS and not csrf_ok(
        session, request.headers.get("X-CSRF-Token")
    ):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="missing or wrong CSRF token")
    return user


CurrentUser = Annotated[User, Depends(current_user)]


def page_user(request: Request, ctx: Ctx) -> User | None:
    """The session's user for a page, or None: a page sends the browser to the login page
    instead of answering 401."""
    try:
        return current_user(request, ctx, None)
    except HTTPException:
        return None


PageUser = Annotated[User | None, Depends(page_user)]


def require(role: Role) -> object:
    """A dependency that lets only `role` and above through (403 for the rest)."""

    def _check(user: CurrentUser) -> User:
        if not user.role.allows(role):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, detail=f"needs role {role.value} or above"
            )
        return user

    return Depends(_check)


StaffUser = Annotated[User, require(Role.STAFF)]
ManagerUser = Annotated[User, require(Role.MANAGER)]
AdminUser = Annotated[User, require(Role.ADMIN)]
