"""What the web app needs of notifications, over the shared SQLite file: redeem an acknowledge
link, an alarm's delivery records, what each phone was sent, and the browsers subscribed to Web
Push with the hub's VAPID public key (docs/notifications.md). It works in the web app's own
process as well as beside the notifier, because the links' used-token table and the outbox are
in the file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from carehub.clock import Clock
from carehub.site import Site
from services.alarms.store import AlarmStore
from services.notify.ladder import PhoneLike
from services.notify.links import AckLinks
from services.notify.outbox import Outbox
from services.notify.subscriptions import PushSubscriptions
from services.notify.vapid import load_or_create, vapid_path


class NotifyDesk:
    """Acknowledge links, delivery records and the phones page, for the web app."""

    def __init__(
        self,
        db: Path | str,
        site: Site,
        clock: Clock,
        secret_key: str,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.site = site
        self.store = AlarmStore(db)
        self.outbox = Outbox(self.store)
        self.links = AckLinks(secret_key, self.store, clock, site.notify.public_url)
        self.phones = {p.id: p for p in site.phones}
        self.on_change = on_change
        self.clock = clock
        self.db = Path(db)
        self.push = PushSubscriptions(self.store) if webpush_enabled(site) else None
        """None: Web Push is off (no `notify.public_url` for its links)."""

    def phone_name(self, alarm_id: str, token: str) -> str:
        """The name of the phone a valid, unexpired link belongs to (`LinkError` if not)."""
        return self._name(self.links.phone_of(alarm_id, token))

    def redeem(self, alarm_id: str, token: str) -> dict[str, Any]:
        """Acknowledge as the link's phone, once; the alarm JSON."""
        alarm = self.links.redeem(alarm_id, token, self.phone_name(alarm_id, token))
        if self.on_change is not None:
            self.on_change()
        return alarm.to_json()

    def deliveries(self, alarm_id: str) -> list[dict[str, Any]]:
        """Every send of one alarm: phone, channel, step, at, status, error."""
        return [r.delivery(self._name(r.phone_id)) for r in self.outbox.for_alarm(alarm_id)]

    def phones_sent(self, limit: int = 50) -> list[dict[str, Any]]:
        """Each phone with what it was sent, newest first (the phones page): the site file's,
        then the browsers subscribed to Web Push."""
        phones: list[PhoneLike] = [*self.site.phones]
        if self.push is not None:
            phones.extend(self.push.phones())
        return [
            {
                "id": p.id,
                "name": p.name,
                "wards": list(p.wards),
                "sent": [r.delivery(p.name) for r in self.outbox.for_phone(p.id, limit)],
            }
            for p in phones
        ]

    def _name(self, phone_id: str) -> str:
        phone = self.phones.get(phone_id)
        if phone is not None:
            return phone.name
        push = self.push.get(phone_id) if self.push is not None else None
        return push.name if push is not None else phone_id

    # --- Web Push -------------------------------------------------------------------------

    def push_key(self) -> str | None:
        """The VAPID public key browsers subscribe with (made on first use); None when off."""
        if self.push is None:
            return None
        return load_or_create(vapid_path(self.db)).public_key

    def push_subscribe(
        self, username: str, wards: list[str], subscription: dict[str, Any]
    ) -> dict[str, Any]:
        """Store a browser's subscription for a user and wards (`ValueError` if unusable)."""
        if self.push is None:
            msg = "Web Push is not set up (notify.public_url)"
            raise ValueError(msg)
        known = {w.id for w in self.site.wards}
        unknown = sorted(set(wards) - known)
        if unknown or not wards:
            msg = f"unknown wards: {', '.join(unknown)}" if unknown else "choose at least one ward"
            raise ValueError(msg)
        return self.push.add(username, wards, subscription, self.clock.now()).public()

    def push_unsubscribe(self, username: str, endpoint: str) -> None:
        """Forget the user's subscription of `endpoint` (`NotFoundError` if none)."""
        if self.push is not None:
            self.push.remove(endpoint, username)

    def push_subscriptions(self, username: str) -> list[dict[str, Any]]:
        """A user's subscribed browsers (id, name, wards)."""
        return [] if self.push is None else [p.public() for p in self.push.phones(username)]

    def close(self) -> None:
        """Close the store handle."""
        self.store.close()


def webpush_enabled(site: Site) -> bool:
    """Web Push runs when the site has phones and a `notify.public_url`: its notices need
    acknowledge links, and the URL is the VAPID subject."""
    return bool(site.phones) and site.notify.public_url is not None
