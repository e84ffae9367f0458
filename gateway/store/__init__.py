"""Where accepted events, dedupe keys, dead letters and device state are kept."""

from __future__ import annotations

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
    influx = settings.influx_target()
    if influx is not None:
        from gateway.store.influx import InfluxEventStore

        return InfluxEventStore(
            influx.url,
            influx.token,
            influx.org,
            influx.bucket,
            handover_db=settings.db if handover else None,
        )
    from gateway.store.sqlite import SqliteEventStore

    return SqliteEventStore(settings.db, handover=handover)
