"""Steps of an alarm's life that both the rules engine and the web API take.

Each runs inside the caller's store transaction, so the alarm, its change-log row, its audit
row and its timers change together or not at all.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import services.alarms.model as model
from carehub.clock import Clock
from carehub.site import Escalation, EscalationTarget, Priority
from carehub.timefmt import to_us
from services.alarms.errors import AlarmNotFoundError, InvalidTransitionError
from services.alarms.model import Alarm, Outcome
from services.alarms.store import AlarmStore, Timer

ESCALATE = "escalate"
REMIND = "remind"


def escalate_timer_id(alarm_id: str) -> str:
    """The one escalation timer of an alarm."""
    return f"{ESCALATE}:{alarm_id}"


def remind_timer_id(alarm_id: str) -> str:
    """The one reminder timer of an alarm."""
    return f"{REMIND}:{alarm_id}"


def target_json(target: EscalationTarget) -> dict[str, Any]:
    """Who should hear about an escalation, as put in the change envelope."""
    return target.model_dump(exclude_none=True)


def arm_timers(
    store: AlarmStore, alarm: Alarm, escalation: Escalation, *, start: datetime | None = None
) -> None:
    """Start the escalation and reminder timers of a new alarm from `start`, the hub's time
    of its trigger (docs/alarms.md: timers run on the hub's clock, not a device's), or from
    its raised time when that is already the hub's."""
    begin = alarm.raised_at if start is None else start
    after = escalation.escalate_after(alarm.priority)
    if after is not None:
        store.set_timer(
            Timer(
                escalate_timer_id(alarm.alarm_id),
                ESCALATE,
                begin + after,
                {"alarm_id": alarm.alarm_id},
            )
        )
    every = escalation.remind_every(alarm.priority)
    if every is not None:
        store.set_timer(
            Timer(
                remind_timer_id(alarm.alarm_id),
                REMIND,
                begin + every,
                {"alarm_id": alarm.alarm_id},
            )
        )


def disarm_timers(store: AlarmStore, alarm_id: str) -> None:
    """Someone has the alarm (or it is over): no more escalation or reminders."""
    store.delete_timer(escalate_timer_id(alarm_id))
    store.delete_timer(remind_timer_id(alarm_id))


def _load(store: AlarmStore, alarm_id: str) -> Alarm:
    alarm = store.get(alarm_id)
    if alarm is None:
        msg = f"no alarm has id {alarm_id!r}"
        raise AlarmNotFoundError(msg)
    return alarm


def acknowledge(
    store: AlarmStore,
    clock: Clock,
    alarm_id: str,
    user: str,
    *,
    detail: dict[str, Any] | None = None,
) -> Alarm:
    """A person takes the alarm: stored, logged, audited, timers stopped. `detail` adds to
    the audit row how (e.g. `{"via": "phone", "phone": "nat-a"}`, docs/notifications.md)."""
    at = clock.now()
    with store.transaction():
        before = _load(store, alarm_id)
        after = model.acknowledge(before, user, at)
        store.save_alarm(after, at)
        disarm_timers(store, alarm_id)
        store.add_change(after, "update", "acknowledged", at)
        store.add_audit(
            at, user, "acknowledge", alarm_id, {"from": before.state.value, **(detail or {})}
        )
    return after


TECHNICAL_NAMESPACE = uuid.UUID("5b0e9f0c-62c4-4d1b-9d7e-6a1f3c2b8e41")
"""Ids of technical alarms about CareHub itself are uuid5 of their subject and time."""


def raise_technical(
    store: AlarmStore,
    clock: Clock,
    site: str,
    escalation: Escalation,
    rule: str,
    subject: str,
    priority: Priority,
    *,
    device_id: str | None = None,
    room: str | None = None,
) -> Alarm | None:
    """Raise a technical alarm about CareHub itself (a notification channel failing, a ward
    no phone reaches: docs/notifications.md) like any other alarm: stored with its change and
    its escalation and reminder timers, one active per (rule, subject). Answers the new
    alarm, or None when one is already open (it is counted as a repeat)."""
    at = clock.now()
    with store.transaction():
        current = store.open_alarm(site, rule, subject)
        if current is not None:
            updated = model.repeat(current, at)
            store.save_alarm(updated, at)
            store.add_change(updated, "update", "repeat", at)
            return None
        alarm = Alarm(
            alarm_id=str(uuid.uuid5(TECHNICAL_NAMESPACE, f"{site}/{rule}/{subject}/{to_us(at)}")),
            site=site,
            rule=rule,
            kind="technical",
            priority=priority,
            device_id=device_id,
            room=room,
            raised_at=at,
            last_seen_at=at,
        )
        store.insert_alarm(alarm, subject)
        store.add_occurrence(f"{rule}:{subject}:{to_us(at)}", alarm.alarm_id, None, at, None)
        store.add_change(alarm, "new", "raised", at)
        arm_timers(store, alarm, escalation)
    return alarm


def clear_technical(store: AlarmStore, clock: Clock, site: str, rule: str, subject: str) -> bool:
    """The fault behind a technical alarm is over: resolve it as its sensor would (a high one
    that nobody acknowledged only says it cleared). Answers whether an alarm changed."""
    at = clock.now()
    with store.transaction():
        current = store.open_alarm(site, rule, subject)
        if current is None:
            return False
        try:
            after = model.resolve_by_sensor(current, at)
        except InvalidTransitionError:
            if current.cleared_at is not None:
                return False
            cleared = model.mark_cleared(current, at)
            store.save_alarm(cleared, at)
            store.add_change(cleared, "update", "sensor_cleared", at)
            return True
        store.save_alarm(after, at)
        disarm_timers(store, current.alarm_id)
        store.add_change(after, "end", "sensor_resolved", at)
    return True


def resolve(
    store: AlarmStore,
    clock: Clock,
    alarm_id: str,
    user: str,
    outcome: Outcome | str,
    note: str | None = None,
) -> Alarm:
    """A person closes the alarm with its outcome: stored, logged, audited, timers stopped."""
    at = clock.now()
    with store.transaction():
        before = _load(store, alarm_id)
        after = model.resolve(before, user, outcome, at, note)
        store.save_alarm(after, at)
        disarm_timers(store, alarm_id)
        store.add_change(after, "end", "resolved", at)
        detail: dict[str, Any] = {"from": before.state.value, "outcome": after.outcome}
        if note:
            detail["note"] = note
        store.add_audit(at, user, "resolve", alarm_id, detail)
    return after
