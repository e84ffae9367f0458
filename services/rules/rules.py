"""The alarm rules (docs/alarms.md) as small pure functions, chosen by a table.

Each rule reads one canonical event and its own settings (site defaults with the resident's
overrides, `SiteIndex.rules_for`) and answers what should happen, as data: trigger an alarm,
clear it, start or cancel a timer. The engine applies that with everything that needs the
store (one alarm per subject, stale events, night-only, idempotency), so every rule here can
be tested with a table of events and no database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from carehub.events import CanonicalEvent, EventType
from carehub.site import (
    BatteryLowRule,
    BedExitRule,
    DeviceFaultRule,
    DeviceKind,
    DiaperChangeRule,
    DoseMissedRule,
    FallRule,
    Priority,
    SensorSilentRule,
)

SubjectBy = Literal["resident", "device"]

DOSE_SAME_WITHIN = timedelta(hours=12)
"""A dose's timer and the dispenser's own `missed` are one occurrence; dispensers may reuse a
dose id every day, so only within this time of each other."""

BATTERY_RESET_MARGIN = 10.0
"""A battery_low alarm resolves only at threshold + this, so a battery at the edge cannot
raise and resolve an alarm every minute."""


@dataclass(frozen=True, slots=True)
class Trigger:
    """The rule's condition holds: raise its alarm, or count a repeat of the open one."""

    priority: Priority
    channel: str | None = None
    """Sensor state this reading belongs to; an older reading than the newest is stale."""
    occurrence_key: str | None = None
    """What makes two triggers the same occurrence; the event id when None."""
    ref: str | None = None
    """What the occurrence is about, e.g. a dose id, so a later event can clear just that."""
    same_within: timedelta | None = None
    """An occurrence key seen this close in time is the same occurrence; None: ever."""


@dataclass(frozen=True, slots=True)
class Clear:
    """The sensor says the condition is over."""

    channel: str | None = None
    ref: str | None = None
    """Clear only an alarm whose occurrences are all about this ref."""


@dataclass(frozen=True, slots=True)
class Observe:
    """A reading on a channel that neither triggers nor clears, but is the newest state."""

    channel: str


@dataclass(frozen=True, slots=True)
class Schedule:
    """Start (or move) a timer; ignored when the event is stale on `channel`."""

    timer_id: str
    kind: str
    due: datetime
    data: dict[str, Any] = field(default_factory=dict)
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class Cancel:
    """Stop a pending timer."""

    timer_id: str


Action = Trigger | Clear | Observe | Schedule | Cancel


@dataclass(frozen=True, slots=True)
class EventContext:
    """What a rule may know besides the event: its time and the device's heartbeat."""

    at: datetime
    """Event time: the earlier of the device's ts and the gateway's received_at."""
    heartbeat_seconds: float
    received_at: datetime
    """The hub's clock when the event arrived: timers start from it (docs/alarms.md)."""
    is_night: bool = False
    """Whether the event's time falls inside the site's night window."""


Evaluator = Callable[[CanonicalEvent, Any, EventContext], list[Action]]


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """One rule: its name in the site's `rules`, what it alarms about and what it reads."""

    name: str
    subject: SubjectBy
    on: frozenset[EventType] | None
    """Event types the rule reads; None for every event."""
    evaluate: Evaluator


def dose_timer_id(device_id: str, dose_id: str) -> str:
    """One timer per offered dose."""
    return f"dose:{device_id}:{dose_id}"


def silence_timer_id(device_id: str) -> str:
    """One silence timer per device, moved on every message."""
    return f"silent:{device_id}"


def bed_exit_timer_id(device_id: str) -> str:
    """One bed-exit timer per bed sensor, started when the resident gets up."""
    return f"bed:{device_id}"


def _bed_exit(event: CanonicalEvent, cfg: BedExitRule, ctx: EventContext) -> list[Action]:
    """Out of bed (at night) starts the timer, or alarms at once with `minutes: 0`; back in
    bed stops it and resolves the alarm (docs/alarms.md)."""
    timer = bed_exit_timer_id(event.device_id)
    if event.type is EventType.IN_BED:
        return [Cancel(timer), Clear(channel="bed")]
    if cfg.night_only and not ctx.is_night:
        return [Cancel(timer), Observe("bed")]
    if cfg.minutes == 0:
        return [Trigger(cfg.priority, channel="bed")]
    data = {
        "device_id": event.device_id,
        "resident_id": event.resident_id,
        "room": event.room,
        "event_id": event.event_id,
    }
    due = ctx.received_at + timedelta(minutes=cfg.minutes)
    return [Schedule(timer, "bed_exit", due, data, channel="bed")]


