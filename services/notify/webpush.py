"""The Web Push channel: a notice to a subscribed browser (docs/notifications.md, "Web Push").

Sent with pywebpush: the payload is encrypted for the subscription (aes128gcm, RFC 8291) and
signed for the push service with the hub's VAPID key (RFC 8292). `TTL` is never 0 (a push
with TTL 0 is dropped when the device is offline for a moment): 5 minutes for a high alarm,
an hour otherwise; `Urgency: high` wakes a sleeping device for a high alarm. The payload is
JSON: alarm id, title, body, acknowledge URL, click URL, never a resident's name. The board's
service worker shows it and offers the acknowledge action where the browser has actions.
A 404 or 410 means the subscription is gone: `ChannelError(gone=True)`, and the notifier
drops it.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import requests
from py_vapid import Vapid02
from pywebpush import WebPushException, webpush

from services.notify.channel import ChannelError, Notice, Target, Urgency
from services.notify.subscriptions import CHANNEL
from services.notify.vapid import VapidKeys

_LOGGER = logging.getLogger(__name__)

NAME = CHANNEL
TIMEOUT_S = 10.0
"""Per request to the push service (on the internet, so slower than a LAN ntfy server)."""
TTL_S = {Urgency.HIGH: 300, Urgency.MEDIUM: 3600, Urgency.LOW: 3600}
"""How long the push service keeps a notice for a device that is offline: a high alarm is
old news after 5 minutes (the ladder has sent again by then), others keep an hour."""
URGENCY = {Urgency.HIGH: "high", Urgency.MEDIUM: "normal", Urgency.LOW: "normal"}
"""The `Urgency` header (RFC 8030): `high` may wake a device in power saving."""
GONE = frozenset({404, 410})


def payload(notice: Notice, ack_label: str = "Acknowledge") -> dict[str, Any]:
    """What the service worker gets: no resident name, no credential but the single-use link."""
    return {
        "ack_label": ack_label,
        "alarm_id": notice.alarm_id,
        "step": notice.step.value,
        "urgency": notice.urgency.value,
        "title": notice.title,
        "body": notice.body,
        "ack_url": notice.ack_url,
        "click_url": notice.click_url,
    }


class WebPushChannel:
    """Sends notices to subscribed browsers through their vendors' push services."""

    name = NAME

    def __init__(
        self,
        keys: VapidKeys,
        subject: str,
        *,
        timeout_s: float = TIMEOUT_S,
        ack_label: str = "Acknowledge",
    ) -> None:
        self._vapid = Vapid02(keys.private_key)
        self.ack_label = ack_label
        self.subject = subject
        """VAPID `sub`: an https URL or mailto: where the push service can reach the home."""
        self.timeout_s = timeout_s
        self._session = requests.Session()

    def send(self, target: Target, notice: Notice) -> None:
        """Encrypt, sign and POST; `ChannelError` on any failure, `gone` on 404/410."""
        try:
            subscription = json.loads(target.address)
        except ValueError as err:
            msg = "the stored push subscription is not JSON"
            raise ChannelError(msg, gone=True) from err
        try:
            webpush(
                subscription,
                json.dumps(payload(notice, self.ack_label)),
                vapid_private_key=self._vapid,
                vapid_claims={"sub": self.subject},
                ttl=TTL_S[notice.urgency],
                headers={"Urgency": URGENCY[notice.urgency]},
                timeout=self.timeout_s,
                requests_session=self._session,
            )
        except WebPushException as err:
            status = getattr(err.response, "status_code", None)
            if status in GONE:
                msg = f"push subscription gone (HTTP {status})"
                raise ChannelError(msg, gone=True) from err
            msg = f"push service answered HTTP {status}" if status else "push failed"
            raise ChannelError(msg) from err
        except requests.RequestException as err:
            msg = f"push service unreachable: {type(err).__name__}"
            raise ChannelError(msg) from err
        except (ValueError, TypeError, KeyError) as err:  # keys the encryption cannot use
            msg = f"push subscription unusable: {type(err).__name__}"
            raise ChannelError(msg, gone=True) from err

    def check(self) -> None:
        """Nothing to check: a push service can be tested only by sending a push, which
        would ring someone's browser. Failed sends raise `notify_failing` instead."""

    def close(self) -> None:
        """Close the HTTP connections."""
        self._session.close()
