"""A test-side MQTT client: publish, collect, and wait for messages on a real broker."""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho

from carehub.mqtt import ClientOptions, Protocol, close, connect_blocking
from carehub.settings import MqttTarget

_ids = itertools.count()


@dataclass(frozen=True)
class Received:
    """One message the probe saw."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    at: float

    def json(self) -> Any:
        """The payload parsed as JSON."""
        return json.loads(self.payload)


class MqttProbe:
    """Subscribes to what a test wants to see and publishes what it wants to send."""

    def __init__(
        self, host: str, port: int, protocol: Protocol = "5", persistent: bool = False
    ) -> None:
        """`persistent`: a session the broker keeps (and saves) while the probe is away."""
        self.target = MqttTarget(host=host, port=port)
        self._cond = threading.Condition()
        self._messages: list[Received] = []
        self._filters: list[tuple[str, int]] = []
        options = ClientOptions(
            client_id=f"probe-{next(_ids)}-{time.monotonic_ns()}",
            protocol=protocol,
            clean_start=not persistent,
            session_expiry_s=3600 if persistent else 0,
        )
        self.client = connect_blocking(self.target, options, on_connect=self._resubscribe)
        self.client.on_message = self._on_message

    def _resubscribe(self, client: paho.Client) -> None:
        for topic, qos in self._filters:
            client.subscribe(topic, qos)

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        with self._cond:
            self._messages.append(
                Received(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain), time.monotonic())
            )
            self._cond.notify_all()

    def subscribe(self, topic: str, qos: int = 1) -> None:
        """Subscribe and wait for the SUBACK so nothing published afterwards is missed."""
        done = threading.Event()
        self._filters.append((topic, qos))
        previous = self.client.on_subscribe

        def _on_sub(*_args: Any) -> None:
            done.set()

        self.client.on_subscribe = _on_sub
        self.client.subscribe(topic, qos)
        if not done.wait(5):
            raise TimeoutError(f"no SUBACK for {topic}")
        self.client.on_subscribe = previous

    def retained(self, topic_filter: str, timeout: float = 5.0) -> list[Received]:
        """Subscribe and return the retained messages the broker sends for `topic_filter`,
        once they are all here: the broker queues them to us on subscribing, so a marker we
        publish to ourselves afterwards arrives after the last of them."""
        marker = f"probe-marker/{uuid.uuid4().hex}"
        self.subscribe(topic_filter)
        self.subscribe(marker)
        self.publish(marker, b"marker")
        self.wait_for(marker, timeout=timeout)
        return [
            m for m in self.messages if m.retain and paho.topic_matches_sub(topic_filter, m.topic)
        ]

    def publish(
        self, topic: str, payload: bytes | str | dict[str, Any], qos: int = 1, retain: bool = False
    ) -> None:
        """Publish and, for QoS ≥ 1, wait until the broker has it."""
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        info = self.client.publish(topic, payload, qos=qos, retain=retain)
        if qos:
            info.wait_for_publish(timeout=5)
            if not info.is_published():
                raise TimeoutError(f"broker did not acknowledge publish to {topic}")

    @property
    def messages(self) -> list[Received]:
        """Everything received so far."""
        with self._cond:
            return list(self._messages)

    def wait_for(
        self,
        topic_filter: str,
        predicate: Callable[[Received], bool] = lambda _m: True,
        timeout: float = 5.0,
        count: int = 1,
    ) -> list[Received]:
        """Block until `count` messages match, or fail the test with what was seen instead."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                hits = [
                    m
                    for m in self._messages
                    if paho.topic_matches_sub(topic_filter, m.topic) and predicate(m)
                ]
                if len(hits) >= count:
                    return hits
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [m.topic for m in self._messages][-10:]
                    raise AssertionError(
                        f"{len(hits)}/{count} messages on {topic_filter} within {timeout} s; "
                        f"last seen: {seen}"
                    )
                self._cond.wait(left)

    def close(self) -> None:
        """Disconnect."""
        close(self.client)


def until(check: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    """Poll `check` until it holds, or fail saying `what` did not happen."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.01)


def unique_client_prefix() -> str:
    """A client-id prefix of its own for a hub in one test. The session's broker keeps a
    persistent session per client id: a later hub with the same id would receive the uplinks
    queued for an earlier one (and drop its own as duplicates)."""
    return f"t{uuid.uuid4().hex[:10]}"
