"""What the web app needs of notifications, over the shared SQLite file: redeem an
acknowledge link, an alarm's delivery records, what each phone was sent
(docs/notifications.md). It works in the web app's own process as well as beside the
notifier, because the links' used-token table and the outbox are in the file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from carehub.clock import Clock
from carehub.site import Site
from services.alarms.store import AlarmStore
from services.notify.links import AckLinks
from services.notify.outbox import Outbox


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

    def phone_name(self, alarm_id: str, token: str) -> str:
        """The name of the phone a valid, unexpired link belongs to (`LinkError` if not)."""
        phone_id = self.links.phone_of(alarm_id, token)
        phone = self.phones.get(phone_id)
        return phone.name if phone is not None else phone_id

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
        """Each phone with what it was sent, newest first (the phones page)."""
        return [
            {
                "id": p.id,
                "name": p.name,
                "wards": list(p.wards),
                "sent": [r.delivery(p.name) for r in self.outbox.for_phone(p.id, limit)],
            }
            for p in self.site.phones
        ]

    def _name(self, phone_id: str) -> str:
        phone = self.phones.get(phone_id)
        return phone.name if phone is not None else phone_id

    def close(self) -> None:
        """Close the store handle."""
        self.store.close()
