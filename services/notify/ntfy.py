"""The ntfy channel: publish to a self-hosted ntfy server over HTTP (docs/notifications.md).

One JSON object POSTed to the server's root URL, as ntfy's "Publishing" docs describe: the
topic, a title and message, the priority (high 5, which may override Do Not Disturb; medium
4; low 3), tags, a `click` URL that opens the board, and an `http` action button that POSTs
to the alarm's acknowledge link. The access token comes from the environment variable the
site file names and goes only into the `Authorization` header, never into a notification.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import httpx

from services.notify.channel import ChannelError, Notice, Target, Urgency

_LOGGER = logging.getLogger(__name__)

NAME = "ntfy"
TIMEOUT_S = 5.0
"""Per request: a LAN ntfy server answers in milliseconds; one that needs longer is down."""
PRIORITY = {Urgency.HIGH: 5, Urgency.MEDIUM: 4, Urgency.LOW: 3}
"""ntfy priorities: 5 (max) may override Do Not Disturb on the phone, 3 is the default."""


class NtfyChannel:
    """Publishes notices to one ntfy server; a topic per phone (`Phone.ntfy_topic`)."""

    name = NAME

    def __init__(
        self,
        url: str,
        token_env: str | None = None,
        *,
        timeout_s: float = TIMEOUT_S,
        ack_label: str = "Acknowledge",
    ) -> None:
        self.url = url.rstrip("/")
        self.token_env = token_env
        self.ack_label = ack_label
        self._client = httpx.Client(timeout=timeout_s)

    def _headers(self) -> dict[str, str]:
        if self.token_env is None:
            return {}
        token = os.environ.get(self.token_env)
        if not token:
            msg = f"the ntfy token variable {self.token_env} is not set"
            raise ChannelError(msg)
        return {"Authorization": f"Bearer {token}"}

    def message(self, target: Target, notice: Notice) -> dict[str, Any]:
        """The JSON publish of one notice (ntfy docs, "Publish as JSON")."""
        out: dict[str, Any] = {
            "topic": target.address,
            "title": notice.title,
            "message": notice.body,
            "priority": PRIORITY[notice.urgency],
            "tags": list(notice.tags),
        }
        if notice.click_url is not None:
            out["click"] = notice.click_url
        if notice.ack_url is not None:
            out["actions"] = [
                {
                    "action": "http",
                    "label": self.ack_label,
                    "url": notice.ack_url,
                    "method": "POST",
                    "headers": {"X-CareHub-Ack": "1"},
                    "clear": True,
                }
            ]
        return out

    def send(self, target: Target, notice: Notice) -> None:
        """POST the notice; `ChannelError` on a timeout, a refused connection or non-2xx."""
        body = self.message(target, notice)
        try:
            response = self._client.post(f"{self.url}/", json=body, headers=self._headers())
        except httpx.HTTPError as err:
            msg = f"ntfy {self.url} unreachable: {type(err).__name__}"
            raise ChannelError(msg) from err
        if not response.is_success:
            msg = f"ntfy {self.url} answered HTTP {response.status_code}"
            raise ChannelError(msg)

    def check(self) -> None:
        """GET /v1/health, which ntfy answers `{"healthy": true}`."""
        try:
            response = self._client.get(f"{self.url}/v1/health", headers=self._headers())
        except httpx.HTTPError as err:
            msg = f"ntfy {self.url} unreachable: {type(err).__name__}"
            raise ChannelError(msg) from err
        if not response.is_success:
            msg = f"ntfy {self.url} health answered HTTP {response.status_code}"
            raise ChannelError(msg)
        try:
            healthy = bool(response.json().get("healthy"))
        except ValueError:
            healthy = False
        if not healthy:
            msg = f"ntfy {self.url} says it is not healthy"
            raise ChannelError(msg)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()
