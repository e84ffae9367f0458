"""A night's worth of uplinks from every device of the test site, in each one's own format.

Native `carehub-v1` (falls, diapers, dispensers), the `mmwave-radar` ceiling radar, the
`wetsense-s2` state-reporting diaper sensor, a Zigbee2MQTT water-leak sensor on its vendor
topic, a native bed sensor and a Zigbee2MQTT bed mat, and the `medcloud-webhook` dispenser's
cloud (delivered by HTTP). Enough happens for every rule to fire: a fall, saturated diapers, a
missed dose, a low battery, a resident out of bed.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

TZ = ZoneInfo("Europe/Copenhagen")
SITE = "testhjem"


@dataclass(frozen=True)
class Uplink:
    """One device message: where it goes, what it says, when it happened."""

    topic: str
    payload: bytes
    at: datetime
    webhook: str | None = None
    """The vendor of a webhook body (POST /api/webhooks/{vendor}); None for MQTT."""


def _z(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def local(night: date, hh: int, mm: int = 0) -> datetime:
    """A local wall time of the night (evening of `night`, or the next morning), in UTC."""
    day = night if hh >= 12 else night + timedelta(days=1)
    return datetime.combine(day, time(hh, mm), tzinfo=TZ).astimezone(UTC)


class Counters:
    """Per-device sequence numbers and vendor event ids that keep counting across nights."""

    def __init__(self) -> None:
        self._seq: dict[str, Iterator[int]] = {}

    def next(self, device: str) -> int:
        """The device's next seq."""
        return next(self._seq.setdefault(device, itertools.count(1)))


def night_uplinks(night: date, counters: Counters, step_s: int = 120) -> list[Uplink]:
    """Every device's messages from 21:50 to 07:10 local, every `step_s`, in time order."""
    out: list[Uplink] = []
    start, end = local(night, 21, 50), local(night, 7, 10)

    def native(device: str, at: datetime, type_: str, **fields: object) -> None:
        body = {"v": 1, "seq": counters.next(device), "ts": _z(at), "type": type_, **fields}
        out.append(Uplink(f"carehub/{SITE}/devices/{device}/up", json.dumps(body).encode(), at))

    def radar(at: datetime, fall_state: int) -> None:
        body = {"presence": 1, "movement": 1, "fall_state": fall_state}
        out.append(Uplink(f"carehub/{SITE}/devices/fall-a2/up", json.dumps(body).encode(), at))

    def wetsense(at: datetime, state: str) -> None:
        body = {
            "dev": "diaper-r002",
            "cnt": counters.next("diaper-r002") % 65536,
            "time": int(at.timestamp()),
            "state": state,
            "in_state_s": 60,
            "bat_mv": 2900,
        }
        out.append(Uplink(f"carehub/{SITE}/devices/diaper-r002/up", json.dumps(body).encode(), at))

    def zigbee(at: datetime, wet: bool) -> None:
        body = {"water_leak": wet, "battery": 88, "battery_low": False, "linkquality": 70}
        out.append(Uplink("zigbee2mqtt/bed-b1-window", json.dumps(body).encode(), at))

    def bed_mat(at: datetime, occupied: bool) -> None:
        body = {"occupancy": occupied, "battery": 85, "linkquality": 90}
        out.append(Uplink("zigbee2mqtt/bedmat-b1", json.dumps(body).encode(), at))

    def medcloud(at: datetime, event: str, **fields: object) -> None:
        body = {
            "event_id": f"mc-{night.isoformat()}-{counters.next('med-r004')}",
            "device": "med-r004",
            "occurred_at": _z(at),
            "event": event,
            **fields,
        }
        out.append(
            Uplink(f"carehub/{SITE}/webhooks/medcloud", json.dumps(body).encode(), at, "medcloud")
        )

    fall_at, cleared_at = local(night, 23, 10), local(night, 23, 14)
    radar_fall, radar_up = local(night, 1, 0), local(night, 1, 4)
    change_at = local(night, 2, 30)
    wet_at, dry_at = local(night, 4, 0), local(night, 4, 30)
    battery_low_at = local(night, 5, 0)
    in_bed, up_at, back_at, rise = (
        local(night, 22, 5),
        local(night, 3, 0),
        local(night, 3, 20),
        local(night, 6, 50),
    )
    at = start
    while at <= end:
        native("fall-a1", at, "heartbeat", battery=80, rssi=-61)
        native("fall-b1", at, "heartbeat", battery=12 if at >= battery_low_at else 70, rssi=-70)
        native("med-r001", at, "heartbeat", battery=90, rssi=-55)
        native("med-r00x", at, "heartbeat", battery=91, rssi=-58)
        hours = (at - start).total_seconds() / 3600
        level = 0.0 if at >= change_at + timedelta(minutes=2) else min(80.0, round(hours * 18))
        native("diaper-r001", at, "saturation", level=level)
        radar(at, 1 if radar_fall <= at < radar_up else 0)
        state = "ok" if hours < 3 else "some_urine" if hours < 5 else "consider_change"
        wetsense(at, state)
        zigbee(at, wet_at <= at < dry_at)
        medcloud(at, "HEARTBEAT", battery=77)
        native("bed-r001", at, "heartbeat", battery=95, rssi=-60)
        bed_mat(at, in_bed <= at < rise)
        at += timedelta(seconds=step_s)
    native("fall-a1", fall_at, "fall", confidence=0.93)
    native("fall-a1", cleared_at, "fall_cleared")
    native("bed-r001", in_bed, "in_bed")
    native("bed-r001", up_at, "out_of_bed")  # 20 min out of bed at night: bed_exit
    native("bed-r001", back_at, "in_bed")
    native("bed-r001", rise, "out_of_bed")
    native("diaper-r001", change_at, "detached")
    native("diaper-r001", change_at + timedelta(minutes=1), "attached")
    dose = f"night-{night.isoformat()}"
    due = local(night, 22, 0)
    native("med-r001", due, "dose_due", dose_id=dose, due=_z(due))
    native("med-r001", due + timedelta(minutes=12), "taken", dose_id=dose)
    native("med-r00x", due, "dose_due", dose_id=dose, due=_z(due))
    native("med-r00x", due + timedelta(minutes=31), "missed", dose_id=dose)
    medcloud(due, "DOSE_DUE", dose={"id": dose, "scheduled": _z(due)})
    medcloud(due + timedelta(minutes=9), "TAKEN", dose={"id": dose})
    out.sort(key=lambda u: u.at)
    return out
