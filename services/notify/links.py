"""Acknowledge links: a phone acknowledges an alarm by opening (POSTing) one URL
(docs/notifications.md, "Acknowledge links").

A link carries no long-lived credential, only a token signed with the hub's secret key
(HMAC-SHA256) that names one alarm, one phone, an expiry and a nonce. It is used once: the
nonce goes into `notify_used_links` in the alarm store's SQLite file in the same transaction
as the acknowledgement, so a second use answers 409 even after a restart, and a use that
fails (the alarm already taken on the board) leaves the link unused and answers 409 too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import services.alarms.lifecycle as lifecycle
from carehub.clock import Clock
from carehub.errors import CareHubError, ConflictError
from carehub.timefmt import to_us
from services.alarms.model import Alarm
from services.alarms.store import AlarmStore

LINK_TTL = timedelta(hours=12)
"""How long a link works: a night shift, so a phone that was told early can still answer."""

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS notify_used_links (
    nonce TEXT PRIMARY KEY,
    alarm_id TEXT NOT NULL,
    phone_id TEXT NOT NULL,
    used_us INTEGER NOT NULL
)""",
)


class LinkError(CareHubError):
    """A link that cannot acknowledge; `status` is the HTTP answer."""

    status = 403


class BadLinkError(LinkError):
    """Not signed by this hub, altered, or for another alarm."""

    status = 403


class ExpiredLinkError(LinkError):
    """Signed, but too old."""

    status = 410


class UsedLinkError(LinkError, ConflictError):
    """Used already (or the alarm is no longer waiting for anyone)."""

    status = 409


@dataclass(frozen=True, slots=True)
class LinkClaim:
    """What a verified token says."""

    alarm_id: str
    phone_id: str
    expires: int
    nonce: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class AckLinks:
    """Makes and redeems acknowledge links for one hub (one secret key, one store)."""

    def __init__(
        self,
        secret_key: str,
        store: AlarmStore,
        clock: Clock,
        base_url: str | None,
        ttl: timedelta = LINK_TTL,
    ) -> None:
        self._key = hashlib.sha256(b"carehub-ack-link\x00" + secret_key.encode()).digest()
        self.store = store
        self.clock = clock
        self.base_url = None if base_url is None else base_url.rstrip("/")
        self.ttl = ttl
        for statement in SCHEMA:
            store.sql(statement)

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest()[:20])

    def token(self, alarm_id: str, phone_id: str, *, now: datetime | None = None) -> str:
        """A fresh token for this alarm and phone."""
        expires = int(((now or self.clock.now()) + self.ttl).timestamp())
        payload = _b64(f"{alarm_id}|{phone_id}|{expires}|{secrets.token_urlsafe(9)}".encode())
        return f"{payload}.{self._sign(payload)}"

    def url(self, alarm_id: str, phone_id: str) -> str | None:
        """The link a notice carries (None without `notify.public_url`)."""
        if self.base_url is None:
            return None
        return f"{self.base_url}/ack/{alarm_id}/{self.token(alarm_id, phone_id)}"

    def verify(self, alarm_id: str, token: str) -> LinkClaim:
        """The claim of a token for `alarm_id`, or the `LinkError` it deserves (not yet used:
        `redeem` checks that)."""
        payload, _, signature = token.partition(".")
        given = signature.encode("utf-8", "replace")
        if not payload or not hmac.compare_digest(given, self._sign(payload).encode()):
            msg = "this acknowledge link is not valid"
            raise BadLinkError(msg)
        try:
            claimed, phone_id, expires, nonce = _unb64(payload).decode().split("|")
            expiry = int(expires)
        except (ValueError, UnicodeDecodeError) as err:
            msg = "this acknowledge link is not valid"
            raise BadLinkError(msg) from err
        if claimed != alarm_id:
            msg = "this acknowledge link is for another alarm"
            raise BadLinkError(msg)
        if self.clock.now().timestamp() >= expiry:
            msg = "this acknowledge link has expired; acknowledge on the board"
            raise ExpiredLinkError(msg)
        return LinkClaim(claimed, phone_id, expiry, nonce)

    def redeem(self, alarm_id: str, token: str, phone_name: str) -> Alarm:
        """Acknowledge the alarm as the link's phone, once: the link is marked used in the
        same transaction; `UsedLinkError` on a second use, or when the alarm no longer waits
        (the lifecycle's `InvalidTransitionError` passes through, also a 409)."""
        claim = self.verify(alarm_id, token)
        at = self.clock.now()
        with self.store.transaction():
            if self.store.sql("SELECT 1 FROM notify_used_links WHERE nonce = ?", (claim.nonce,)):
                msg = "this acknowledge link was used already"
                raise UsedLinkError(msg)
            self.store.sql(
                "INSERT INTO notify_used_links (nonce, alarm_id, phone_id, used_us)"
                " VALUES (?, ?, ?, ?)",
                (claim.nonce, alarm_id, claim.phone_id, to_us(at)),
            )
            detail: dict[str, Any] = {"via": "phone", "phone": claim.phone_id}
            return lifecycle.acknowledge(
                self.store, self.clock, alarm_id, phone_name, detail=detail
            )

    def phone_of(self, alarm_id: str, token: str) -> str:
        """The phone a valid link belongs to (for the confirm page)."""
        return self.verify(alarm_id, token).phone_id
