"""Outgoing webhook for escalations (nurse-call systems, paging gateways).

Posting happens on a thread of its own with a bounded queue, so a slow or dead receiver
never holds up the rules loop; each alarm is retried a few times with backoff, then given up
with a warning (the alarm itself is safe in the store and on MQTT either way).
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

import httpx

_LOGGER = logging.getLogger(__name__)

TIMEOUT_S = 5.0
"""Per attempt; a paging gateway that needs longer is broken."""
BACKOFF_S: tuple[float, ...] = (0.5, 2.0, 5.0)
"""Waits between attempts; one attempt more than there are waits."""
QUEUE_SIZE = 1000


class WebhookNotifier:
    """POSTs alarm JSON to one URL, in the background."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = TIMEOUT_S,
        backoff_s: tuple[float, ...] = BACKOFF_S,
    ) -> None:
        self.url = url
        self.backoff_s = backoff_s
        self._client = httpx.Client(timeout=timeout_s)
        self._queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue(QUEUE_SIZE)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alarm-webhook", daemon=True)
        self._thread.start()
        self.delivered = 0
        self.failed = 0

    def submit(self, reason: str, alarm: dict[str, Any]) -> bool:
        """Queue one POST; False (and a warning) if the queue is full."""
        try:
            self._queue.put_nowait((reason, alarm))
        except queue.Full:
            _LOGGER.warning("webhook queue full; alarm %s not posted", alarm.get("alarm_id"))
            self.failed += 1
            return False
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Finish what is queued (within `timeout`), then stop."""
        self._queue.put(None)
        self._thread.join(timeout)
        self._stopping.set()
        self._client.close()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            reason, alarm = item
            if self._post(reason, alarm):
                self.delivered += 1
            else:
                self.failed += 1

    def _post(self, reason: str, alarm: dict[str, Any]) -> bool:
        headers = {"X-CareHub-Reason": reason}
        for attempt in range(len(self.backoff_s) + 1):
            try:
                response = self._client.post(self.url, json=alarm, headers=headers)
            except httpx.HTTPError as err:
                why = f"{type(err).__name__}"
            else:
                if response.is_success:
                    return True
                why = f"HTTP {response.status_code}"
                if response.is_client_error and response.status_code != 429:
                    break  # the receiver refuses this request; asking again will not help
            if attempt < len(self.backoff_s):
                _LOGGER.info("webhook for alarm %s failed (%s); retrying", alarm["alarm_id"], why)
                if self._stopping.wait(self.backoff_s[attempt]):
                    break
        _LOGGER.warning("webhook for alarm %s given up (%s)", alarm["alarm_id"], why)
        return False
