"""A rate budget per device, so one flooding device cannot starve the others.

Each device gets a token bucket (docs/devices.md, "Rate budget") sized from what its kind and
its heartbeat make it send: a heartbeat every `heartbeat_seconds` plus its kind's own events
(a fall sensor repeats a fall every 30 s while someone is on the floor), times a generous
`RATE_MULTIPLE`, with room for a burst of `BURST_S` seconds of that or `MIN_BURST` messages,
whichever is more (a device flushing what it queued while offline). Time is the message's
`received_at`, i.e. the gateway's injectable clock, never the device's.

The bucket only says whether a message is over budget. What then happens is the gateway's
(gateway/service.py): a routine message (heartbeat, or one that does not even decode) is
dead-lettered `rate_limited` before it costs a store write, dedupe or publish; an
alarm-worthy one (a fall, a fault, a reading) always goes on. The first message over budget
starts a flooding episode, which ends once the bucket is full again; the gateway stores one
`fault` event (code `rate_limited`) per episode, which the rules engine's `device_fault` rule
turns into one technical alarm naming the device.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

from carehub.events import EventType
from carehub.site import Binding, DeviceKind

RATE_MULTIPLE = 20.0
"""Allowed sustained rate, as a multiple of what the device is expected to send."""
BURST_S = 600.0
"""The bucket holds this many seconds of the allowed rate ..."""
MIN_BURST = 100.0
"""... and at least this many messages."""
KIND_EVENTS_PER_S: dict[DeviceKind, float] = {
    DeviceKind.FALL: 1 / 30,  # a fall repeated every 30 s until help comes (docs/devices.md)
    DeviceKind.DIAPER: 1 / 60,  # a state report every 60 s besides the heartbeat
    DeviceKind.MEDICATION: 1 / 60,  # dose_due, dispensed, taken: a few per round
    DeviceKind.BED: 1 / 60,  # in and out of bed: a few per night
    DeviceKind.PRESENCE: 1 / 60,  # staff in and out: a few per night
}
"""Messages per second a device of each kind sends besides its heartbeats, at most."""
ROUTINE: frozenset[EventType] = frozenset({EventType.HEARTBEAT})
"""Event types a message over budget may be dropped for; anything else always passes."""


@dataclass(slots=True)
class _Bucket:
    rate: float
    capacity: float
    tokens: float
    at: datetime
    flooding: bool = False


class RateBudget:
    """Token buckets per device; thread-safe."""

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    @staticmethod
    def allowance(binding: Binding) -> tuple[float, float]:
        """(messages per second, burst) a device may send."""
        expected = 1 / binding.heartbeat_seconds + KIND_EVENTS_PER_S.get(binding.kind, 1 / 60)
        rate = RATE_MULTIPLE * expected
        return rate, max(MIN_BURST, rate * BURST_S)

    def take(self, binding: Binding, at: datetime) -> tuple[bool, bool]:
        """Spend one message of the device's budget at `at`. Answers (within budget, whether
        this message starts a flooding episode)."""
        with self._lock:
            bucket = self._buckets.get(binding.device_id)
            if bucket is None:
                rate, capacity = self.allowance(binding)
                bucket = _Bucket(rate, capacity, capacity, at)
                self._buckets[binding.device_id] = bucket
            elapsed = max(0.0, (at - bucket.at).total_seconds())
            bucket.tokens = min(bucket.capacity, bucket.tokens + elapsed * bucket.rate)
            bucket.at = max(bucket.at, at)
            if bucket.flooding and bucket.tokens >= bucket.capacity:
                bucket.flooding = False  # calm for a whole burst's worth: the episode is over
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return True, False
            started = not bucket.flooding
            bucket.flooding = True
            return False, started

    def flooding(self) -> list[str]:
        """Devices in a flooding episode now."""
        with self._lock:
            return sorted(d for d, b in self._buckets.items() if b.flooding)
