"""Limits against garbage and a filling disk (docs/security.md): dead letters sampled per
device and reason with exact counts, rate-limited log lines, and a technical alarm over the
real broker before the disk fills."""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest

from app.broker import LocalBroker
from app.hub import Hub, HubOptions
from carehub.mqtt import Protocol
from carehub.settings import Settings
from carehub.site import Site
from carehub.topics import SiteTopics
from gateway.deadletters import PER_KEY_PER_MINUTE
from gateway.pipeline import Ingestor
from gateway.store.sqlite import SqliteEventStore
from tests.gateway.conftest import T0, up
from tests.support.mqttprobe import MqttProbe, unique_client_prefix


def dead_letters(db: Path) -> int:
    reader = SqliteEventStore(db)
    try:
        return len(reader.dead_letters(100_000))
    finally:
        reader.close()


def test_garbage_keeps_a_sample_of_dead_letters_and_exact_counts(
    ingestor: Ingestor, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gateway.pipeline")
    for minute in range(2):
        at = T0 + timedelta(minutes=minute)
        for i in range(2_000):
            ingestor.ingest(up("fall-a1"), b"{garbage", at + timedelta(microseconds=i))
        ingestor.ingest(up("fall-a2"), b"{garbage", at)  # another device keeps its own
    ingestor.flush()
    metrics = ingestor.metrics()
    assert metrics['carehub_gateway_rejected_total{reason="not_json"}'] == 4_002
    kept = 2 * (PER_KEY_PER_MINUTE + 1)
    assert metrics['carehub_gateway_dead_letters_sampled_out_total{reason="not_json"}'] == (
        4_002 - kept
    )
    assert dead_letters(db_path) == kept
    lines = [r for r in caplog.records if "dead letter" in r.getMessage()]
    assert len(lines) == kept + 2  # one "sampled" line per device-minute


@pytest.mark.broker
def test_a_nearly_full_disk_raises_a_technical_alarm_over_mqtt(
    tmp_path: Path, broker: LocalBroker, mqtt_protocol: Protocol, test_site: Site
) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        db=tmp_path / "hub.db",
        mqtt_url=f"mqtt://{broker.host}:{broker.port}",
        mqtt_prefix=f"t{unique_client_prefix().replace('-', '')}"[:20],
        disk_min_free_mb=10**12,  # more than any disk has: this one is "nearly full"
    )
    probe = MqttProbe(broker.host, broker.port, protocol=mqtt_protocol)
    topic = SiteTopics(settings.mqtt_prefix, test_site.site).provisional_store()
    probe.subscribe(topic)
    hub = Hub(
        settings,
        test_site,
        ("gateway",),
        options=HubOptions(protocol=mqtt_protocol, client_id_prefix=unique_client_prefix()),
    )
    try:
        with hub:
            assert hub.wait_ready()
            (msg,) = probe.wait_for(topic, lambda m: bool(m.payload), timeout=10)
            alarm = json.loads(msg.payload)
            assert alarm["rule"] == "store_failing"
            assert alarm["kind"] == "technical"
            assert alarm["reason"].startswith("disk_low:")
    finally:
        probe.publish(topic, b"", retain=True)
        probe.close()
