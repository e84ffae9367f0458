"""CareHub's one topic grammar: every topic a part publishes or subscribes to is built here,
and device topics are parsed here (docs/mqtt.md lists them all).

A topic is `{prefix}/{site}/…`; `SiteTopics` builds them for one site, `TopicMap` maps a
device's uplink topic (native by grammar, vendor by the site file) back to the device.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from carehub.site import SiteIndex

Leaf = Literal["up", "status", "availability", "webhook", "selftest"]

AVAILABILITY_SUFFIX = "/availability"
"""Zigbee2MQTT's retained online/offline beside each device's topic."""

SELFTEST_DEVICE = "hub"
"""The `device_id` of self-test events and alarms: the hub itself, never a real device."""


@dataclass(frozen=True, slots=True)
class SiteTopics:
    """The topics of one site under one prefix; validated so no builder makes a wildcard."""

    prefix: str
    site: str

    def __post_init__(self) -> None:
        for name, value in (("prefix", self.prefix), ("site", self.site)):
            if not value or "+" in value or "#" in value:
                msg = f"topic {name} {value!r} must be non-empty and free of MQTT wildcards"
                raise ValueError(msg)

    @property
    def base(self) -> str:
        """`{prefix}/{site}`."""
        return f"{self.prefix}/{self.site}"

    # --- devices → gateway ----------------------------------------------------------------

    def device_up(self, device_id: str) -> str:
        """A native device's uplink."""
        return f"{self.base}/devices/{device_id}/up"

    def device_status(self, device_id: str) -> str:
        """A native device's retained online/offline (its last will)."""
        return f"{self.base}/devices/{device_id}/status"

    def device_filters(self) -> list[str]:
        """Every native device's uplink and status."""
        return [f"{self.base}/devices/+/up", f"{self.base}/devices/+/status"]

    def webhook(self, vendor: str) -> str:
        """The pseudo-topic a vendor's webhook bodies are ingested on (dead letters name it)."""
        return f"{self.base}/webhooks/{vendor}"

    def selftest_request(self) -> str:
        """Where the web app asks for a self-test (its ACL allows `hub/api/#`)."""
        return f"{self.hub('api')}/selftest"

    def hub(self, part: str) -> str:
        """The beginning of a part's own topics (`hub/gateway`, `hub/api`, `hub/bridge`)."""
        return f"{self.base}/hub/{part}"

    # --- gateway → everyone ---------------------------------------------------------------

    def event(self, kind: str, device_id: str) -> str:
        """A canonical event: `{prefix}/{site}/events/{kind}/{device_id}`."""
        return f"{self.base}/events/{kind}/{device_id}"

    def events_filter(self) -> str:
        """Every canonical event of the site."""
        return f"{self.base}/events/#"

    def deadletter(self) -> str:
        """Rejected input, with its reason."""
        return f"{self.base}/deadletter"

    def provisional_fall(self, device_id: str) -> str:
        """A device's retained provisional fall alarm while the store does not answer."""
        return f"{self.base}/provisional/fall/{device_id}"

    def provisional_store(self) -> str:
        """The retained technical alarm `store_failing` from the gateway."""
        return f"{self.base}/provisional/store/gateway"

    def provisional_handover(self) -> str:
        """The retained technical alarm `handover_stalled` from the gateway (docs/handover.md)."""
        return f"{self.base}/provisional/store/handover"

    def provisional_head(self) -> str:
        """The common beginning of every provisional topic."""
        return f"{self.base}/provisional/"

    def provisional_filter(self) -> str:
        """Every provisional alarm of the site."""
        return f"{self.base}/provisional/#"

    # --- rules → everyone -----------------------------------------------------------------

    def alarm(self, alarm_id: str) -> str:
        """An alarm's retained current state."""
        return f"{self.base}/alarms/{alarm_id}"

    def alarms_filter(self) -> str:
        """Every alarm of the site."""
        return f"{self.base}/alarms/#"


def central_filters(prefix: str) -> list[str]:
    """What the central ingest subscribes to: every bridged site's events, alarms and dead
    letters."""
    return [f"{prefix}/+/events/#", f"{prefix}/+/alarms/#", f"{prefix}/+/deadletter"]


@dataclass(frozen=True, slots=True)
class Route:
    """Where a message came from: the device (None for a webhook or a self-test) and what it is."""

    leaf: Leaf
    device_id: str | None = None
    vendor: str | None = None


class TopicMap:
    """Maps topics of one site to devices; native topics by grammar, vendor ones by site file."""

    def __init__(self, prefix: str, index: SiteIndex) -> None:
        self.topics = SiteTopics(prefix, index.site.site)
        self.prefix = prefix
        self.site = index.site.site
        base = re.escape(self.topics.base)
        self._native = re.compile(
            rf"^{base}/devices/(?P<device_id>[a-z0-9][a-z0-9-]*)/(?P<leaf>up|status)$"
        )
        self._webhook = re.compile(rf"^{base}/webhooks/(?P<vendor>[a-z0-9][a-z0-9-]*)$")
        self._selftest = self.topics.selftest_request()
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
        return self.topics.webhook(vendor)

    def subscriptions(self) -> list[str]:
        """Every filter the gateway subscribes to for this site."""
        filters = self.topics.device_filters()
        for topic in sorted(self._vendor):
            filters += [topic, topic + AVAILABILITY_SUFFIX]
        return [*filters, self._selftest]
