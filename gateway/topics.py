"""The gateway's topic grammar: which device a topic belongs to, and what to subscribe to."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from carehub.site import SiteIndex
from gateway.selftest import selftest_topic

Leaf = Literal["up", "status", "availability", "webhook", "selftest"]

AVAILABILITY_SUFFIX = "/availability"
"""Zigbee2MQTT's retained online/offline beside each device's topic."""


@dataclass(frozen=True, slots=True)
class Route:
    """Where a message came from: the device (None for a webhook or a self-test) and what it is."""

    leaf: Leaf
    device_id: str | None = None
    vendor: str | None = None


class TopicMap:
    """Maps topics of one site to devices; native topics by grammar, vendor ones by site file."""

    def __init__(self, prefix: str, index: SiteIndex) -> None:
        self.prefix = prefix
        self.site = index.site.site
        base = re.escape(f"{prefix}/{self.site}")
        self._native = re.compile(
            rf"^{base}/devices/(?P<device_id>[a-z0-9][a-z0-9-]*)/(?P<leaf>up|status)$"
        )
        self._webhook = re.compile(rf"^{base}/webhooks/(?P<vendor>[a-z0-9][a-z0-9-]*)$")
        self._selftest = selftest_topic(prefix, self.site)
        self._vendor = dict(index.topic_devices)

    def route(self, topic: str) -> Route | None:
        """The route of a topic, or None when it is not one of this site's device topics."""
        if (m := self._native.match(topic)) is not None:
            return Route(m["leaf"], m["device_id"])  # type: ignore[arg-type]
        if (device_id := self._vendor.get(topic)) is not None:
            return Route("up", device_id)
        if topic.endswith(AVAILABILITY_SUFFIX):
            device_id = self._vendor.get(topic.removesuffix(AVAILABILITY_SUFFIX))
            if device_id is not None:
                return Route("availability", device_id)
        if (m := self._webhook.match(topic)) is not None:
            return Route("webhook", vendor=m["vendor"])
        if topic == self._selftest:
            return Route("selftest")
        return None

    def webhook_topic(self, vendor: str) -> str:
        """The pseudo-topic webhook bodies are ingested on, so dead letters say where from."""
        return f"{self.prefix}/{self.site}/webhooks/{vendor}"

    def subscriptions(self) -> list[str]:
        """Every filter the gateway subscribes to for this site."""
        base = f"{self.prefix}/{self.site}/devices"
        filters = [f"{base}/+/up", f"{base}/+/status"]
        for topic in sorted(self._vendor):
            filters += [topic, topic + AVAILABILITY_SUFFIX]
        return [*filters, self._selftest]
