"""carehub.subscriber on a real broker: when a commit happens (the interval, or at once with
`wake_on_first`), and that a message whose commit failed is not acknowledged, so the broker
delivers it again to the next process on the same persistent session."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

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
    """With `wake_on_first` a message is committed long before the (30 s) interval; without
    it, not within 2 s. How soon "at once" is belongs to bench/, not here."""
    at_once = _committed_after(broker, mqtt_protocol, wake_on_first=True, wait_s=10)
    assert at_once is not None
    assert _committed_after(broker, mqtt_protocol, wake_on_first=False, wait_s=2) is None


def test_a_persistent_session_cannot_start_clean() -> None:
    """A clean start would wipe what the broker keeps for a persistent client."""
    from carehub.mqtt import ClientOptions

    with pytest.raises(ValueError, match="persistent"):
        ClientOptions(client_id="carehub-gateway", session_expiry_s=60)
    with pytest.raises(ValueError, match="persistent"):
        ClientOptions(client_id="carehub-gateway", manual_ack=True)
    assert ClientOptions(client_id="x", clean_start=False, session_expiry_s=60, manual_ack=True)


def _lane_subscriber(
    broker: LocalBroker, topics: str, client_id: str, commit: Callable[[list[Delivery]], None]
) -> DurableSubscriber:
    """Messages whose payload starts with "!" are urgent; routine ones wait 30 s."""
    return DurableSubscriber(
        SubscriptionConfig(
            target=MqttTarget(broker.host, broker.port),
            client_id=client_id,
            filters=(topics,),
            session_expiry_s=3600,
            commit_interval_s=30.0,
        ),
        commit,
        name="lanes",
        urgent=lambda _topic, payload: payload.startswith(b"!"),
    )


@pytest.mark.mosquitto_only
def test_an_urgent_message_overtakes_routine_ones_but_not_those_of_its_own_topic(
    broker: LocalBroker,
) -> None:
    prefix = f"lanes/{uuid.uuid4().hex[:8]}"
    batches: list[list[bytes]] = []
    first = threading.Event()

    def commit(batch: list[Delivery]) -> None:
        batches.append([d.payload for d in batch])
        first.set()

    sub = _lane_subscriber(broker, f"{prefix}/#", f"lanes-{uuid.uuid4().hex[:8]}", commit)
    sub.start()
    probe = MqttProbe(broker.host, broker.port)
    try:
        assert sub.wait_ready(10)
        for topic, payload in (("a", b"a1"), ("b", b"b1"), ("a", b"a2"), ("b", b"!b2")):
            probe.publish(f"{prefix}/{topic}", payload)
        assert first.wait(10)
        sub.stop()
        # the urgent one first, in a batch of its own with its topic's earlier b1; the routine
        # a1, a2 in a later batch (the same pass commits them right after: they only wait
        # for the urgent lane, never the other way round)
        assert batches[0] == [b"b1", b"!b2"]
        assert [p for batch in batches[1:] for p in batch] == [b"a1", b"a2"]
        assert sub.urgent_commits == 1
    finally:
        probe.close()


@pytest.mark.mosquitto_only
def test_a_backlog_is_committed_in_bounded_batches_with_the_urgent_lane_between(
    broker: LocalBroker,
) -> None:
    """However long the routine backlog, one commit takes at most `commit_batch` of it, so an
    urgent arrival waits for one batch, not for the whole backlog."""
    prefix = f"lanes/{uuid.uuid4().hex[:8]}"
    batches: list[list[bytes]] = []
    release = threading.Event()

    def commit(batch: list[Delivery]) -> None:
        batches.append([d.payload for d in batch])
        release.wait(10)  # the first commit holds the thread while the backlog builds up

    sub = DurableSubscriber(
        SubscriptionConfig(
            target=MqttTarget(broker.host, broker.port),
            client_id=f"lanes-{uuid.uuid4().hex[:8]}",
            filters=(f"{prefix}/#",),
            session_expiry_s=3600,
            commit_interval_s=30.0,
            commit_batch=10,
        ),
        commit,
        name="lanes",
        urgent=lambda _topic, payload: payload.startswith(b"!"),
    )
    sub.start()
    probe = MqttProbe(broker.host, broker.port)
    routine = [b"r%d" % i for i in range(35)]
    try:
        assert sub.wait_ready(10)
        for payload in routine:
            probe.client.publish(f"{prefix}/a", payload, qos=1)
        probe.publish(f"{prefix}/b", b"!u")
        deadline = time.monotonic() + 10
        while sub.pending() < 26 and time.monotonic() < deadline:
            time.sleep(0.01)  # the 25 routine behind the held batch and the urgent one wait
        assert sub.pending() == 26
        release.set()
        deadline = time.monotonic() + 10
        while len(batches) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        sub.stop()  # commits the last, partial batch (the interval is 30 s)
    finally:
        release.set()
        probe.close()
    assert batches[0] == routine[:10]
    assert batches[1] == [b"!u"]
    assert all(len(batch) <= 10 for batch in batches)
    assert [p for batch in batches[2:] for p in batch] == routine[10:]


@pytest.mark.mosquitto_only
def test_mosquitto_takes_an_acknowledgement_out_of_order(broker: LocalBroker) -> None:
    """The urgent lane acknowledges a later message before earlier ones: after a crash the
    broker redelivers the earlier, unacknowledged ones only, never the acknowledged one."""
    prefix = f"lanes/{uuid.uuid4().hex[:8]}"
    client_id = f"lanes-{uuid.uuid4().hex[:8]}"
    urgent_done = threading.Event()

    def commit_urgent_only(batch: list[Delivery]) -> None:
        if not batch[0].urgent:
            raise RuntimeError("routine: never committed here")
        urgent_done.set()

    sub = _lane_subscriber(broker, f"{prefix}/#", client_id, commit_urgent_only)
    sub.start()
    probe = MqttProbe(broker.host, broker.port)
    try:
        assert sub.wait_ready(10)
        for topic, payload in (("a", b"a1"), ("a", b"a2"), ("b", b"!b1")):
            probe.publish(f"{prefix}/{topic}", payload)
        assert urgent_done.wait(10)
        time.sleep(0.5)  # the PUBACK is on the wire (paho writes it at once)
        sub.abort()
        again: list[bytes] = []
        both = threading.Event()

        def commit(batch: list[Delivery]) -> None:
            again.extend(d.payload for d in batch)
            if len(again) >= 2:
                both.set()

        second = _lane_subscriber(broker, f"{prefix}/#", client_id, commit)
        second.start()
        assert second.wait_ready(10)
        second.wake()
        deadline = time.monotonic() + 10
        while len(second.queued()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # room for a wrong redelivery of b1 to show
        second.stop()
        assert sorted(again) == [b"a1", b"a2"]
    finally:
        probe.close()


@pytest.mark.parametrize("end", ["abort", "stop"])
def test_a_message_whose_commit_fails_is_delivered_again_on_the_same_session(
    broker: LocalBroker, mqtt_protocol: Protocol, end: str
) -> None:
    """The durability rule: acknowledge only after the commit. The store is away (every
    commit raises), the process ends (`abort`: a crash, no DISCONNECT; `stop`: a clean
    shutdown, which flushes whatever PUBACKs were queued), and a new subscriber on the same
    client id must receive the message again. A subscriber that acknowledged before its
    commit loses it here."""
    topic = f"subscriber-test/{uuid.uuid4().hex[:8]}"
    client_id = f"sub-{uuid.uuid4().hex[:8]}"
    config = SubscriptionConfig(
        target=MqttTarget(broker.host, broker.port),
        client_id=client_id,
        filters=(topic,),
        protocol=mqtt_protocol,
        session_expiry_s=60,
        wake_on_first=True,
    )
    cond = threading.Condition()
    attempts: list[list[bytes]] = []

    def store_away(batch: list[Delivery]) -> None:
        with cond:
            attempts.append([d.payload for d in batch])
            cond.notify_all()
        raise OSError("the store is away")

    first = DurableSubscriber(config, store_away, name="first")
    first.start()
    probe = MqttProbe(broker.host, broker.port, protocol=mqtt_protocol)
    try:
        assert first.wait_ready(10)
        probe.publish(topic, b"fall")
        with cond:
            # Two attempts: the retry comes COMMIT_RETRY_S after the first failure, by which
            # time anything the first attempt acknowledged has reached the broker.
            assert cond.wait_for(lambda: len(attempts) >= 2, timeout=10), attempts
        assert attempts[0] == [b"fall"]
    finally:
        probe.close()
        if end == "abort":
            first.abort()
        else:
            first.stop()

    done = threading.Event()
    again: list[Delivery] = []

    def store_back(batch: list[Delivery]) -> None:
        again.extend(batch)
        done.set()

    second = DurableSubscriber(config, store_back, name="second")
    second.start()
    try:
        assert done.wait(10), "the broker did not deliver the uncommitted message again"
        assert [d.payload for d in again] == [b"fall"]
    finally:
        second.stop()


def test_a_committed_message_is_acknowledged_and_not_delivered_again(
    broker: LocalBroker, mqtt_protocol: Protocol
) -> None:
    """The other half of the rule: what was committed is acknowledged, so the next process on
    the same session does not get it again. The session's queue reaches the new subscriber
    before a marker published after it connected, so the marker's commit closes the check."""
    topic = f"subscriber-test/{uuid.uuid4().hex[:8]}"
    config = SubscriptionConfig(
        target=MqttTarget(broker.host, broker.port),
        client_id=f"sub-{uuid.uuid4().hex[:8]}",
        filters=(topic,),
        protocol=mqtt_protocol,
        session_expiry_s=60,
        wake_on_first=True,
    )
    seen: list[bytes] = []

    def commit(batch: list[Delivery]) -> None:
        seen.extend(d.payload for d in batch)

    probe = MqttProbe(broker.host, broker.port, protocol=mqtt_protocol)
    try:
        for payload, last in ((b"fall", False), (b"marker", True)):
            sub = DurableSubscriber(config, commit, name="sub")
            sub.start()
            try:
                assert sub.wait_ready(10)
                probe.publish(topic, payload)
                deadline = time.monotonic() + 10
                # `commits` counts batches committed *and* acknowledged
                while payload not in seen or (not last and sub.commits < 1):
                    assert time.monotonic() < deadline, seen
                    time.sleep(0.01)  # polling a condition, not waiting for a guess
            finally:
                if last:
                    sub.stop()
                else:
                    sub.abort()
    finally:
        probe.close()
    assert seen == [b"fall", b"marker"]
