"""Sessions, API tokens, CSRF and login throttling for the web app.

Browsers get a signed session cookie (HttpOnly, SameSite=Strict) that carries a CSRF token;
every state-changing browser request must echo it (form field or `X-CSRF-Token` header).
API clients get a signed bearer token from `POST /api/token` and need no CSRF token, since
no browser attaches a bearer header on its own.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "carehub_session"
SESSION_MAX_AGE_S = 12 * 3600  # one night shift and then some
TOKEN_MAX_AGE_S = 12 * 3600


@dataclass(frozen=True, slots=True)
class Session:
    """What a signed session cookie says."""

    username: str
    csrf: str


class Signer:
    """Signs and checks sessions and API tokens with the hub's secret key."""

    def __init__(self, secret: str) -> None:
        self._sessions = URLSafeTimedSerializer(secret, salt="carehub-session")
        self._tokens = URLSafeTimedSerializer(secret, salt="carehub-api-token")

    def new_session(self, username: str) -> tuple[str, Session]:
        """A cookie value and the session it holds, with a fresh CSRF token."""
        session = Session(username, secrets.token_urlsafe(24))
        return self._sessions.dumps({"u": username, "c": session.csrf}), session

    def read_session(self, cookie: str | None) -> Session | None:
        """The session in a cookie, or None when missing, forged or expired."""
        if not cookie:
            return None
        try:
            data = self._sessions.loads(cookie, max_age=SESSION_MAX_AGE_S)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("u"), str):
            return None
        return Session(data["u"], str(data.get("c", "")))

    def new_token(self, username: str) -> str:
        """A bearer token for an API client."""
        return self._tokens.dumps({"u": username})

    def read_token(self, token: str) -> str | None:
        """The username a token was issued to, or None."""
        try:
            data = self._tokens.loads(token, max_age=TOKEN_MAX_AGE_S)
        except BadSignature:
            return None
        return data["u"] if isinstance(data, dict) and isinstance(data.get("u"), str) else None


def csrf_ok(session: Session, presented: str | None) -> bool:
    """Constant-time check of a presented CSRF token."""
    return bool(presented) and hmac.compare_digest(session.csrf, presented or "")


class LoginThrottle:
    """Slows password guessing: too many failures per client or per username locks it out.

    In memory on purpose: a restart clears it, which is acceptable for a care home's hub,
    and it keeps the login path free of disk writes an attacker could drive.
    """

    def __init__(self, max_failures: int = 5, window_s: float = 300.0) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        q = self._failures.setdefault(key, deque())
        while q and q[0] <= now - self.window_s:
            q.popleft()
        return q

    def retry_after(self, client: str, username: str) -> int:
        """Seconds until another attempt is allowed (0 = allowed now)."""
        now = time.monotonic()
        with self._lock:
            waits = [
                int(q[0] + self.window_s - now) + 1
                for key in (f"ip:{client}", f"user:{username.lower()}")
                if len(q := self._recent(key, now)) >= self.max_failures
            ]
        return max(waits, default=0)

    def failed(self, client: str, username: str) -> None:
        """Record a failed attempt."""
        now = time.monotonic()
        with self._lock:
            for key in (f"ip:{client}", f"user:{username.lower()}"):
                self._recent(key, now).append(now)

    def succeeded(self, username: str) -> None:
        """A right password clears the username's failures (not the client's)."""
        with self._lock:
            self._failures.pop(f"user:{username.lower()}", None)


SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cache-Control": "no-store",
}
"""Sent with every response: no inline scripts, no framing, nothing cached on shared tablets."""


class SecurityHeaders(BaseHTTPMiddleware):
    """Adds `SECURITY_HEADERS` to every response that does not set its own."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        return response
