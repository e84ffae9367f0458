"""The visit log (docs/freed-hours.md, "Measured night work"): each time a staff member was in a
resident's room, from round sheets, a nurse-call system's export or a presence device.

A visit names a room (every resident of it shares the visit) or one resident. Times are UTC.
The kernel holds the record and the pairing of a presence device's `staff_in` / `staff_out`
events, so the importer, the reports and the simulator read one shape.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from carehub.timefmt import to_us

VisitReason = Literal["round", "call", "alarm", "care", "other"]
VISIT_REASONS: tuple[VisitReason, ...] = ("round", "call", "alarm", "care", "other")
MAX_VISIT = timedelta(hours=12)
"""A longer visit is a typing error (docs/cli.md): nobody stays half a day in a room at night."""
IMPORT_SOURCE = "import"
"""`source` of visits from `carehub import`; a presence device's are `device:{id}`."""


@dataclass(frozen=True, slots=True)
class Visit:
    """One stay of a staff member in a room (or with one resident), [entered_at, left_at)."""

    site: str
    entered_at: datetime
    left_at: datetime
    room: str | None = None
    resident_id: str | None = None
    staff: str | None = None
    reason: VisitReason | None = None
    source: str = IMPORT_SOURCE

    def natural_key(self) -> tuple[str, str, str, int, int, str]:
        """What makes two records the same visit: importing a file twice adds nothing."""
        return (
            self.site,
            self.room or "",
            self.resident_id or "",
            to_us(self.entered_at),
            to_us(self.left_at),
            self.staff or "",
        )


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    """A presence device's `staff_in` or `staff_out` (docs/devices.md), as the pairing reads it."""

    device_id: str
    ts: datetime
    type: Literal["staff_in", "staff_out"]
    staff: str | None = None


@dataclass(frozen=True, slots=True)
class PresenceVisit:
    """A visit made from one device's pair of events; `closed` False when it closed after cap."""

    device_id: str
    entered_at: datetime
    left_at: datetime
    staff: str | None
    closed: bool


def pair_presence(events: Iterable[PresenceEvent], cap: timedelta) -> list[PresenceVisit]:
    """One visit per `staff_in` and the `staff_out` after it (docs/devices.md).

    A `staff_in` without a `staff_out` within `cap` (the next event is another `staff_in`, or
    none comes in time) closes `cap` after it; a `staff_out` with no open visit is ignored.
    Each device is paired on its own, in time order.
    """
    by_device: dict[str, list[PresenceEvent]] = {}
    for ev in events:
        by_device.setdefault(ev.device_id, []).append(ev)
    visits: list[PresenceVisit] = []
    for device_id in sorted(by_device):
        open_: PresenceEvent | None = None
        for ev in sorted(by_device[device_id], key=lambda e: (e.ts, e.type == "staff_in")):
            if open_ is not None and (ev.type == "staff_in" or ev.ts - open_.ts > cap):
                visits.append(
                    PresenceVisit(device_id, open_.ts, open_.ts + cap, open_.staff, closed=False)
                )
                open_ = None
            if ev.type == "staff_in":
                open_ = ev
            elif open_ is not None:
                visits.append(
                    PresenceVisit(device_id, open_.ts, ev.ts, open_.staff or ev.staff, closed=True)
                )
                open_ = None
        if open_ is not None:
            visits.append(
                PresenceVisit(device_id, open_.ts, open_.ts + cap, open_.staff, closed=False)
            )
    return visits
