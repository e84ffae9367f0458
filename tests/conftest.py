"""Fixtures shared by the whole suite: real brokers on free ports, probes, site files.

Mosquitto is the broker of record (CI installs it). Where it is missing, the session broker
falls back to the embedded MQTT 3.1.1 broker and says so in the report header; tests that need
Mosquitto itself (MQTT 5, kill and restart) are then skipped with a reason, never silently.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.broker import EmbeddedBroker, LocalBroker, MosquittoBroker, find_mosquitto
from carehub.mqtt import Protocol
from carehub.site import Site, SiteIndex, load_site
from tests.support.mqttprobe import MqttProbe

ROOT = Path(__file__).resolve().parent.parent
HAVE_MOSQUITTO = find_mosquitto() is not None
NO_MOSQUITTO = (
    "Mosquitto is not installed (apt-get install mosquitto); MQTT 3.1.1 broker tests run on the "
    "embedded broker, Mosquitto-only tests are skipped"
)


def pytest_report_header() -> str:
    """Say once which broker the real-broker tests use."""
    return "broker: mosquitto" if HAVE_MOSQUITTO else f"broker: embedded amqtt. {NO_MOSQUITTO}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip Mosquitto-only tests, with the reason, where there is no Mosquitto."""
    if HAVE_MOSQUITTO:
        return
    skip = pytest.mark.skip(reason=NO_MOSQUITTO)
    for item in items:
        if "mosquitto_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def broker() -> Iterator[LocalBroker]:
    """One broker for the whole session; tests keep apart by topic prefix."""
    b: LocalBroker = MosquittoBroker() if HAVE_MOSQUITTO else EmbeddedBroker()
    yield b
    if isinstance(b, MosquittoBroker):
        b.cleanup()
    else:
        b.stop()


@pytest.fixture(scope="session")
def mqtt_protocol() -> Protocol:
    """MQTT 5 against Mosquitto; the embedded broker speaks 3.1.1 only."""
    return "5" if HAVE_MOSQUITTO else "3.1.1"


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A fresh Mosquitto of the test's own, to stop, kill or restart."""
    if not HAVE_MOSQUITTO:
        pytest.skip(NO_MOSQUITTO)
    b = MosquittoBroker(workdir=tmp_path / "mosquitto")
    yield b
    b.stop()


@pytest.fixture
def probe(broker: LocalBroker, mqtt_protocol: Protocol) -> Iterator[MqttProbe]:
    """A connected test client on the session broker."""
    p = MqttProbe(broker.host, broker.port, protocol=mqtt_protocol)
    yield p
    p.close()


@pytest.fixture(scope="session")
def test_site() -> Site:
    """The small test site (sites/test.yaml)."""
    return load_site(ROOT / "sites" / "test.yaml")


@pytest.fixture(scope="session")
def demo_site() -> Site:
    """The demo site (sites/demo.yaml)."""
    return load_site(ROOT / "sites" / "demo.yaml")


@pytest.fixture(scope="session")
def test_index(test_site: Site) -> SiteIndex:
    """Look-ups over the test site."""
    return SiteIndex(test_site)
