"""What each device model puts on the wire (docs/devices.md), from one device-neutral message.

The world (`firmware_sim.world`) decides what happens — a fall, a saturation reading, a dose;
an encoder turns it into the bytes and topic of the device's model, with that firmware's
sequence counter, clock and battery units. Adding a vendor is one function here.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from carehub.timefmt import rfc3339

Channel = Literal["mqtt", "webhook"]

NATIVE_SEQ_MODULUS = 2**31
WETSENSE_SEQ_MODULUS = 65536
WATER_LEAK_LEVEL = 70.0
"""A water-leak sensor in the bed says 'wet' from about this saturation."""


@dataclass(slots=True)
class DeviceState:
    """One simulated device: its binding, firmware counters, battery, radio and clock."""

    device_id: str
    kind: str
    model: str
    topic_up: str
    heartbeat_s: float
    vendor_topic: str | None = None
    status_topic: str | None = None
    status_words: tuple[bytes, bytes] = (b"online", b"offline")
    seq: int = 0
    battery: float = 100.0
    drain_per_day: float = 1.0
    rssi: float = -65.0
    clock_offset_s: float = 0.0
    drift_ppm: float = 0.0
    epoch: float = 0.0
    saturation: float = 0.0
    worn: bool = True
    state_since: float = 0.0
    last_state: str = "ok"
    falling: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def device_time(self, t: float) -> float:
        """The device's own clock at true time `t`: an offset plus the drift since its daily
        time sync (firmware syncs once a day, so a 15 ppm crystal strays ~1 s at most)."""
        return t + self.clock_offset_s + ((t - self.epoch) % 86_400) * self.drift_ppm * 1e-6

    def next_seq(self, modulus: int = NATIVE_SEQ_MODULUS) -> int:
        """The next value of the firmware's message counter, wrapping at `modulus`."""
        self.seq = (self.seq + 1) % modulus
        return self.seq


@dataclass(frozen=True, slots=True)
class Wire:
    """One message as the device sends it."""

    topic: str
    payload: bytes
    channel: Channel = "mqtt"


def firmware_time(t: float) -> str:
    """Unix seconds → RFC 3339 UTC with milliseconds, as the firmware formats it."""
    return rfc3339(datetime.fromtimestamp(t, UTC), "milliseconds")


