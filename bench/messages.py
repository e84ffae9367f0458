"""Native-protocol device messages (docs/devices.md) for the benchmarks: heartbeats and saturation
readings from many devices, each with its own rising `seq`, so none is a duplicate."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

from carehub import timefmt
from carehub.topics import SiteTopics


def rfc3339(when: datetime | None = None) -> str:
    """`2026-11-22T23:14:05.120Z`: now, as a device's firmware writes it."""
    return timefmt.rfc3339(when or datetime.now(UTC), "milliseconds")


def uplink_topic(prefix: str, site: str, device_id: str) -> str:
    """Where a device publishes its uplinks."""
    return SiteTopics(prefix, site).device_up(device_id)


class Stream:
    """Round-robin over devices; diaper devices alternate heartbeat and saturation (kept
    between 10 and 60 %, under the alarm threshold: background load raises no alarms)."""

    def __init__(
        self, prefix: str, site: str, devices: Sequence[tuple[str, str]], seq_start: int = 1
    ) -> None:
        self.devices = [(uplink_topic(prefix, site, d).encode(), kind) for d, kind in devices]
        self.seq = seq_start
        self._i = 0

    def take(self, n: int, ts: str) -> list[tuple[bytes, bytes]]:
        """The next n (topic, payload) pairs, stamped `ts`."""
        out = []
        count = len(self.devices)
        for _ in range(n):
            topic, kind = self.devices[self._i]
            seq = self.seq
            if kind == "diaper" and seq % 2:
                body = f'"type":"saturation","level":{10 + seq % 50}'
            else:
                body = f'"type":"heartbeat","battery":{60 + seq % 40},"rssi":-{50 + seq % 30}'
            out.append((topic, f'{{"v":1,"seq":{seq},"ts":"{ts}",{body}}}'.encode()))
            self._i += 1
            if self._i == count:
                self._i = 0
                self.seq += 1
        return out


def fall_payload(seq: int, confidence: float = 0.95) -> bytes:
    """A fall uplink stamped now."""
    return json.dumps(
        {"v": 1, "seq": seq, "ts": rfc3339(), "type": "fall", "confidence": confidence},
        separators=(",", ":"),
    ).encode()
