"""Clocks injected into everything time-dependent.

Rules, timers and the simulator never read the system time themselves: they take a `Clock`,
so tests can step through a night in microseconds and the simulator can run one at any speed.
All clocks answer timezone-aware UTC datetimes.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Something that tells the current time, in UTC."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    """The real wall clock."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        return datetime.now(UTC)


class FakeClock:
    """A clock that moves only when told to, for tests."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            msg = "FakeClock needs a timezone-aware start time"
            raise ValueError(msg)
        self._now = start.astimezone(UTC)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The current fake time."""
        with self._lock:
            return self._now

    def advance(self, delta: timedelta | float) -> datetime:
        """Move forward by `delta` (a timedelta or seconds) and answer the new time."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        if step < timedelta(0):
            msg = "time does not run backwards"
            raise ValueError(msg)
        with self._lock:
            self._now += step
            return self._now

    def set(self, when: datetime) -> None:
        """Jump to `when` (not earlier than now)."""
        when = when.astimezone(UTC)
        with self._lock:
            if when < self._now:
                msg = "time does not run backwards"
                raise ValueError(msg)
            self._now = when


class ScaledClock:
    """Simulated time running `speed` times faster than real time from a chosen start.

    The demo and `carehub sim --speed X` share one of these so the hub and the simulated
    devices agree on what time it is in the care home.
    """

    def __init__(self, start: datetime, speed: float) -> None:
        if speed <= 0:
            msg = f"speed must be positive, got {speed}"
            raise ValueError(msg)
        self._start = start.astimezone(UTC)
        self._speed = speed
        self._t0 = time.monotonic()

    @property
    def speed(self) -> float:
        """How many simulated seconds pass per real second."""
        return self._speed

    def now(self) -> datetime:
        """The simulated current time."""
        return self._start + timedelta(seconds=(time.monotonic() - self._t0) * self._speed)

    def real_seconds_until(self, when: datetime) -> float:
        """Real seconds to wait until the simulated clock reaches `when` (0 if already past)."""
        return max(0.0, (when - self.now()).total_seconds() / self._speed)
