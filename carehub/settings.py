"""Process settings from `CAREHUB_*` environment variables (docs/configuration.md).

Read once per process through `get_settings()`, which tests override by clearing its cache
after changing the environment; nothing reads settings at import time.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from carehub.errors import ConfigError


@dataclass(frozen=True, slots=True)
class MqttTarget:
    """Where and how to reach the MQTT broker, parsed from `mqtt://user:pass@host:port`."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @classmethod
    def parse(cls, url: str, name: str = "CAREHUB_MQTT_URL") -> MqttTarget:
        """Parse an `mqtt://` or `mqtts://` URL; a bad one is a `ConfigError` naming the rule
        and the variable `name` it came from."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts"):
            msg = f"{name} has scheme {parts.scheme!r}. Use mqtt:// or mqtts://."
            raise ConfigError(msg)
        if not parts.hostname:
            msg = f"{name} has no host. Use mqtt://[user:password@]host[:port]."
            raise ConfigError(msg)
        tls = parts.scheme == "mqtts"
        try:
            port = parts.port or (8883 if tls else 1883)
        except ValueError as err:
            msg = f"{name} has a bad port: {err}"
            raise ConfigError(msg) from err
        return cls(
            host=parts.hostname,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
        )

    def url(self, *, with_password: bool = False) -> str:
        """The URL again; the password is masked unless asked for, so it can be logged."""
        auth = ""
        if self.username:
            secret = self.password if with_password else "***"
            auth = f"{self.username}:{secret}@" if self.password else f"{self.username}@"
        return f"{'mqtts' if self.tls else 'mqtt'}://{auth}{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class InfluxTarget:
    """Where and as whom to write InfluxDB points (`CAREHUB_INFLUX_*`)."""

    url: str
    token: str
    org: str
    bucket: str


class Settings(BaseSettings):
    """Everything a CareHub process reads from its environment."""

    model_config = SettingsConfigDict(env_prefix="CAREHUB_", extra="ignore")

    site_file: Path | None = Field(None, description="The site file (YAML) of this care home.")
    db: Path = Field(Path("var/carehub.db"), description="SQLite file of the embedded store.")
    mqtt_url: str | None = Field(
        None, description="Broker URL, mqtt://user:pass@host:port (mqtts:// for TLS)."
    )
    mqtt_gateway_url: str | None = Field(
        None, description="The gateway part's own broker URL; overrides CAREHUB_MQTT_URL."
    )
    mqtt_rules_url: str | None = Field(
        None, description="The rules part's own broker URL; overrides CAREHUB_MQTT_URL."
    )
    mqtt_api_url: str | None = Field(
        None, description="The api part's own broker URL; overrides CAREHUB_MQTT_URL."
    )
    mqtt_prefix: str = Field("carehub", description="First level of every CareHub topic.")
    mqtt_ca_file: Path | None = Field(None, description="CA certificate for mqtts://.")
    http_host: str = Field("127.0.0.1", description="Address the web app listens on.")
    http_port: int = Field(8080, ge=0, le=65535, description="Port of the web app.")
    secret_key: SecretStr | None = Field(
        None, description="Signs browser sessions. Required outside demo mode."
    )
    webhook_token: SecretStr | None = Field(
        None, description="Bearer token vendors' clouds use on the webhook route."
    )
    influx_url: str | None = Field(None, description="InfluxDB 2 URL; unset = SQLite only.")
    influx_token: SecretStr | None = Field(None, description="InfluxDB API token.")
    influx_org: str | None = Field(None, description="InfluxDB organisation.")
    influx_bucket: str | None = Field(None, description="InfluxDB bucket.")
    log_level: str = Field("INFO", description="Python logging level.")
    retention_days: int = Field(
        90,
        ge=1,
        description="Days raw events and dead letters are kept; older nights stay as aggregates.",
    )
    handover_poll_s: float = Field(
        0.05,
        gt=0,
        le=5,
        description="Seconds between the rules part's looks at the hand-over log.",
    )
    handover_stall_s: float = Field(
        30.0,
        gt=0,
        description="An event waiting this long for the rules engine raises handover_stalled.",
    )
    disk_min_free_mb: int = Field(
        1024,
        ge=0,
        description="Less free disk than this where CAREHUB_DB lives raises store_failing.",
    )
    webhook_secret: SecretStr | None = Field(
        None,
        description="HMAC-SHA256 key vendors sign webhook bodies with (then signing is required).",
    )

    @field_validator("mqtt_prefix")
    @classmethod
    def _prefix_is_one_level(cls, value: str) -> str:
        if not value or any(c in value for c in "/+#"):
            msg = "must be one topic level without '/', '+' or '#'"
            raise ValueError(msg)
        return value

    def influx_target(self) -> InfluxTarget | None:
        """InfluxDB when `CAREHUB_INFLUX_URL` is set, None otherwise; a `ConfigError` naming
        each of token, org and bucket that is then missing."""
        if not self.influx_url:
            return None
        missing = [
            name
            for name, value in (
                ("CAREHUB_INFLUX_TOKEN", self.influx_token),
                ("CAREHUB_INFLUX_ORG", self.influx_org),
                ("CAREHUB_INFLUX_BUCKET", self.influx_bucket),
            )
            if not value
        ]
        if missing or self.influx_token is None:
            msg = f"CAREHUB_INFLUX_URL is set, so set {', '.join(missing)} too"
            raise ConfigError(msg)
        return InfluxTarget(
            self.influx_url,
            self.influx_token.get_secret_value(),
            self.influx_org or "",
            self.influx_bucket or "",
        )

    def mqtt_target(self, part: str | None = None) -> MqttTarget | None:
        """The configured broker, or None when none is configured. For a `part` (gateway,
        rules, api) its own URL when set: one process running several parts logs each in
        with its own credential (docs/deployment.md, "Broker logins")."""
        own = {
            "gateway": self.mqtt_gateway_url,
            "rules": self.mqtt_rules_url,
            "api": self.mqtt_api_url,
        }.get(part or "")
        if own:
            return MqttTarget.parse(own, f"CAREHUB_MQTT_{(part or '').upper()}_URL")
        return MqttTarget.parse(self.mqtt_url) if self.mqtt_url else None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings()
