"""Web Push subscriptions: browsers that became phones (docs/notifications.md, "Web Push").

A signed-in user subscribes from the board and picks wards; the browser's subscription (its
push service endpoint and keys, as JSON) is stored here, tied to the user and the wards, in
the alarm store's SQLite file. So the web app, which takes subscriptions, and the notifier,
which sends to them and drops those the push service calls gone, share it in every layout.
To the ladder each subscription is one more phone of the `webpush` channel: told at once for
alarms of its wards, at escalation like every phone.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from carehub.errors import NotFoundError
from carehub.timefmt import to_us
from services.alarms.store import AlarmStore

CHANNEL = "webpush"
PREFIX = "push-"
"""Subscription phone ids start with it; a site file's phone ids are slugs without it in use."""
MAX_PER_USER = 20
"""A user's browsers: a handful of tablets and desktops; more is a script gone wrong."""

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS notify_push_subscriptions (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    wards TEXT NOT NULL,
    endpoint TEXT NOT NULL UNIQUE,
    subscription TEXT NOT NULL,
    created_us INTEGER NOT NULL
)""",
)


class SubscriptionError(ValueError):
    """A subscription the browser could not have made (no https endpoint, keys missing)."""


@dataclass(frozen=True, slots=True)
class PushPhone:
    """One subscribed browser, as the ladder sees a phone."""

    id: str
    name: str
    wards: tuple[str, ...]
    username: str
    subscription: str
    """The browser's `PushSubscription` as JSON: endpoint and keys (`p256dh`, `auth`)."""

    def public(self) -> dict[str, Any]:
        """What the API shows of it (the endpoint is a capability: never shown back)."""
        return {"id": self.id, "name": self.name, "wards": list(self.wards)}


def phone_id(endpoint: str) -> str:
    """A stable id for an endpoint: subscribing again updates the same phone."""
    return PREFIX + hashlib.sha256(endpoint.encode()).hexdigest()[:12]


def clean(subscription: dict[str, Any]) -> dict[str, Any]:
    """The parts of a browser's `PushSubscription.toJSON()` that a send needs, checked."""
    endpoint = subscription.get("endpoint")
    keys = subscription.get("keys")
    if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")):
        msg = "a push subscription needs an http(s) endpoint"
        raise SubscriptionError(msg)
    if len(endpoint) > 2048:
        msg = "the push endpoint is too long"
        raise SubscriptionError(msg)
    if not isinstance(keys, dict) or not all(
        isinstance(keys.get(k), str) and 0 < len(keys[k]) <= 200 for k in ("p256dh", "auth")
    ):
        msg = "a push subscription needs its keys p256dh and auth"
        raise SubscriptionError(msg)
    return {"endpoint": endpoint, "keys": {"p256dh": keys["p256dh"], "auth": keys["auth"]}}


class PushSubscriptions:
    """The stored subscriptions over one alarm store handle (thread-safe like the store)."""

    def __init__(self, store: AlarmStore) -> None:
        self.store = store
        for statement in SCHEMA:
            store.sql(statement)

    def add(
        self, username: str, wards: Sequence[str], subscription: dict[str, Any], at: datetime
    ) -> PushPhone:
        """Store (or update: same endpoint) a subscription for `username` and `wards`."""
        sub = clean(subscription)
        pid = phone_id(sub["endpoint"])
        stored = (pid, username, json.dumps(list(wards)), sub["endpoint"], json.dumps(sub))
        with self.store.transaction():
            mine = self.store.sql(
                "SELECT COUNT(*) FROM notify_push_subscriptions WHERE username = ? AND id != ?",
                (username, pid),
            )
            if int(mine[0][0]) >= MAX_PER_USER:
                msg = f"at most {MAX_PER_USER} subscribed browsers per user"
                raise SubscriptionError(msg)
            self.store.sql(
                "INSERT INTO notify_push_subscriptions"
                " (id, username, wards, endpoint, subscription, created_us)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET"
                " username = excluded.username, wards = excluded.wards,"
                " subscription = excluded.subscription",
                (*stored, to_us(at)),
            )
        phone = self.get(pid)
        assert phone is not None
        return phone

    def remove(self, endpoint: str, username: str | None = None) -> str:
        """Unsubscribe an endpoint (only `username`'s, when given); its phone id.
        `NotFoundError` when there is no such subscription."""
        pid = phone_id(endpoint)
        phone = self.get(pid)
        if phone is None or (username is not None and phone.username != username):
            msg = "no such push subscription"
            raise NotFoundError(msg)
        self.drop(pid)
        return pid

    def drop(self, pid: str) -> bool:
        """Forget a subscription (the push service said it is gone); whether it existed."""
        with self.store.transaction():
            found = self.store.sql("SELECT 1 FROM notify_push_subscriptions WHERE id = ?", (pid,))
            self.store.sql("DELETE FROM notify_push_subscriptions WHERE id = ?", (pid,))
        return bool(found)

    def get(self, pid: str) -> PushPhone | None:
        """One subscription by its phone id."""
        rows = self.store.sql(
            "SELECT id, username, wards, subscription FROM notify_push_subscriptions WHERE id = ?",
            (pid,),
        )
        return _phone(rows[0]) if rows else None

    def phones(self, username: str | None = None) -> list[PushPhone]:
        """Every subscription (a user's, when given), oldest first."""
        sql = "SELECT id, username, wards, subscription FROM notify_push_subscriptions"
        args: tuple[str, ...] = ()
        if username is not None:
            sql += " WHERE username = ?"
            args = (username,)
        return [_phone(r) for r in self.store.sql(sql + " ORDER BY created_us, id", args)]


def _phone(row: tuple[Any, ...]) -> PushPhone:
    pid, username, wards, subscription = row
    return PushPhone(
        id=str(pid),
        name=f"{username} (web)",
        wards=tuple(json.loads(wards)),
        username=str(username),
        subscription=str(subscription),
    )
