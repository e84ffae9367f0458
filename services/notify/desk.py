"""What the web app needs of notifications, over the shared SQLite file: redeem an
acknowledge link, an alarm's delivery records (also live, for the board), what each phone was
sent, and the browsers subscribed to Web Push with the hub's VAPID public key
(docs/notifications.md). It works in the web app's own process as well as beside the notifier,
because the links' used-token table and the outbox are in the file."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
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

_LOGGER = logging.getLogger(__name__)

FEED_POLL_S = 0.25
"""How often the delivery feed looks at the outbox when no send in this process woke it."""

DeliveryListener = Callable[[dict[str, Any]], None]
"""Called with `{"alarm_id": ..., "deliveries": [...]}` whenever an alarm's sends change."""


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
        self._listeners: list[DeliveryListener] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._mark: tuple[int, frozenset[int]] | None = None

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

    def deliveries_between(self, lo: datetime, hi: datetime) -> list[dict[str, Any]]:
        """Every send recorded in [lo, hi), with its alarm id (the utilisation report)."""
        return [
            {**r.delivery(self._name(r.phone_id)), "alarm_id": r.alarm_id}
            for r in self.outbox.between(lo, hi)
        ]

    # --- the board's live delivery feed ---------------------------------------------------

    def subscribe(self, listener: DeliveryListener) -> Callable[[], None]:
        """Call `listener` (from the feed's thread) with an alarm's delivery records each
        time one of its sends is recorded or finished; answers the unsubscribe function.

        The feed follows the outbox in the file, so the board hears of sends made by a
        notifier in another process within `FEED_POLL_S`; `wake()` makes it look at once."""
        with self._lock:
            self._listeners.append(listener)
            if self._mark is None:  # before the caller reads what was sent so far
                self._mark = self.outbox.mark()
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="notify-deliveries", daemon=True
                )
                self._thread.start()

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def wake(self) -> None:
        """Look at the outbox now (a send in this process)."""
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(FEED_POLL_S)
            self._wake.clear()
            with self._lock:
                listeners, mark = list(self._listeners), self._mark
            if mark is None or self._stopping.is_set():
                continue
            try:
                new, changed = self.outbox.changed_since(mark)
                updates = [{"alarm_id": a, "deliveries": self.deliveries(a)} for a in changed]
            except Exception:
                _LOGGER.exception("delivery feed could not read the outbox; retrying")
                continue
            with self._lock:
                # nobody listens: no reads; the next subscriber takes a fresh mark
                self._mark = new if self._listeners else None
            for update in updates:
                for listener in listeners:
                    try:
                        listener(update)
                    except Exception:
                        _LOGGER.exception("delivery listener failed")

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
        """Stop the feed and close the store handle."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(2)
        self.store.close()


def webpush_enabled(site: Site) -> bool:
    """Web Push runs when the site has phones and a `notify.public_url`: its notices need
    acknowledge links, and the URL is the VAPID subject."""
    return bool(site.phones) and site.notify.public_url is not None
