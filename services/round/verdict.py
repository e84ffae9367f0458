"""The round's verdict on one resident, with its reasons in words (docs/round.md).

`visit`: the sensors cannot vouch for the resident (a bound device offline, no sensor that
sees presence or falls, an active alarm). `look`: something is close to needing a person (a
diaper at `diaper_look` %, out of bed longer than `bed_look_fraction` of `bed_exit`'s minutes,
a dose offered and not taken). Otherwise `ok`. A pure function, so each threshold is tested
without a hub.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from carehub.site import RoundSettings

Verdict = Literal["ok", "look", "visit"]
Locale = Literal["da", "en"]

KIND_WORDS: dict[str, dict[str, str]] = {
    "fall": {"da": "Faldsensor", "en": "Fall sensor"},
    "diaper": {"da": "Blesensor", "en": "Diaper sensor"},
    "medication": {"da": "Medicindispenser", "en": "Medication dispenser"},
    "bed": {"da": "Sengesensor", "en": "Bed sensor"},
}

REASON_TEXTS: dict[str, dict[str, str]] = {
    "offline": {"da": "{sensor} svarer ikke", "en": "{sensor} is offline"},
    "no_sensor": {
        "da": "Ingen sensor ser tilstedeværelse eller fald",
        "en": "No sensor sees presence or falls",
    },
    "alarm": {"da": "{n} aktiv(e) alarm(er)", "en": "{n} active alarm(s)"},
    "diaper": {"da": "Ble {level:.0f} %", "en": "Diaper {level:.0f} %"},
    "out_of_bed": {"da": "Ude af sengen i {minutes:.0f} min", "en": "Out of bed {minutes:.0f} min"},
    "dose_due": {"da": "Medicin ikke taget endnu", "en": "Dose not taken yet"},
    "all_online": {"da": "Alle sensorer svarer", "en": "All sensors online"},
    "in_bed": {"da": "I sengen", "en": "In bed"},
    "still": {"da": "Ligger stille", "en": "Lying still"},
}


@dataclass(frozen=True, slots=True)
class Sensor:
    """A device bound to the resident, and whether it is heard from."""

    device_id: str
    kind: str
    online: bool


@dataclass(frozen=True, slots=True)
class Seen:
    """What the sensors say about one resident now (the round state)."""

    sensors: list[Sensor] = field(default_factory=list)
    presence: Literal["in_room", "absent"] | None = None
    movement: Literal["still", "moving"] | None = None
    in_bed: bool | None = None
    out_of_bed_since: datetime | None = None
    diaper_level: float | None = None
    dose: Literal["taken", "due", "missed"] | None = None
    active_alarms: int = 0


def _say(code: str, locale: Locale, **args: object) -> str:
    return REASON_TEXTS[code][locale].format(**args)


def sensor_name(sensor: Sensor, locale: Locale) -> str:
    """'Fall sensor fall-a1': the kind in words and the device, so staff know which."""
    return f"{KIND_WORDS.get(sensor.kind, {}).get(locale, sensor.kind)} {sensor.device_id}"


def verdict(
    seen: Seen,
    now: datetime,
    settings: RoundSettings,
    bed_exit_minutes: float,
    locale: Locale = "en",
) -> tuple[Verdict, list[str]]:
    """The verdict and why, most urgent reasons first."""
    visit: list[str] = []
    for s in seen.sensors:
        if not s.online:
            visit.append(_say("offline", locale, sensor=sensor_name(s, locale)))
    if not any(s.kind in ("fall", "bed") for s in seen.sensors):
        visit.append(_say("no_sensor", locale))
    if seen.active_alarms:
        visit.append(_say("alarm", locale, n=seen.active_alarms))
    if visit:
        return "visit", visit
    look: list[str] = []
    if seen.diaper_level is not None and seen.diaper_level >= settings.diaper_look:
        look.append(_say("diaper", locale, level=seen.diaper_level))
    if seen.in_bed is False and seen.out_of_bed_since is not None:
        minutes = (now - seen.out_of_bed_since).total_seconds() / 60
        if minutes >= bed_exit_minutes * settings.bed_look_fraction:
            look.append(_say("out_of_bed", locale, minutes=minutes))
    if settings.dose_look and seen.dose == "due":
        look.append(_say("dose_due", locale))
    if look:
        return "look", look
    ok = [_say("all_online", locale)]
    if seen.in_bed:
        ok.append(_say("in_bed", locale))
    if seen.movement == "still":
        ok.append(_say("still", locale))
    return "ok", ok
