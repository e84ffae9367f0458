"""The site file's schema (docs/site-file.md): one care home's wards, rooms, residents and devices.

A care home's IT person edits the site file by hand, so every mistake must come back as a
message that names the line, the field and what is allowed. Unknown keys are errors: a typo
must never silently fall back to a default. Checks that span entries live in `loader`.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SLUG = r"^[a-z0-9][a-z0-9-]*$"
Slug = Annotated[str, Field(pattern=SLUG, max_length=64)]
"""Ids that appear in MQTT topics and URLs: lower-case letters, digits and '-'."""


class Strict(BaseModel):
    """Base of every site-file model: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceKind(StrEnum):
    """What a device senses."""

    FALL = "fall"
    DIAPER = "diaper"
    MEDICATION = "medication"
    BED = "bed"
    PRESENCE = "presence"
    """Staff in a resident's room (a nurse-call presence button, a door sensor): it measures
    night work (docs/freed-hours.md, "Measured night work"), not the resident."""


class Priority(StrEnum):
    """Alarm priority; decides escalation time and order on the staff board."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


# --- the freed-hours parameters (docs/freed-hours.md) --------------------------------------


class ResponseMinutes(Strict):
    """Minutes assumed for an alarm of each kind when its response was not measured (`d_k`)."""

    fall: float | None = Field(None, ge=0, description="Fall alarm [15].")
    diaper: float | None = Field(None, ge=0, description="Diaper alarm [10].")
    medication: float | None = Field(None, ge=0, description="Medication alarm [3].")
    technical: float | None = Field(None, ge=0, description="Technical alarm [5].")


class Benefit(Strict):
    """Parameters (docs/freed-hours.md) as written in the site file; None means 'not set here'."""

    checks_per_night: float | None = Field(None, ge=0, description="C_b [2].")
    check_minutes: float | None = Field(None, ge=0, description="m_c [4].")
    changes_per_night: float | None = Field(None, ge=0, description="D_b [1].")
    change_minutes: float | None = Field(None, ge=0, description="m_d [10].")
    medication_rounds_per_night: float | None = Field(None, ge=0, description="M_b [1].")
    medication_minutes: float | None = Field(None, ge=0, description="m_m [3].")
    retained_checks_per_night: float | None = Field(None, ge=0, description="C_s [0].")
    visit_overhead_minutes: float | None = Field(None, ge=0, description="o [2].")
    response_minutes: ResponseMinutes | None = Field(None, description="d_k per alarm kind.")
    response_cap_minutes: float | None = Field(None, gt=0, description="cap [60].")
    hours_per_fte: float | None = Field(None, gt=0, description="H [1924].")


# --- rules (docs/alarms.md), declared here so site and residents can override them ---------


class FallRule(Strict):
    """A fall with enough confidence raises a high-priority alarm."""

    enabled: bool = True
    min_confidence: float = Field(0.6, ge=0, le=1, description="Lowest confidence that alarms.")
    priority: Priority = Priority.HIGH
    night_only: bool = Field(False, description="Only alarm inside the night window.")


class DiaperChangeRule(Strict):
    """A saturated diaper asks for a change; a fresh diaper resolves the alarm."""

    enabled: bool = True
    threshold: float = Field(70, ge=0, le=100, description="Saturation % that alarms.")
    reset_below: float = Field(10, ge=0, le=100, description="Saturation % of a fresh diaper.")
    priority: Priority = Priority.MEDIUM
    night_only: bool = False


class DoseMissedRule(Strict):
    """A dose not taken within its window, or reported missed by the dispenser."""

    enabled: bool = True
    window_minutes: float = Field(30, gt=0, description="Minutes from due to taken.")
    priority: Priority = Priority.MEDIUM
    night_only: bool = False


class DeviceFaultRule(Strict):
    """A dispenser fault (jam, empty, lid open) needs a person."""

    enabled: bool = True
    priority: Priority = Priority.MEDIUM
    night_only: bool = False


class SensorSilentRule(Strict):
    """A device that stops talking cannot protect anyone."""

    enabled: bool = True
    heartbeats_missed: float = Field(3, gt=0, description="Silence of N heartbeat intervals.")
    priority: Priority = Priority.MEDIUM
    fall_night_priority: Priority = Field(
        Priority.HIGH, description="Priority for a silent fall sensor inside the night window."
    )
    night_only: bool = False


class BatteryLowRule(Strict):
    """Change the battery before the device goes silent."""

    enabled: bool = True
    threshold: float = Field(15, ge=0, le=100, description="Battery % that alarms.")
    priority: Priority = Priority.LOW
    night_only: bool = False


class BedExitRule(Strict):
    """Out of bed at night for too long: someone at risk of falling may be wandering or down."""

    enabled: bool = True
    minutes: float = Field(
        10, ge=0, description="Minutes out of bed before it alarms; 0 = at once (fall risk)."
    )
    priority: Priority = Priority.MEDIUM
    night_only: bool = Field(True, description="Only getting up inside the night window.")


class Rules(Strict):
    """All alarm rules with their settings; any subset may be overridden."""

    fall: FallRule = FallRule()
    diaper_change: DiaperChangeRule = DiaperChangeRule()
    dose_missed: DoseMissedRule = DoseMissedRule()
    device_fault: DeviceFaultRule = DeviceFaultRule()
    sensor_silent: SensorSilentRule = SensorSilentRule()
    battery_low: BatteryLowRule = BatteryLowRule()
    bed_exit: BedExitRule = BedExitRule()


RULE_NAMES: tuple[str, ...] = tuple(Rules.model_fields)


class EscalationTarget(Strict):
    """Who hears about an escalated alarm."""

    kind: Literal["all_staff", "role", "user", "webhook"] = "all_staff"
    role: Literal["staff", "manager", "admin"] | None = None
    user: str | None = None
    url: str | None = Field(None, description="Outgoing webhook (nurse-call, paging).")

    @model_validator(mode="after")
    def _target_has_its_field(self) -> Self:
        needed = {"role": self.role, "user": self.user, "webhook": self.url}
        if self.kind in needed and not needed[self.kind]:
            field = "url" if self.kind == "webhook" else self.kind
            msg = f"escalation target kind {self.kind!r} needs '{field}'"
            raise ValueError(msg)
        return self


class Escalation(Strict):
    """When unacknowledged alarms escalate and how often they are announced again."""

    high_minutes: float | None = Field(2, gt=0, description="None = never.")
    medium_minutes: float | None = Field(10, gt=0)
    low_minutes: float | None = Field(None, gt=0)
    reminder_high_minutes: float | None = Field(1, gt=0, description="Re-announce every N min.")
    reminder_medium_minutes: float | None = Field(5, gt=0)
    reminder_low_minutes: float | None = Field(None, gt=0)
    fallback_minutes: float | None = Field(
        None, gt=0, description="Minutes after raising that the fallback phones are told."
    )
    fallback_phones: list[Slug] = Field(
        default_factory=list, description="Phone ids told at fallback (the shift leader)."
    )
    target: EscalationTarget = EscalationTarget()

    def escalate_after(self, priority: Priority) -> timedelta | None:
        """How long an alarm of this priority may stay unacknowledged."""
        minutes = getattr(self, f"{priority.value}_minutes")
        return None if minutes is None else timedelta(minutes=minutes)

    def remind_every(self, priority: Priority) -> timedelta | None:
        """How often an unacknowledged alarm of this priority is announced again."""
        minutes = getattr(self, f"reminder_{priority.value}_minutes")
        return None if minutes is None else timedelta(minutes=minutes)

    def fallback_after(self) -> timedelta | None:
        """How long an alarm may stay unacknowledged before the fallback phones hear of it."""
        if self.fallback_minutes is None or not self.fallback_phones:
            return None
        return timedelta(minutes=self.fallback_minutes)


# --- phones and notification channels (docs/notifications.md) -----------------------------

NTFY_TOPIC = r"^[-_A-Za-z0-9]{1,64}$"
"""What ntfy accepts as a topic name."""
HTTP_URL = r"^https?://[^\s/]+(/\S*)?$"


class NtfyServer(Strict):
    """A self-hosted ntfy server the hub publishes to."""

    url: str = Field(pattern=HTTP_URL, description="Base URL, e.g. http://ntfy.home.local.")
    token_env: str | None = Field(
        None,
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="Environment variable holding the access token (never the token itself).",
    )


class EspaLink(Strict):
    """The ESPA 4.4.4 link to a DECT or paging system (docs/espa.md)."""

    target: str = Field(
        pattern=r"^(tcp://[^\s/:]+:\d+|serial://\S+)$",
        description='"tcp://host:port" or "serial:///dev/ttyUSB0?baud=9600".',
    )
    own_address: str = Field("1", pattern=r"^[0-9]{1,3}$", description="CareHub's station.")
    paging_address: str = Field("2", pattern=r"^[0-9]{1,3}$", description="The paging system's.")
    step_timeout: float = Field(3.0, gt=0, le=30, description="Seconds to wait for each answer.")
    retries: int = Field(3, ge=0, le=10, description="Resends of a NAKed selection or block.")
    encoding: Literal["ascii", "latin-1", "utf-8"] = Field(
        "ascii", description="Display text: 7-bit ASCII (æ → ae …), latin-1 or utf-8."
    )
    max_text: int = Field(80, ge=8, le=400, description="Display text is cut to this length.")


class Notify(Strict):
    """Where notifications go: the base of acknowledge links and each channel's server."""

    public_url: str | None = Field(
        None, pattern=HTTP_URL, description="Base URL of acknowledge links and the board."
    )
    ntfy: NtfyServer | None = None
    espa: EspaLink | None = None


