"""The store contract the pipeline writes to and the services read from.

Two backends keep it: SQLite (the embedded default, one file shared with the rules engine and
the web app) and InfluxDB 2 (for Grafana). Writes are buffered until `flush()`; a message is
acknowledged to the broker only after the flush that made its event durable returned.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from carehub.events import CanonicalEvent, EventType
from carehub.site import DeviceKind
from carehub.timefmt import rfc3339

DEAD_LETTER_PAYLOAD_BYTES = 1024
"""Dead letters keep the first KiB of a payload: enough to see what was wrong."""

Seconds = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A refused message, kept so a person can see what a device or vendor sent and why."""

    site: str
    topic: str
    payload: str
    encoding: Literal["utf-8", "base64"]
    reason: str
    detail: str
    received_at: datetime
    device_id: str | None = None
    truncated: bool = False

    @classmethod
    def of(
        cls,
        site: str,
        topic: str,
        payload: bytes,
        reason: str,
        detail: str,
        received_at: datetime,
        device_id: str | None = None,
    ) -> DeadLetter:
        """Truncate the payload and base64 it when it is not text."""
        cut = payload[:DEAD_LETTER_PAYLOAD_BYTES]
        try:
            text, encoding = cut.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            text, encoding = base64.b64encode(cut).decode("ascii"), "base64"
        return cls(
            site=site,
            topic=topic,
            payload=text,
            encoding=encoding,  # type: ignore[arg-type]
            reason=reason,
            detail=detail,
            received_at=received_at,
            device_id=device_id,
            truncated=len(payload) > DEAD_LETTER_PAYLOAD_BYTES,
        )

    def to_json(self) -> dict[str, Any]:
        """The dead-letter payload (docs/mqtt.md), plus why in detail and how the payload is
        encoded."""
        return {
            "topic": self.topic,
            "payload": self.payload,
            "reason": self.reason,
            "received_at": rfc3339(self.received_at, "auto"),
            "detail": self.detail,
            "encoding": self.encoding,
            "truncated": self.truncated,
            "device_id": self.device_id,
        }


StatusSource = Literal["message", "status", "availability", "silence"]


@dataclass(frozen=True, slots=True)
class DeviceState:
    """What the hub knows of a device right now (for /api/devices and supervision)."""

    device_id: str
    site: str
    kind: DeviceKind
    last_seen: datetime | None = None
    battery: float | None = None
    rssi: int | None = None
    online: bool | None = None
    status_source: StatusSource | None = None
    status_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class SeqState:
    """Per-device sequence bookkeeping, persisted so dedupe and gaps survive a restart."""

    device_id: str
    last_seq: int | None = None
    gaps: int = 0
    """Messages lost for good (seq jumps), minus late arrivals that filled a gap."""
    resets: int = 0
    """Times the device's counter went back (reboot without persistent seq)."""
    last_digest: str | None = None
    last_received_at: datetime | None = None
    codec_state: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DedupeHit:
    """A dedupe key already taken: by which event and which payload."""

    event_id: str
    digest: str


class EventStore(Protocol):
    """Durable home of events, dedupe keys, dead letters, device state and seq counters."""

    def add_event(self, event: CanonicalEvent, key: str, digest: str) -> None:
        """Buffer an event with its dedupe key `(device_id, key)` and payload digest."""
        ...

    def lookup(self, device_id: str, key: str) -> DedupeHit | None:
        """The event that took a dedupe key, including ones not yet flushed."""
        ...

    def add_dead_letter(self, letter: DeadLetter) -> None:
        """Buffer a dead letter."""
        ...

    def put_device_state(self, state: DeviceState) -> None:
        """Buffer the device's latest state (replaces the previous)."""
        ...

    def put_seq_state(self, state: SeqState) -> None:
        """Buffer the device's seq bookkeeping (replaces the previous)."""
        ...

    def flush(self) -> None:
        """Make everything buffered durable; raises StoreUnavailableError, losing nothing."""
        ...

    def close(self) -> None:
        """Flush and release resources."""
        ...

    def query_events(
        self,
        site: str,
        start: datetime,
        end: datetime,
        kinds: Sequence[DeviceKind | str] | None = None,
        types: Sequence[EventType | str] | None = None,
        device_ids: Sequence[str] | None = None,
    ) -> list[CanonicalEvent]:
        """Flushed events with device time in [start, end), oldest first."""
        ...

    def device_times(self, site: str, start: datetime, end: datetime) -> dict[str, Seconds]:
        """device id → sorted Unix seconds of every event in [start, end) (coverage,
        docs/freed-hours.md)."""
        ...

    def device_states(self) -> list[DeviceState]:
        """Every device's latest flushed state."""
        ...

    def seq_states(self) -> dict[str, SeqState]:
        """Every device's flushed seq bookkeeping."""
        ...

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The newest dead letters first."""
        ...

    def counters(self) -> dict[str, float]:
        """Persistent counters for /metrics: `name{label="value"}` → value."""
        ...
