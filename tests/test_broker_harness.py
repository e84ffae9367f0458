"""The real-broker harness itself: brokers start, carry messages, restart, and stop."""

from __future__ import annotations

import pytest

from app.broker import EmbeddedBroker, LocalBroker, MosquittoBroker, reachable
from carehub.mqtt import Protocol
from tests.support.mqttprobe import MqttProbe


@pytest.mark.broker
def test_probe_round_trip_on_session_broker(probe: MqttProbe) -> None:
    probe.subscribe("harness/rt/#")
    probe.publish("harness/rt/a", {"n": 1})
    probe.publish("harness/rt/b", b"\x00raw")
    got = probe.wait_for("harness/rt/#", count=2)
    assert got[0].json() == {"n": 1}
    assert got[1].payload == b"\x00raw"


@pytest.mark.broker
def test_retained_message_reaches_late_subscriber(
    broker: LocalBroker, mqtt_protocol: Protocol
) -> None:
    first = MqttProbe(broker.host, broker.port, mqtt_protocol)
    first.publish("harness/retained/x", "online", retain=True)
    late = MqttProbe(broker.host, broker.port, mqtt_protocol)
    late.subscribe("harness/retained/#")
    (msg,) = late.wait_for("harness/retained/#")
    assert (msg.payload, msg.retain) == (b"online", True)
    first.publish("harness/retained/x", b"", retain=True)  # clear it for other tests
    first.close()
    late.close()


def test_wait_for_fails_loudly_with_what_it_saw(probe: MqttProbe) -> None:
    probe.subscribe("harness/loud/#")
    probe.publish("harness/loud/other", "x")
    with pytest.raises(AssertionError, match="0/1 messages on harness/loud/wanted"):
        probe.wait_for("harness/loud/wanted", timeout=0.3)


@pytest.mark.mosquitto_only
def test_fresh_mosquitto_keeps_retained_state_across_restart(mosquitto: MosquittoBroker) -> None:
    p = MqttProbe(mosquitto.host, mosquitto.port)
    p.publish("harness/persist", "kept", retain=True)
    p.close()
    mosquitto.restart()
    q = MqttProbe(mosquitto.host, mosquitto.port)
    q.subscribe("harness/persist")
    assert q.wait_for("harness/persist")[0].payload == b"kept"
    q.close()


@pytest.mark.mosquitto_only
def test_killed_mosquitto_frees_port_and_comes_back(mosquitto: MosquittoBroker) -> None:
    mosquitto.kill()
    assert not reachable(mosquitto.host, mosquitto.port, timeout=0.2)
    mosquitto.start()
    assert reachable(mosquitto.host, mosquitto.port)


def test_embedded_broker_carries_mqtt_311() -> None:
    b = EmbeddedBroker()
    try:
        p = MqttProbe(b.host, b.port, protocol="3.1.1")
        p.subscribe("emb/#")
        p.publish("emb/x", {"ok": True})
        assert p.wait_for("emb/#")[0].json() == {"ok": True}
        p.close()
    finally:
        b.stop()
    assert not reachable(b.host, b.port, timeout=0.2)
