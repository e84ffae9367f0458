"""Sessions, API tokens, CSRF and login throttling for the web app.

Browsers get a signed session cookie (HttpOnly, SameSite=Strict) that carries a CSRF token;
every state-changing browser request must echo it (form field or `X-CSRF-Token` header).
API clients get a signed bearer token from `POST /api/token` and need no CSRF token, since
no browser attaches a bearer header on its own. Both carry the user's generation, so a
logout, a password change or a disable ends them (docs/security.md, "Revocation").
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
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
    generation: int = -1
    """The user's generation when it was issued; -1 (never current) for a malformed one."""


def _generation(data: dict[str, object]) -> int:
    g = data.get("g")
    return g if isinstance(g, int) and not isinstance(g, bool) else -1


class Signer:
    """Signs and checks sessions and API tokens with the hub's secret key."""

    def __init__(self, secret: str) -> None:
        self._sessions = URLSafeTimedSerializer(secret, salt="carehub-session")
        self._tokens = URLSafeTimedSerializer(secret, salt="carehub-api-token")

    def new_session(self, username: str, generation: int) -> tuple[str, Session]:
        """A cookie value and the session it holds, with a fresh CSRF token."""
        session = Session(username, secrets.token_urlsafe(24), generation)
        cookie = self._sessions.dumps({"u": username, "c": session.csrf, "g": generation})
        return cookie, session

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
        return Session(data["u"], str(data.get("c", "")), _generation(data))

    def new_token(self, username: str, generation: int) -> str:
        """A bearer token for an API client."""
        return self._tokens.dumps({"u": username, "g": generation})

    def read_token(self, token: str) -> tuple[str, int] | None:
        """The username a token was issued to and the generation then, or None."""
        try:
            data = self._tokens.loads(token, max_age=TOKEN_MAX_AGE_S)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("u"), str):
            return None
        return data["u"], _generation(data)


def csrf_ok(session: Session, presented: str | None) -> bool:
    """Constant-time check of a presented CSRF token."""
    return bool(presented) and hmac.compare_digest(session.csrf, presented or "")


class LoginThrottle:
    """Slows password guessing per (login name, client address), with exponential backoff.

    Keyed by the pair, never by the name alone: someone guessing at `sofie` from one address
    does not keep `sofie` out from her own tablet (docs/security.md, "Logins"). The first
    `free_failures` cost nothing; each further one doubles the wait, up to `max_wait_s`. A
    right password clears the pair. The table is an LRU of at most `capacity` pairs, so a
    flood of made-up names cannot grow memory; login names are at most `MAX_LOGIN_NAME`
    characters before they get here.

    In memory on purpose: a restart clears it, which is acceptable for a care home's hub,
    and it keeps the login path free of disk writes an attacker could drive.
    """

    def __init__(
        self,
        free_failures: int = 3,
        base_wait_s: float = 1.0,
        max_wait_s: float = 300.0,
        capacity: int = 10_000,
    ) -> None:
        self.free_failures = free_failures
        self.base_wait_s = base_wait_s
        self.max_wait_s = max_wait_s
        self.capacity = capacity
        self._failures: OrderedDict[tuple[str, str], tuple[int, float]] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(client: str, username: str) -> tuple[str, str]:
        return username.casefold(), client

    def _wait(self, count: int) -> float:
        over = count - self.free_failures
        if over < 0:
            return 0.0
        return min(self.max_wait_s, self.base_wait_s * 2.0 ** min(over, 32))

    def retry_after(self, client: str, username: str) -> int:
        """Seconds until this name may be tried again from this client (0 = now)."""
        now = time.monotonic()
        with self._lock:
            entry = self._failures.get(self._key(client, username))
        if entry is None:
            return 0
        count, last = entry
        left = last + self._wait(count) - now
        if left <= 0 and now - last > self.max_wait_s:
            return 0
        return max(0, int(left + 0.999))

    def failed(self, client: str, username: str) -> int:
        """Record a failed attempt; answers how many in a row for the pair."""
        key = self._key(client, username)
        now = time.monotonic()
        with self._lock:
            count, last = self._failures.pop(key, (0, now))
            if now - last > self.max_wait_s * 2:
                count = 0  # quiet long enough: start over
            self._failures[key] = (count + 1, now)
            while len(self._failures) > self.capacity:
                self._failures.popitem(last=False)
            return count + 1

    def succeeded(self, client: str, username: str) -> None:
        """A right password clears the pair."""
        with self._lock:
            self._failures.pop(self._key(client, username), None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._failures)


class LoginAudit:
    """Failed logins into the audit log (with the client address) and counts for /metrics.

    At most `per_minute` rows a minute: a flood of made-up names costs counters, not disk.
    `monotonic` tells the seconds the minutes are counted in (tests pass their own).
    """

    def __init__(
        self, per_minute: int = 60, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self.per_minute = per_minute
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._minute = -1
        self._written = 0
        self.counts: dict[str, int] = {
            "carehub_login_failures_total": 0,
            "carehub_login_throttled_total": 0,
            "carehub_login_refused_oversize_total": 0,
            "carehub_login_failures_unaudited_total": 0,
            "carehub_logins_total": 0,
        }

    def count(self, name: str) -> None:
        """Add one to a counter."""
        with self._lock:
            self.counts[name] += 1

    def may_write(self) -> bool:
        """Whether this failure may have its own audit row (else it is only counted)."""
        minute = int(self._monotonic() // 60)
        with self._lock:
            if minute != self._minute:
                self._minute, self._written = minute, 0
            if self._written >= self.per_minute:
                self.counts["carehub_login_failures_unaudited_total"] += 1
                return False
            self._written += 1
            return True

    def snapshot(self) -> dict[str, int]:
        """The counters now."""
        with self._lock:
            return dict(self.counts)


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