def _fall(event: CanonicalEvent, cfg: FallRule, _ctx: EventContext) -> list[Action]:
    if event.type is EventType.FALL_CLEARED:
        return [Clear(channel="fall")]
    confidence = float(event.data.get("confidence", 1.0))
    if confidence >= cfg.min_confidence:
        return [Trigger(cfg.priority, channel="fall")]
    return []


def _diaper(event: CanonicalEvent, cfg: DiaperChangeRule, _ctx: EventContext) -> list[Action]:
    level = float(event.data["level"])
    if level >= cfg.threshold:
        return [Trigger(cfg.priority, channel="saturation")]
    if level < cfg.reset_below:
        return [Clear(channel="saturation")]
    return [Observe("saturation")]


def _dose(event: CanonicalEvent, cfg: DoseMissedRule, ctx: EventContext) -> list[Action]:
    dose_id = str(event.data.get("dose_id", ""))
    timer = dose_timer_id(event.device_id, dose_id)
    if event.type is EventType.DOSE_DUE:
        due_raw = event.data.get("due")
        due = datetime.fromisoformat(str(due_raw).replace("Z", "+00:00")) if due_raw else ctx.at
        data = {
            "dose_id": dose_id,
            "device_id": event.device_id,
            "resident_id": event.resident_id,
            "room": event.room,
            "event_id": event.event_id,
        }
        return [Schedule(timer, "dose", due + timedelta(minutes=cfg.window_minutes), data)]
    if event.type is EventType.MISSED:
        return [
            Cancel(timer),
            Trigger(cfg.priority, occurrence_key=timer, ref=dose_id, same_within=DOSE_SAME_WITHIN),
        ]
    # taken: within the window it stops the timer; after it, the timer has already fired
    # (timers due before an event fire first) and the alarm it raised is cleared.
    return [Cancel(timer), Clear(ref=dose_id)]


def _fault(_event: CanonicalEvent, cfg: DeviceFaultRule, _ctx: EventContext) -> list[Action]:
    return [Trigger(cfg.priority)]


def _battery(event: CanonicalEvent, cfg: BatteryLowRule, _ctx: EventContext) -> list[Action]:
    battery = event.data.get("battery")
    if battery is None:
        return []
    if float(battery) <= cfg.threshold:
        return [Trigger(cfg.priority, channel="battery")]
    if float(battery) >= cfg.threshold + BATTERY_RESET_MARGIN:
        return [Clear(channel="battery")]
    return [Observe("battery")]


def _silence(event: CanonicalEvent, cfg: SensorSilentRule, ctx: EventContext) -> list[Action]:
    due = ctx.received_at + timedelta(seconds=cfg.heartbeats_missed * ctx.heartbeat_seconds)
    data = {"device_id": event.device_id, "last_event_id": event.event_id}
    return [
        Schedule(silence_timer_id(event.device_id), "silent", due, data, channel="seen"),
        Clear(channel="seen"),
    ]


RULES: tuple[RuleSpec, ...] = (
    RuleSpec("fall", "resident", frozenset({EventType.FALL, EventType.FALL_CLEARED}), _fall),
    RuleSpec("diaper_change", "resident", frozenset({EventType.SATURATION}), _diaper),
    RuleSpec(
        "dose_missed",
        "resident",
        frozenset({EventType.DOSE_DUE, EventType.MISSED, EventType.TAKEN}),
        _dose,
    ),
    RuleSpec("device_fault", "device", frozenset({EventType.FAULT}), _fault),
    RuleSpec("battery_low", "device", frozenset({EventType.HEARTBEAT}), _battery),
    RuleSpec("sensor_silent", "device", None, _silence),
    RuleSpec(
        "bed_exit", "resident", frozenset({EventType.IN_BED, EventType.OUT_OF_BED}), _bed_exit
    ),
)
"""Every rule, in the order they see an event."""

RULE_SPECS: dict[str, RuleSpec] = {spec.name: spec for spec in RULES}


def silent_priority(cfg: SensorSilentRule, kind: DeviceKind, is_night: bool) -> Priority:
    """A silent fall sensor at night is as urgent as a fall; anything else is medium."""
    if kind is DeviceKind.FALL and is_night:
        return cfg.fall_night_priority
    return cfg.priority
