"""carehub.subscriber on a real broker: when a commit happens (the interval, or at once with
`wake_on_first`), and that only committed messages are acknowledged."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from app.broker import LocalBroker
from carehub.mqtt import Protocol
from carehub.settings import MqttTarget
from carehub.subscriber import Delivery, DurableSubscriber, SubscriptionConfig
from tests.support.mqttprobe import MqttProbe

pytestmark = pytest.mark.broker


def _committed_after(
    broker: LocalBroker, protocol: Protocol, wake_on_first: bool, wait_s: float
) -> float | None:
    """Seconds from publishing one message to its commit, or None within `wait_s`."""
    topic = f"subscriber-test/{uuid.uuid4().hex[:8]}"
    done = threading.Event()
    batches: list[list[Delivery]] = []

    def commit(batch: list[Delivery]) -> None:
        batches.append(batch)
        done.set()

    sub = DurableSubscriber(
        SubscriptionConfig(
            target=MqttTarget(broker.host, broker.port),
            client_id=f"sub-{uuid.uuid4().hex[:8]}",
            filters=(topic,),
            protocol=protocol,
            session_expiry_s=0,
            commit_interval_s=30.0,  # far longer than any test waits
            wake_on_first=wake_on_first,
        ),
        commit,
        name="test",
    )
    sub.start()
    probe = MqttProbe(broker.host, broker.port, protocol=protocol)
    try:
        assert sub.wait_ready(10)
        time.sleep(0.2)  # the first loop turn has begun its wait
        sent = time.monotonic()
        probe.publish(topic, b"x")
        if not done.wait(wait_s):
            return None
        assert [d.payload for d in batches[0]] == [b"x"]
        return time.monotonic() - sent
    finally:
        probe.close()
        sub.abort()


def test_wake_on_first_commits_at_once_and_the_interval_waits(
    broker: LocalBroker, mqtt_protocol: Protocol
) -> None:
    at_once = _committed_after(broker, mqtt_protocol, wake_on_first=True, wait_s=5)
    assert at_once is not None
    assert at_once < 1.0
    assert _committed_after(broker, mqtt_protocol, wake_on_first=False, wait_s=2) is None


def test_a_persistent_session_cannot_start_clean() -> None:
    """A clean start would wipe what the broker keeps for a persistent client."""
    from carehub.mqtt import ClientOptions

    with pytest.raises(ValueError, match="persistent"):
        ClientOptions(client_id="carehub-gateway", session_expiry_s=60)
    with pytest.raises(ValueError, match="persistent"):
        ClientOptions(client_id="carehub-gateway", manual_ack=True)
    assert ClientOptions(client_id="x", clean_start=False, session_expiry_s=60, manual_ack=True)
