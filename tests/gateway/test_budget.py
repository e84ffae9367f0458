"""Per-device rate budgets (gateway/budget.py): the bucket on the injected clock, and a
device flooding valid heartbeats through a real Mosquitto, gateway and rules engine while
another device's fall still gets through (docs/devices.md, "Rate budget")."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from app.broker import MosquittoBroker
from carehub.site import Site, SiteIndex
from gateway.budget import RateBudget
from tests.gateway.conftest import native
from tests.gateway.test_replays import Hubs, wait_until
from tests.services.conftest import NIGHT
from tests.support.mqttprobe import MqttProbe


def test_a_fall_sensor_may_send_a_burst_then_its_sustained_rate(test_index: SiteIndex) -> None:
    binding = test_index.device("fall-a1")
    assert binding is not None
    assert binding.heartbeat_seconds == 60
    # a heartbeat a minute and a fall every 30 s, times 20; ten minutes of that as a burst
    assert RateBudget.allowance(binding) == pytest.approx((1.0, 600.0))
    budget = RateBudget()
    verdicts = [budget.take(binding, NIGHT) for _ in range(603)]
    assert verdicts[:600] == [(True, False)] * 600
    assert verdicts[600:] == [(False, True), (False, False), (False, False)]
    assert budget.flooding() == ["fall-a1"]
    assert budget.take(binding, NIGHT + timedelta(seconds=1)) == (True, False)  # refilled one
    assert budget.take(binding, NIGHT + timedelta(seconds=1)) == (False, False)  # same episode
    # calm for a whole burst's worth: the episode is over; flooding again is a new one
    later = NIGHT + timedelta(minutes=11)
    assert budget.take(binding, later) == (True, False)
    assert budget.flooding() == []
    for _ in range(599):
        budget.take(binding, later)
    assert budget.take(binding, later) == (False, True)


@pytest.fixture
def hubs(tmp_path: Path, mosquitto: MosquittoBroker, test_site: Site) -> Iterator[Hubs]:
    h = Hubs(tmp_path, mosquitto, test_site)
    yield h
    h.stop()


@pytest.mark.broker
@pytest.mark.mosquitto_only
def test_a_flooding_device_is_rate_limited_counted_and_alarmed_once_and_falls_still_pass(
    hubs: Hubs, mosquitto: MosquittoBroker
) -> None:
    """The injected clock stands still, so the bucket does not refill during the flood: of
    700 heartbeats 600 pass and 100 are dead-lettered `rate_limited`."""
    hub = hubs.start()
    probe = MqttProbe(mosquitto.host, mosquitto.port)
    try:
        flooder = hubs.topics.device_up("fall-a1")
        for seq in range(1, 701):
            probe.client.publish(flooder, native(seq, "heartbeat", NIGHT, battery=90), qos=1)
        probe.publish(flooder, native(701, "fall", NIGHT, confidence=0.9))  # over budget too
        sent = time.monotonic()
        probe.publish(hubs.topics.device_up("fall-b1"), native(1, "fall", NIGHT, confidence=0.9))

        def fall_of(device: str) -> list[dict[str, Any]]:
            alarms = hub.alarms.list_alarms(state="active")
            return [a for a in alarms if a["rule"] == "fall" and a["device_id"] == device]

        wait_until(lambda: fall_of("fall-b1"), timeout=10, what="the other device's fall")
        other_after = time.monotonic() - sent
        wait_until(lambda: fall_of("fall-a1"), timeout=10, what="the flooder's own fall")
        metrics = hub.gateway.metrics
        wait_until(lambda: metrics().get("carehub_gateway_messages_in_total", 0) >= 702)
        faults = wait_until(
            lambda: [a for a in hub.alarms.list_alarms(state="all") if a["rule"] == "device_fault"],
            what="the flooding alarm",
        )
        # Its sample of dead letters is taken for this minute (the clock stands still): what
        # the flooder sends now is counted and acknowledged on arrival, never queued.
        for seq in range(702, 752):
            probe.client.publish(flooder, native(seq, "heartbeat", NIGHT, battery=90), qos=1)
        probe.publish(flooder, native(752, "heartbeat", NIGHT, battery=90))
        wait_until(lambda: metrics().get("carehub_gateway_messages_in_total", 0) >= 753)
        shed = metrics()["carehub_gateway_shed_on_arrival_total"]
    finally:
        probe.close()
    assert other_after < 5.0
    assert shed == 51
    m = metrics()
    assert m['carehub_gateway_rejected_total{reason="rate_limited"}'] == 151
    assert m['carehub_gateway_dead_letters_sampled_out_total{reason="rate_limited"}'] == 131
    kept = hub.gateway.ingestor.store.dead_letters(limit=1000)
    assert [d.reason for d in kept] == ["rate_limited"] * 20
    assert m["carehub_gateway_over_budget_passed_total"] == 1  # the flooder's fall
    assert m['carehub_gateway_flooding_total{device="fall-a1"}'] == 1
    (fault,) = faults
    assert (fault["device_id"], fault["kind"], fault["count"]) == ("fall-a1", "technical", 1)
