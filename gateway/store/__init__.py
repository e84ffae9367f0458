"""Where accepted events, dedupe keys, dead letters and device state are kept."""

from __future__ import annotations

from carehub.errors import ConfigError
from carehub.settings import Settings
from gateway.store.base import (
    DeadLetter,
    DedupeHit,
    DeviceState,
    EventStore,
    SeqState,
)

__all__ = ["DeadLetter", "DedupeHit", "DeviceState", "EventStore", "SeqState", "open_store"]


def open_store(settings: Settings, *, handover: bool = False) -> EventStore:
    """InfluxDB when `CAREHUB_INFLUX_URL` is set (then token, org and bucket too), else SQLite.

    `handover`: the live gateway's store, which also hands each new event over to the rules
    engine through the SQLite file's hand-over log (docs/handover.md).
    """
    if settings.influx_url:
        from gateway.store.influx import InfluxEventStore

        missing = [
            name
            for name, value in (
                ("CAREHUB_INFLUX_TOKEN", settings.influx_token),
                ("CAREHUB_INFLUX_ORG", settings.influx_org),
                ("CAREHUB_INFLUX_BUCKET", settings.influx_bucket),
            )
            if not value
        ]
        if missing or settings.influx_token is None:
            msg = f"CAREHUB_INFLUX_URL is set, so set {', '.join(missing)} too"
            raise ConfigError(msg)
        return InfluxEventStore(
            settings.influx_url,
            settings.influx_token.get_secret_value(),
            settings.influx_org or "",
            settings.influx_bucket or "",
            handover_db=settings.db if handover else None,
        )
    from gateway.store.sqlite import SqliteEventStore

    return SqliteEventStore(settings.db, handover=handover)
