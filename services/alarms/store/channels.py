"""The newest state each sensor reported on each channel (fall, saturation, battery, seen).

The rules engine lets the newest reading win: a late, older one may count as a repeat but
never raises, resolves or moves a timer back, so it must know each channel's newest time.
"""

from __future__ import annotations

from datetime import datetime

from carehub.timefmt import from_us, to_us
from services.alarms.store.db import Repository, StoreDb

SCHEMA = """
CREATE TABLE IF NOT EXISTS alarm_sensor_state (
    device_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    ts_us INTEGER NOT NULL,
    PRIMARY KEY (device_id, channel)
);
"""


class ChannelRepository(Repository):
    """The `alarm_sensor_state` table, read through a cache.

    Every event reads and advances two or three channels. Inside a transaction the values
    read or written stay true until a rollback undoes a write or another connection commits
    (`StoreDb.generation`); then the cache is dropped. That saves two SELECTs of the eleven
    statements a heartbeat cost.
    """

    def __init__(self, db: StoreDb) -> None:
        super().__init__(db)
        self._channels: dict[tuple[str, str], int | None] = {}
        self._channels_at: tuple[int, int] | None = None

    def _channel_cache(self) -> dict[tuple[str, str], int | None] | None:
        generation = self._db.generation
        if generation is None:
            return None
        if generation != self._channels_at:
            self._channels.clear()
            self._channels_at = generation
        return self._channels

    def channel_ts(self, device_id: str, channel: str) -> datetime | None:
        """Event time of the newest state a device reported on a channel (e.g. saturation)."""
        cache = self._channel_cache()
        key = (device_id, channel)
        if cache is not None and key in cache:
            us = cache[key]
        else:
            rows = self._db.rows(
                "SELECT ts_us FROM alarm_sensor_state WHERE device_id = ? AND channel = ?",
                key,
            )
            us = rows[0][0] if rows else None
            if cache is not None:
                cache[key] = us
        return from_us(us) if us is not None else None

    def advance_channel(self, device_id: str, channel: str, ts: datetime) -> None:
        """Move a channel's newest-state time forward (never back)."""
        us = to_us(ts)
        self._db.write(
            "INSERT INTO alarm_sensor_state (device_id, channel, ts_us) VALUES (?, ?, ?)"
            " ON CONFLICT(device_id, channel) DO UPDATE SET ts_us = MAX(ts_us, excluded.ts_us)",
            (device_id, channel, us),
        )
        cache = self._channel_cache()
        key = (device_id, channel)
        if cache is not None and key in cache:
            known = cache[key]
            cache[key] = us if known is None else max(known, us)
