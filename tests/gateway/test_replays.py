"""Replays and ghosts across gateway restarts, on a real Mosquitto of the test's own and a
real SQLite file: a retained uplink raises nothing again, a retained provisional fall does not
outlive the gateway that announced it (docs/devices.md, "Retained messages"; docs/alarms.md,
"Provisional alarms")."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from app.broker import MosquittoBroker
from app.hub import Hub, HubOptions
from carehub.clock import FakeClock
from carehub.settings import Settings
from carehub.site import Site
from carehub.topics import SiteTopics
from tests.services.conftest import NIGHT
from tests.support.mqttprobe import MqttProbe

pytestmark = [pytest.mark.broker, pytest.mark.mosquitto_only]

RADAR_FALL = {"presence": 1, "movement": 0, "fall_state": 1}


def wait_until(check: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.02)
    return value


class Hubs:
    """Gateway and rules in one process, started and stopped again on one database, broker,
    clock and client ids (so the broker resumes the same persistent sessions)."""

    def __init__(self, tmp_path: Path, broker: MosquittoBroker, site: Site) -> None:
        self.prefix = f"t{uuid.uuid4().hex[:8]}"
        self.settings = Settings(  # type: ignore[call-arg]
            _env_file=None,
            db=tmp_path / "hub.db",
            mqtt_url=f"mqtt://{broker.host}:{broker.port}",
            mqtt_prefix=self.prefix,
            secret_key="s" * 40,
        )
        self.site = site
        self.clock = FakeClock(NIGHT)
        self.options = HubOptions(protocol="5", client_id_prefix=self.prefix)
        self.topics = SiteTopics(self.prefix, site.site)
        self.hub: Hub | None = None

    def start(self) -> Hub:
        self.hub = Hub(self.settings, self.site, ("gateway", "rules"), self.clock, self.options)
        self.hub.start()
        assert self.hub.wait_ready(), "hub did not connect"
        return self.hub

    def stop(self) -> None:
        if self.hub is not None:
            self.hub.stop()
            self.hub = None


@pytest.fixture
def hubs(tmp_path: Path, mosquitto: MosquittoBroker, test_site: Site) -> Iterator[Hubs]:
    h = Hubs(tmp_path, mosquitto, test_site)
    yield h
    h.stop()


@pytest.fixture
def probe(mosquitto: MosquittoBroker) -> Iterator[MqttProbe]:
    p = MqttProbe(mosquitto.host, mosquitto.port)
    yield p
    p.close()


def falls(hub: Hub, state: str = "all") -> list[dict[str, Any]]:
    return [a for a in hub.alarms.list_alarms(state=state) if a["rule"] == "fall"]


def test_a_retained_fall_replayed_after_a_restart_raises_no_new_alarm(
    hubs: Hubs, probe: MqttProbe
) -> None:
    hub = hubs.start()
    probe.publish(hubs.topics.device_up("fall-a2"), RADAR_FALL, retain=True)
    (alarm,) = wait_until(lambda: falls(hub, "active"), what="the fall alarm")
    hub.alarms.resolve(alarm["alarm_id"], "sofie", "assisted", None)
    hubs.stop()

    hubs.clock.advance(timedelta(minutes=10))  # far outside the seq-less duplicate window
    hub = hubs.start()
    metrics = hub.gateway.metrics
    wait_until(
        lambda: metrics().get("carehub_gateway_retained_skipped_total", 0) >= 1,
        what="the gateway skipping the replayed retained fall",
    )
    # skipped, so never handed over to the rules: no alarm can follow from it
    assert falls(hub, "active") == []
    assert metrics()["carehub_gateway_retained_skipped_total"] == 1
    assert len(falls(hub)) == 1
    assert metrics().get("carehub_gateway_messages_accepted_total", 0) == 0

    # a live (not retained) fall from the same radar still alarms
    probe.publish(hubs.topics.device_up("fall-a2"), RADAR_FALL)
    wait_until(lambda: falls(hub, "active"), what="a new, live fall alarm")


def retained_on(broker: MosquittoBroker, topic_filter: str) -> dict[str, bytes]:
    """What a newly connecting subscriber gets: the retained messages only."""
    fresh = MqttProbe(broker.host, broker.port)
    try:
        return {m.topic: m.payload for m in fresh.retained(topic_filter) if m.payload}
    finally:
        fresh.close()


def test_a_starting_gateway_clears_provisional_alarms_an_earlier_one_left(
    hubs: Hubs, probe: MqttProbe, mosquitto: MosquittoBroker
) -> None:
    """A gateway killed between announcing a provisional fall and settling it leaves it
    retained; the next gateway clears it (and a stale `store_failing`) before anything else."""
    ghost = {
        "alarm_id": "provisional-fall-a1",
        "rule": "fall",
        "device_id": "fall-a1",
        "raised_at": "2026-11-22T21:00:00Z",
        "last_seen_at": "2026-11-22T21:00:00Z",
        "provisional": True,
    }
    probe.publish(hubs.topics.provisional_fall("fall-a1"), ghost, retain=True)
    probe.publish(hubs.topics.provisional_store(), {"alarm_id": "x"}, retain=True)
    assert len(retained_on(mosquitto, hubs.topics.provisional_filter())) == 2

    hubs.start()
    wait_until(
        lambda: not retained_on(mosquitto, hubs.topics.provisional_filter()),
        what="the old provisional alarms cleared",
    )