class Phone(Strict):
    """What staff carry (a work phone, a DECT handset): it belongs to wards, not a person."""

    id: Slug
    name: str = Field(min_length=1, max_length=200)
    wards: list[Slug] = Field(min_length=1)
    ntfy_topic: str | None = Field(
        None, pattern=NTFY_TOPIC, description="Hard to guess: anyone knowing it can read it."
    )
    espa_address: str | None = Field(
        None, pattern=r"^[0-9A-Za-z]{1,16}$", description="Call address on the paging system."
    )

    @model_validator(mode="after")
    def _reachable(self) -> Self:
        if self.ntfy_topic is None and self.espa_address is None:
            msg = "a phone needs at least one of 'ntfy_topic' or 'espa_address'"
            raise ValueError(msg)
        return self


class RoundSettings(Strict):
    """Thresholds of the digital round's verdicts (docs/round.md)."""

    diaper_look: float = Field(50, ge=0, le=100, description="Diaper % that asks for a look.")
    bed_look_fraction: float = Field(
        0.5, ge=0, le=1, description="Share of bed_exit's minutes out of bed that asks for a look."
    )
    dose_look: bool = Field(True, description="A dose offered and not yet taken asks for a look.")


# --- the site itself ----------------------------------------------------------------------


class NightWindow(Strict):
    """The local night, e.g. 22:00–07:00; it crosses midnight when end ≤ start."""

    start: time = time(22, 0)
    end: time = time(7, 0)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _hh_mm(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            # YAML 1.1 reads an unquoted 22:00 as the sexagesimal number 1320.
            value = f"{value // 60:02d}:{value % 60:02d}"
        if isinstance(value, str) and not re.fullmatch(r"\d{1,2}:\d{2}", value):
            msg = f'use HH:MM, e.g. "22:00" (got {value!r})'
            raise ValueError(msg)
        return value


class Ward(Strict):
    """An afdeling with its rooms."""

    id: Slug
    name: str = Field(min_length=1, max_length=200)
    rooms: list[Slug] = Field(min_length=1)


class Resident(Strict):
    """A resident, known on the wire only by a pseudonymous id."""

    id: Slug
    room: Slug
    name: str | None = Field(
        None, max_length=200, description="Shown on staff screens only; never on MQTT or logs."
    )
    benefit: Benefit | None = None
    rules: Rules | None = None


BindingTime = date | datetime


class Device(Strict):
    """A device and one binding of it: to a room (fall) or a resident, for a period."""

    id: Slug
    kind: DeviceKind
    model: str = Field("carehub-v1", min_length=1, description="Chooses the codec.")
    room: Slug | None = None
    resident: Slug | None = None
    from_: BindingTime | None = Field(None, alias="from")
    until: BindingTime | None = None
    topic: str | None = Field(
        None, description="Vendor topic this device publishes on, e.g. zigbee2mqtt/bed-12."
    )
    heartbeat_seconds: float = Field(60, gt=0, description="Expected heartbeat interval.")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_binding(self) -> Self:
        if (self.room is None) == (self.resident is None):
            msg = "bind the device to exactly one of 'room' or 'resident'"
            raise ValueError(msg)
        return self


class Site(Strict):
    """One care home, as written in its site file."""

    site: Slug
    name: str = Field(min_length=1, max_length=200)
    timezone: str = "Europe/Copenhagen"
    locale: Literal["da", "en"] = "da"
    night: NightWindow = NightWindow()
    benefit: Benefit | None = None
    rules: Rules = Rules()
    escalation: Escalation = Escalation()
    notify: Notify = Notify()
    round: RoundSettings = RoundSettings()
    wards: list[Ward] = Field(min_length=1)
    residents: list[Resident] = Field(default_factory=list)
    devices: list[Device] = Field(default_factory=list)
    phones: list[Phone] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError) as err:
            # OSError: a name too long for a file name (zoneinfo looks it up on disk)
            shown = value if len(value) <= 60 else value[:60] + "..."
            msg = f"unknown time zone {shown!r}; use an IANA name like Europe/Copenhagen"
            raise ValueError(msg) from err
        return value
