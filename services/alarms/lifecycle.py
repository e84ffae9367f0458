"""Steps of an alarm's life that both the rules engine and the web API take.

Each runs inside the caller's store transaction, so the alarm, its change-log row, its audit
row and its timers change together or not at all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import services.alarms.model as model
from carehub.clock import Clock
from carehub.site import Escalation, EscalationTarget
from services.alarms.errors import AlarmNotFoundError
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


def acknowledge(store: AlarmStore, clock: Clock, alarm_id: str, user: str) -> Alarm:
    """A person takes the alarm: stored, logged, audited, timers stopped."""
    at = clock.now()
    with store.transaction():
        before = _load(store, alarm_id)
        after = model.acknowledge(before, user, at)
        store.save_alarm(after, at)
        disarm_timers(store, alarm_id)
        store.add_change(after, "update", "acknowledged", at)
        store.add_audit(at, user, "acknowledge", alarm_id, {"from": before.state.value})
    return after


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
