"""Injectable clocks."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from carehub.clock import FakeClock, ScaledClock, SystemClock

T0 = datetime(2026, 11, 22, 21, 0, tzinfo=UTC)


def test_fake_clock_moves_only_forward_when_told() -> None:
    c = FakeClock(T0)
    assert c.now() == T0
    assert c.advance(90) == T0 + timedelta(seconds=90)
    with pytest.raises(ValueError, match="backwards"):
        c.set(T0)
    with pytest.raises(ValueError, match="timezone-aware"):
        FakeClock(datetime(2026, 1, 1))


def test_scaled_clock_runs_faster_than_real_time() -> None:
    c = ScaledClock(T0, speed=3600)
    time.sleep(0.05)
    elapsed = (c.now() - T0).total_seconds()
    assert 150 <= elapsed <= 3600  # 0.05 s real at 3600x = 180 s simulated (allow scheduling slack)
    assert c.real_seconds_until(T0 + timedelta(hours=1)) < 1.0


def test_system_clock_is_utc() -> None:
    assert SystemClock().now().tzinfo is UTC
