"""The admin's self-test: one synthetic message through the whole alarm path, end to end.

Health checks say each part is up; only a message that actually travels api → broker →
gateway → canonical event → rules engine → alarm store (→ board) says the path works. The
test publishes a request, watches for its canonical event on MQTT, waits for its alarm in the
alarm store, resolves it in the admin's name (`no_action_needed`), and answers how long it
took — or which stage it never got past.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from carehub.topics import SELFTEST_DEVICE, SiteTopics
from gateway.selftest import selftest_event_id
from services.alarms.service import AlarmService
from services.rules.engine import self_test_alarm_id

_LOGGER = logging.getLogger(__name__)

TIMEOUT_S = 10.0
"""The whole test, publish to alarm; a healthy hub needs milliseconds."""
POLL_S = 0.02
PUBLISH_TIMEOUT_S = 5.0

Stage = Literal["not_published", "no_event", "no_alarm"]


class MqttLink(Protocol):
    """The web app's broker connection, as the self-test needs it."""

    def publish(self, topic: str, payload: bytes, timeout: float) -> bool:
        """Publish at QoS 1; whether the broker acknowledged within `timeout`."""
        ...

    def add_listener(self, listener: Callable[[str, bytes], None]) -> Callable[[], None]:
        """Call `listener(topic, payload)` for every message received; answers the remover."""
        ...


@dataclass(frozen=True, slots=True)
class SelfTestResult:
    """How a self-test went."""

    ok: bool
    elapsed_ms: float
    alarm_id: str | None = None
    stage: Stage | None = None
    """The first stage that did not happen, when not ok."""

    def to_json(self) -> dict[str, Any]:
        """The API's answer."""
        if self.ok:
            return {"ok": True, "alarm_id": self.alarm_id, "elapsed_ms": self.elapsed_ms}
        return {"ok": False, "stage": self.stage, "elapsed_ms": self.elapsed_ms}


def events_filter(prefix: str, site: str) -> str:
    """What the web app subscribes to so it can see self-test events pass."""
    return SiteTopics(prefix, site).event("system", SELFTEST_DEVICE)


class SelfTest:
    """Runs self-tests over the web app's broker link and the alarm store."""

    def __init__(
        self,
        link: MqttLink,
        alarms: AlarmService,
        site: str,
        prefix: str,
        timeout_s: float = TIMEOUT_S,
    ) -> None:
        self.link = link
        self.alarms = alarms
        self.site = site
        self.prefix = prefix
        self.timeout_s = timeout_s

    def run(self, actor: str) -> SelfTestResult:
        """One test in `actor`'s name; audited whatever the outcome."""
        selftest_id = uuid.uuid4().hex
        event_id = selftest_event_id(self.site, selftest_id)
        alarm_id = self_test_alarm_id(self.site, event_id)
        event_topic = events_filter(self.prefix, self.site)
        seen = threading.Event()

        def _on_message(topic: str, payload: bytes) -> None:
            if topic != event_topic:
                return
            try:
                if json.loads(payload).get("event_id") == event_id:
                    seen.set()
            except (ValueError, AttributeError):
                return

        remove = self.link.add_listener(_on_message)
        started = time.monotonic()
        deadline = started + self.timeout_s
        try:
            request = {"selftest_id": selftest_id, "requested_by": actor}
            published = self.link.publish(
                SiteTopics(self.prefix, self.site).selftest_request(),
                json.dumps(request).encode(),
                min(PUBLISH_TIMEOUT_S, self.timeout_s),
            )
            result = (
                self._wait_for_alarm(alarm_id, started, deadline, seen)
                if published
                else SelfTestResult(False, _ms(started), stage="not_published")
            )
        finally:
            remove()
        if result.ok:
            self.alarms.resolve(alarm_id, actor, "no_action_needed", "self-test")
        self.alarms.record_access(
            actor,
            "self_test",
            {"ok": result.ok, "stage": result.stage, "elapsed_ms": result.elapsed_ms},
        )
        _LOGGER.info(
            "self-test by %s: %s in %.0f ms",
            actor,
            "ok" if result.ok else result.stage,
            result.elapsed_ms,
        )
        return result

    def _wait_for_alarm(
        self, alarm_id: str, started: float, deadline: float, seen: threading.Event
    ) -> SelfTestResult:
        while True:
            if self.alarms.store.get(alarm_id) is not None:
                return SelfTestResult(True, _ms(started), alarm_id=alarm_id)
            if time.monotonic() >= deadline:
                stage: Stage = "no_alarm" if seen.is_set() else "no_event"
                return SelfTestResult(False, _ms(started), stage=stage)
            time.sleep(POLL_S)


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)
