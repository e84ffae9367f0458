"""Publishes committed alarm changes on MQTT and hands escalations to the webhook.

It reads the store's change log from a cursor kept in the store, so whatever process made a
change (the engine, or the web API acknowledging), the rules service publishes it, only after
it is committed, and a crash between commit and publish means a re-publish, not a loss.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import paho.mqtt.client as paho

from carehub.site import EscalationTarget
from carehub.topics import SiteTopics
from services.alarms.notify import WebhookNotifier
from services.alarms.store import AlarmStore, Change

_LOGGER = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 5.0
"""How long to wait for the broker's PUBACKs before trying the same changes again later."""


def alarm_topic(prefix: str, site: str, alarm_id: str) -> str:
    """`{prefix}/{site}/alarms/{alarm_id}` (docs/mqtt.md)."""
    return SiteTopics(prefix, site).alarm(alarm_id)


class AlarmPublisher:
    """Change log → retained alarm topics (+ webhook for escalations)."""

    def __init__(
        self,
        store: AlarmStore,
        prefix: str,
        site: str,
        target: EscalationTarget,
        notifier: WebhookNotifier | None = None,
    ) -> None:
        self.store = store
        self.prefix = prefix
        self.site = site
        self.target = target
        self.notifier = notifier
        self.cursor_name = f"mqtt:{prefix}/{site}"
        self.published = 0

    def publish_pending(self, client: paho.Client | None) -> int:
        """Publish every change after the cursor; answers how many changes were covered."""
        if client is None or not client.is_connected():
            return 0
        total = 0
        while True:
            changes = self.store.changes_after(self.store.cursor(self.cursor_name))
            if not changes:
                return total
            if not self._publish(client, changes):
                return total
            self.store.set_cursor(self.cursor_name, changes[-1].seq)
            self._notify(changes)
            total += len(changes)

    def _publish(self, client: paho.Client, changes: list[Change]) -> bool:
        # Only the newest state of each alarm matters to a retained topic: a burst of 100
        # repeats is one publish, not 100.
        latest: dict[str, dict[str, Any]] = {}
        for change in changes:
            latest.pop(change.alarm_id, None)
            latest[change.alarm_id] = change.alarm
        infos: list[paho.MQTTMessageInfo] = []
        for alarm_id, alarm in latest.items():
            topic = alarm_topic(self.prefix, self.site, alarm_id)
            payload = _json(alarm)
            if alarm["state"] == "resolved":
                # Live subscribers see how it ended; the retained message goes away.
                infos.append(client.publish(topic, payload, qos=1, retain=False))
                infos.append(client.publish(topic, b"", qos=1, retain=True))
            else:
                infos.append(client.publish(topic, payload, qos=1, retain=True))
        for info in infos:
            if info.rc != paho.MQTT_ERR_SUCCESS:
                _LOGGER.warning("alarm publish refused (rc %s); will retry", info.rc)
                return False
            try:
                info.wait_for_publish(PUBLISH_TIMEOUT_S)
            except (RuntimeError, ValueError):
                return False
            if not info.is_published():
                _LOGGER.warning("broker did not acknowledge alarm publish; will retry")
                return False
        self.published += len(latest)
        return True

    def _notify(self, changes: list[Change]) -> None:
        if self.notifier is None or self.target.kind != "webhook":
            return
        for change in changes:
            if change.reason == "escalated" or (
                change.reason == "reminder" and change.target is not None
            ):
                self.notifier.submit(change.reason, change.alarm)


def _json(alarm: dict[str, Any]) -> bytes:
    return json.dumps(alarm, separators=(",", ":")).encode()
