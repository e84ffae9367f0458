"""FastAPI dependencies: the hub context, the current user, and role checks."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer

from services.web.context import HubContext
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

    Cookie-authenticated state changes must carry the session's CSRF token.
    """
    signer = get_signer(request)
    if token:
        username = signer.read_token(token)
        user = ctx.users.get(username) if username else None
        if user is None:
            raise _unauthorized()
        return user
    session = current_session(request)
    user = ctx.users.get(session.username) if session else None
    if session is None or user is None:
        raise _unauthorized()
    if request.method in UNSAFE_METHODS and not csrf_ok(
        session, request.headers.get("X-CSRF-Token")
    ):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="missing or wrong CSRF token")
    return user


CurrentUser = Annotated[User, Depends(current_user)]


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
