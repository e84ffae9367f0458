"""Device clocks far from the hub's: counted per device and logged, rate-limited.

The hub's timers run on `received_at` (docs/alarms.md), so a wrong device clock no longer
drives alarms; it still makes the device's reported times wrong, which staff should hear of
(docs/devices.md, "Device clocks").
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from gateway.metrics import Counters

_LOGGER = logging.getLogger(__name__)

SKEW_LIMIT = timedelta(minutes=5)
"""A device `ts` further than this from `received_at` is a clock to look at."""
LOG_EVERY = timedelta(hours=1)
"""At most one warning per device this often (the counter counts every message)."""


class ClockSkew:
    """Counts and logs device clocks off by more than `SKEW_LIMIT`; callers hold a lock."""

    def __init__(self, counters: Counters) -> None:
        self.counters = counters
        self._logged: dict[str, datetime] = {}

    def check(self, device_id: str, ts: datetime, received_at: datetime) -> bool:
        """Whether `ts` is off by more than the limit (counted, and logged now and then)."""
        skew = ts - received_at
        if abs(skew) <= SKEW_LIMIT:
            return False
        self.counters.inc("carehub_gateway_clock_skew_total", device=device_id)
        last = self._logged.get(device_id)
        if last is None or received_at - last >= LOG_EVERY or received_at < last:
            self._logged[device_id] = received_at
            _LOGGER.warning(
                "device %s clock is %.0f s %s the hub's (reports keep its ts; timers do not)",
                device_id,
                abs(skew.total_seconds()),
                "ahead of" if skew > timedelta(0) else "behind",
            )
        return True