def _json(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def native(dev: DeviceState, t: float, etype: str, fields: dict[str, Any]) -> list[Wire]:
    """carehub-v1: every kind, docs/devices.md."""
    body = {"v": 1, "seq": dev.next_seq(), "ts": firmware_time(dev.device_time(t)), "type": etype}
    body.update(fields)
    return [Wire(dev.topic_up, _json(body))]


WETSENSE_LEVELS = {"ok": 0.0, "some_urine": 40.0, "consider_change": 80.0}
"""What the gateway reads from each wetsense state (docs/devices.md)."""


def seen_level(dev: DeviceState, etype: str) -> float | None:
    """The saturation the gateway reads from the message this diaper device just sent, if it
    carries one (the simulated staff react to what the hub sees, not to the true level)."""
    if dev.model == "wetsense-s2":
        return WETSENSE_LEVELS.get(dev.last_state)
    if dev.model == "zigbee-water-leak":
        return 100.0 if dev.extra.get("wet") else 0.0
    if etype == "saturation":
        return float(dev.extra.get("reported", dev.saturation))
    return None


def _wetsense_state(dev: DeviceState, level: float) -> str:
    """The state a wetsense sensor reports for a saturation level."""
    if not dev.worn:
        return "off"
    if level < 25:
        return "ok"
    return "some_urine" if level < 65 else "consider_change"


def wetsense(dev: DeviceState, t: float, etype: str, fields: dict[str, Any]) -> list[Wire]:
    """wetsense-s2: states, not percent; a report every minute and on each state change."""
    if etype == "fault":
        state = "error"
    elif etype == "detached":
        state = "off"
    else:
        state = _wetsense_state(dev, float(fields.get("level", dev.saturation)))
    if not dev.state_since:
        dev.state_since = t
    if state != dev.last_state:
        dev.last_state, dev.state_since = state, t
    elif etype not in ("heartbeat",):
        return []  # the state did not change: this firmware only reports it on its minute tick
    body = {
        "dev": dev.device_id,
        "cnt": dev.next_seq(WETSENSE_SEQ_MODULUS),
        "time": int(dev.device_time(t)),
        "state": state,
        "in_state_s": int(t - dev.state_since),
        "bat_mv": int(2400 + 6 * dev.battery),
    }
    return [Wire(dev.topic_up, _json(body))]


def water_leak(dev: DeviceState, t: float, etype: str, fields: dict[str, Any]) -> list[Wire]:
    """zigbee-water-leak via Zigbee2MQTT: wet or dry, on change and every minute."""
    del t
    if etype not in ("heartbeat", "saturation"):
        return []  # no such thing as 'detached' or a dose for a leak sensor
    level = float(fields.get("level", dev.saturation))
    wet = dev.worn and level >= WATER_LEAK_LEVEL
    if etype == "saturation" and wet == dev.extra.get("wet"):
        return []
    dev.extra["wet"] = wet
    body = {
        "water_leak": wet,
        "battery": int(dev.battery),
        "battery_low": dev.battery < 20,
        "linkquality": max(0, min(255, int(255 + dev.rssi * 2))),
        "voltage": int(2400 + 6 * dev.battery),
    }
    return [Wire(dev.vendor_topic or dev.topic_up, _json(body))]


def bed_mat(dev: DeviceState, t: float, etype: str, fields: dict[str, Any]) -> list[Wire]:
    """zigbee-bed-mat via Zigbee2MQTT: the whole state, on change and every minute."""
    del t, fields
    if etype in ("in_bed", "out_of_bed"):
        dev.extra["occupancy"] = etype == "in_bed"
    elif etype != "heartbeat":
        return []
    body = {
        "occupancy": bool(dev.extra.get("occupancy", False)),
        "battery": int(dev.battery),
        "linkquality": max(0, min(255, int(255 + dev.rssi * 2))),
    }
    return [Wire(dev.vendor_topic or dev.topic_up, _json(body))]


def radar(dev: DeviceState, t: float, etype: str, fields: dict[str, Any]) -> list[Wire]:
    """mmwave-radar: presence, movement and a fall flag; mains powered, no counter, no clock."""
    del t, fields
    if etype == "fall":
        dev.falling = True
    elif etype == "fall_cleared":
        dev.falling = False
    elif etype != "heartbeat":
        return []
    body = {
        "presence": 1 if dev.falling else int(dev.extra.get("presence", 1)),
        "movement": 0 if dev.falling else int(dev.extra.get("movement", 1)),
        "fall_state": 1 if dev.falling else 0,
    }
    return [Wire(dev.topic_up, _json(body))]


MEDCLOUD_EVENTS = {
    "dose_due": "DOSE_DUE",
    "dispensed": "DISPENSED",
    "taken": "TAKEN",
    "missed": "MISSED",
    "fault": "FAULT",
    "heartbeat": "HEARTBEAT",
}


def medcloud(dev: DeviceState, t: float, etype: str, fields: dict[str, Any]) -> list[Wire]:
    """medcloud-webhook: the vendor cloud POSTs each event once or more, with its own id."""
    if etype not in MEDCLOUD_EVENTS:
        return []
    seq = dev.next_seq()
    body: dict[str, Any] = {
        "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"medcloud/{dev.device_id}/{seq}")),
        "device": dev.device_id,
        "occurred_at": datetime.fromtimestamp(int(dev.device_time(t)), UTC)
        .isoformat()
        .replace("+00:00", "Z"),
        "event": MEDCLOUD_EVENTS[etype],
    }
    if etype == "dose_due":
        body["dose"] = {"id": fields["dose_id"], "scheduled": fields["due"]}
    elif etype in ("dispensed", "taken", "missed"):
        body["dose"] = {"id": fields["dose_id"]}
    elif etype == "fault":
        body["fault_code"] = fields["code"]
    else:
        body["battery"] = int(dev.battery)
    return [Wire(dev.topic_up, _json(body), "webhook")]


CALLPOINT_SEQ_MODULUS = 65536
CALLPOINT_EVENTS = {"staff_in": "PRESENCE_ON", "staff_out": "PRESENCE_OFF", "heartbeat": "ALIVE"}


def callpoint(dev: DeviceState, t: float, etype: str, fields: dict[str, Any]) -> list[Wire]:
    """callpoint-presence: a nurse-call presence button; presence on/off and a periodic ALIVE."""
    if etype not in CALLPOINT_EVENTS:
        return []
    body: dict[str, Any] = {
        "unit": dev.device_id,
        "n": dev.next_seq(CALLPOINT_SEQ_MODULUS),
        "t": int(dev.device_time(t)),
        "ev": CALLPOINT_EVENTS[etype],
    }
    if fields.get("staff"):
        body["tag"] = fields["staff"]
    if etype == "heartbeat":
        body["batt"] = int(dev.battery)
    return [Wire(dev.topic_up, _json(body))]


Encoder = Callable[[DeviceState, float, str, dict[str, Any]], list[Wire]]

ENCODERS: dict[str, Encoder] = {
    "carehub-v1": native,
    "wetsense-s2": wetsense,
    "zigbee-water-leak": water_leak,
    "zigbee-bed-mat": bed_mat,
    "mmwave-radar": radar,
    "medcloud-webhook": medcloud,
    "callpoint-presence": callpoint,
}
"""Model name (as in the site file) → encoder."""


def encode(dev: DeviceState, t: float, etype: str, fields: dict[str, Any]) -> list[Wire]:
    """The wire messages of one device-neutral message, in the device's own format."""
    encoder = ENCODERS.get(dev.model)
    if encoder is None:
        msg = f"the simulator has no firmware for model {dev.model!r} (device {dev.device_id})"
        raise ValueError(msg)
    return encoder(dev, t, etype, fields)
