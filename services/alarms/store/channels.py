"""The newest state each sensor reported on each channel (fall, saturation, battery, seen).

The rules engine lets the newest reading win: a late, older one may count as a repeat but
never raises, resolves or moves a timer back, so it must know each channel's newest time.
"""

from __future__ import annotations

from datetime import datetime

from carehub.timefmt import from_us, to_us
from services.alarms.store.db import Repository

SCHEMA = """
CREATE TABLE IF NOT EXISTS alarm_sensor_state (
    device_id TEXT NOT NULL,
    channel TEXT NOT NULL,
    ts_us INTEGER NOT NULL,
    PRIMARY KEY (device_id, channel)
);
"""


class ChannelRepository(Repository):
    """The `alarm_sensor_state` table."""

    def channel_ts(self, device_id: str, channel: str) -> datetime | None:
        """Event time of the newest state a device reported on a channel (e.g. saturation)."""
        rows = self._db.rows(
            "SELECT ts_us FROM alarm_sensor_state WHERE device_id = ? AND channel = ?",
            (device_id, channel),
        )
        return from_us(rows[0][0]) if rows else None

    def advance_channel(self, device_id: str, channel: str, ts: datetime) -> None:
        """Move a channel's newest-state time forward (never back)."""
        self._db.write(
            "INSERT INTO alarm_sensor_state (device_id, channel, ts_us) VALUES (?, ?, ?)"
            " ON CONFLICT(device_id, channel) DO UPDATE SET ts_us = MAX(ts_us, excluded.ts_us)",
            (device_id, channel, to_us(ts)),
        )
