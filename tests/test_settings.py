"""Settings from the environment and broker URLs."""

from __future__ import annotations

import pytest

from carehub.errors import ConfigError
from carehub.settings import MqttTarget, Settings


def test_mqtt_url_parsed_with_credentials_and_masked_when_shown() -> None:
    t = MqttTarget.parse("mqtts://gate%40way:s3cr%2Ft@broker.local")
    assert (t.host, t.port, t.username, t.password, t.tls) == (
        "broker.local",
        8883,
        "gate@way",
        "s3cr/t",
        True,
    )
    assert "s3cr" not in t.url()
    assert t.url(with_password=True) == "mqtts://gate@way:s3cr/t@broker.local:8883"
    assert MqttTarget.parse("mqtt://localhost").port == 1883


@pytest.mark.parametrize("url", ["http://x", "mqtt://", "mqtt://h:notaport"])
def test_bad_mqtt_url_says_what_to_use(url: str) -> None:
    with pytest.raises(ConfigError, match="CAREHUB_MQTT_URL"):
        MqttTarget.parse(url)


def test_settings_come_from_carehub_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREHUB_MQTT_URL", "mqtt://u:p@h:1884")
    monkeypatch.setenv("CAREHUB_HTTP_PORT", "9000")
    monkeypatch.setenv("CAREHUB_DB", "/tmp/x.db")
    s = Settings()
    assert s.http_port == 9000
    assert str(s.db) == "/tmp/x.db"
    assert s.mqtt_target() == MqttTarget("h", 1884, "u", "p")


def test_bad_prefix_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREHUB_MQTT_PREFIX", "a/b")
    with pytest.raises(ValueError, match="one topic level"):
        Settings()
