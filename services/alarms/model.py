"""The alarm (docs/alarms.md) and its lifecycle, as pure functions over a frozen model.

Every transition is one function that answers the changed alarm or raises
`InvalidTransitionError`; the store, the rules engine and the web API all go through them, so
there is one place that says what may happen to an alarm.

    raised ──ack──▶ acknowledged ──resolve──▶ resolved
      │                ▲                        ▲
      └─escalate─▶ escalated ──ack─┘   (raised/escalated may also be resolved directly)

`closed` is not reached by a transition: it is how `carehub import` keeps an alarm that an
earlier system never resolved (`as_history`), ended without a resolution.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_serializer

from carehub.alarmkinds import RULE_KIND as RULE_KIND
from carehub.alarmkinds import SENSOR as SENSOR
from carehub.site import Priority
from carehub.timefmt import rfc3339
from services.alarms.errors import InvalidTransitionError


class AlarmState(StrEnum):
    """Where an alarm is in its lifecycle."""

    RAISED = "raised"
    ACKNOWLEDGED = "acknowledged"
    ESCALATED = "escalated"
    RESOLVED = "resolved"
    CLOSED = "closed"
    """Imported history that the earlier system never resolved (docs/freed-hours.md)."""


ACTIVE_STATES = frozenset({AlarmState.RAISED, AlarmState.ESCALATED, AlarmState.ACKNOWLEDGED})
"""States in which an alarm still needs someone; its MQTT message stays retained."""
UNACKNOWLEDGED = frozenset({AlarmState.RAISED, AlarmState.ESCALATED})
"""States that escalate and are reminded of."""
ENDED_STATES = frozenset({AlarmState.RESOLVED, AlarmState.CLOSED})
"""States nothing happens to any more; no transition leaves them."""


class Outcome(StrEnum):
    """What staff say happened when they close an alarm."""

    ASSISTED = "assisted"
    CHANGED = "changed"
    DOSE_GIVEN = "dose_given"
    FALSE_ALARM = "false_alarm"
    NO_ACTION_NEEDED = "no_action_needed"
    OTHER = "other"


Action = Literal["acknowledge", "escalate", "resolve"]

_NEXT: dict[tuple[AlarmState, Action], AlarmState] = {
    (AlarmState.RAISED, "acknowledge"): AlarmState.ACKNOWLEDGED,
    (AlarmState.ESCALATED, "acknowledge"): AlarmState.ACKNOWLEDGED,
    (AlarmState.RAISED, "escalate"): AlarmState.ESCALATED,
    (AlarmState.RAISED, "resolve"): AlarmState.RESOLVED,
    (AlarmState.ESCALATED, "resolve"): AlarmState.RESOLVED,
    (AlarmState.ACKNOWLEDGED, "resolve"): AlarmState.RESOLVED,
}
"""Every allowed transition; anything else is refused."""


class Alarm(BaseModel):
    """One alarm; `model_dump(mode="json")` is the alarm JSON (docs/alarms.md)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    alarm_id: str
    site: str
    rule: str
    kind: str
    priority: Priority
    state: AlarmState = AlarmState.RAISED
    resident_id: str | None = None
    room: str | None = None
    device_id: str | None = None
    raised_at: AwareDatetime
    acknowledged_at: AwareDatetime | None = None
    acknowledged_by: str | None = None
    escalated_at: AwareDatetime | None = None
    resolved_at: AwareDatetime | None = None
    resolved_by: str | None = None
    outcome: Outcome | None = None
    trigger_event_id: str | None = None
    count: int = Field(1, ge=1, description="Triggers seen, the first included.")
    last_seen_at: AwareDatetime | None = Field(None, description="Event time of the last trigger.")
    cleared_at: AwareDatetime | None = Field(
        None, description="When the sensor said the condition was over (high alarms stay open)."
    )
    note: str | None = Field(None, max_length=2000, description="Staff note given on resolve.")

    @field_serializer(
        "raised_at",
        "acknowledged_at",
        "escalated_at",
        "resolved_at",
        "last_seen_at",
        "cleared_at",
    )
    def _ts(self, value: datetime | None) -> str | None:
        return None if value is None else rfc3339(value)

    @property
    def active(self) -> bool:
        """Whether someone still has to do something about it."""
        return self.state in ACTIVE_STATES

    def to_json(self) -> dict[str, Any]:
        """The alarm JSON (docs/alarms.md)."""
        return self.model_dump(mode="json")


def _moved(alarm: Alarm, action: Action, **changes: Any) -> Alarm:
    nxt = _NEXT.get((alarm.state, action))
    if nxt is None:
        raise InvalidTransitionError(alarm.alarm_id, alarm.state.value, action)
    return alarm.model_copy(update={"state": nxt, **changes})


def _not_before_raised(alarm: Alarm, at: datetime) -> datetime:
    # A device clock ahead of ours must not make a response time negative.
    return max(at.astimezone(UTC), alarm.raised_at)


def acknowledge(alarm: Alarm, user: str, at: datetime) -> Alarm:
    """A named person takes the alarm ('I'm on it')."""
    if not user.strip():
        msg = "acknowledging needs the name of the person"
        raise ValueError(msg)
    return _moved(
        alarm, "acknowledge", acknowledged_at=_not_before_raised(alarm, at), acknowledged_by=user
    )


def escalate(alarm: Alarm, at: datetime) -> Alarm:
    """Nobody acknowledged in time: push it to the escalation target."""
    return _moved(alarm, "escalate", escalated_at=_not_before_raised(alarm, at))


def resolve(
    alarm: Alarm, user: str, outcome: Outcome | str, at: datetime, note: str | None = None
) -> Alarm:
    """A person closes the alarm with what happened.

    Resolving straight from raised/escalated is allowed (the person was there); the alarm
    then has no `acknowledged_at`, and reports use the assumed response time for it.
    """
    if not user.strip() or user == SENSOR:
        msg = f"resolving needs the name of a person, not {user!r}"
        raise ValueError(msg)
    try:
        result = Outcome(outcome)
    except ValueError:
        allowed = ", ".join(o.value for o in Outcome)
        msg = f"outcome {outcome!r} is not one of: {allowed}"
        raise ValueError(msg) from None
    return _moved(
        alarm,
        "resolve",
        resolved_at=_not_before_raised(alarm, at),
        resolved_by=user,
        outcome=result,
        note=note,
    )


def resolve_by_sensor(alarm: Alarm, at: datetime) -> Alarm:
    """The sensor says the condition is over (a fresh diaper, a dose taken, a device back).

    A high-priority alarm is never closed by its sensor before a person acknowledged it: a
    resident who fell and 'got up' may still be hurt.
    """
    if alarm.priority is Priority.HIGH and alarm.state in UNACKNOWLEDGED:
        raise InvalidTransitionError(
            alarm.alarm_id, alarm.state.value, "resolve by sensor", "a person must acknowledge"
        )
    return _moved(alarm, "resolve", resolved_at=_not_before_raised(alarm, at), resolved_by=SENSOR)


def repeat(alarm: Alarm, at: datetime) -> Alarm:
    """The condition was seen again: count it, do not raise a second alarm."""
    if not alarm.active:
        raise InvalidTransitionError(alarm.alarm_id, alarm.state.value, "count a repeat")
    last = alarm.last_seen_at or alarm.raised_at
    return alarm.model_copy(update={"count": alarm.count + 1, "last_seen_at": max(last, at)})


def mark_cleared(alarm: Alarm, at: datetime) -> Alarm:
    """Note that the sensor cleared, on an alarm that must stay open for a person."""
    if not alarm.active:
        raise InvalidTransitionError(alarm.alarm_id, alarm.state.value, "mark cleared")
    return alarm.model_copy(update={"cleared_at": at.astimezone(UTC)})


def as_history(alarm: Alarm) -> Alarm:
    """An alarm of another system as history (`carehub import`, docs/freed-hours.md).

    A resolved alarm is kept as it is; one that ended in any other state is kept `closed`
    with the times it has, so it is never shown as active and the freed-hours method counts
    its missing response time as assumed. ValueError when its own fields contradict each
    other: a time before `raised_at`, a resolved alarm without when, by whom or (from a
    person) its outcome, or an unresolved one with a resolution.
    """
    state = AlarmState(alarm.state)  # a model_copy(update=...) may hold the plain string
    for key in ("acknowledged_at", "escalated_at", "resolved_at"):
        when = getattr(alarm, key)
        if when is not None and when < alarm.raised_at:
            msg = f"{key} ({rfc3339(when)}) is before raised_at ({rfc3339(alarm.raised_at)})"
            raise ValueError(msg)
    if state is AlarmState.RESOLVED:
        if alarm.resolved_at is None or not alarm.resolved_by:
            msg = "a resolved alarm needs resolved_at and resolved_by"
            raise ValueError(msg)
        if alarm.resolved_by != SENSOR and alarm.outcome is None:
            msg = "an alarm a person resolved needs its outcome"
            raise ValueError(msg)
        return alarm
    if alarm.resolved_at is not None or alarm.resolved_by is not None or alarm.outcome:
        msg = f"state {state.value} with a resolution: say resolved, or leave it out"
        raise ValueError(msg)
    return alarm.model_copy(update={"state": AlarmState.CLOSED})
