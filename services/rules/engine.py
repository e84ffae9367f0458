"""The rules engine: canonical events and the clock in, alarm changes (committed) out.

Two times (docs/alarms.md, "Time, late and out-of-order events"). An event's time is the
earlier of its device `ts` and the gateway's `received_at` (a device clock running ahead
cannot delay an alarm); it orders readings and is what alarms report. Timers (silence,
escalation, reminder) run on the hub's clock instead: they are due at a `received_at` plus
their interval, so a device clock running behind can neither raise an alarm already
escalated nor make an online device look silent. Timers fire when the injected clock passes
them (`tick`), and also when an event received later than them arrives (`apply`), so a
replay or an accelerated simulation sees the same alarms as a real night.

Late and out-of-order events (the policy, also in docs/alarms.md):

- An event id already handled is ignored whole (replay, redelivery after a crash).
- Per device and channel (fall, saturation, battery, seen) the newest reading wins: an older
  reading arriving late may count as a repeat of an alarm that is open, but never raises a
  new alarm, never resolves one and never moves the silence timer back.
- A `taken` cancels the dose's pending timer; if its time is past the window the timer fired
  first (it was due before the event) and the late `taken` resolves that alarm (sensor).
- Timers fire `timer_grace` after they are due by the clock, so messages in flight can land.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from carehub.alarmkinds import RULE_KIND
from carehub.clock import Clock
from carehub.events import CanonicalEvent, EventType
from carehub.site import Priority, SiteIndex
from carehub.timefmt import to_us
from services.alarms import model
from services.alarms.errors import InvalidTransitionError
from services.alarms.lifecycle import ESCALATE, REMIND, arm_timers, disarm_timers, target_json
from services.alarms.model import UNACKNOWLEDGED, Alarm, AlarmState
from services.alarms.store import AlarmStore, Change, Timer
from services.rules.rules import (
    DOSE_SAME_WITHIN,
    RULE_SPECS,
    RULES,
    Cancel,
    Clear,
    EventContext,
    Observe,
    Schedule,
    SubjectBy,
    Trigger,
    silence_timer_id,
    silent_priority,
)

_LOGGER = logging.getLogger(__name__)

SELF_TEST = "self_test"
"""Rule name of the alarm an admin's self-test raises (not a site-file rule: it has no settings)."""

ALARM_NAMESPACE = uuid.UUID("0c3d7a52-9f41-4e8e-bb5e-1d2f6a7c9e30")
"""Alarm ids are uuid5 of what raised them, so the same first trigger gives the same id."""


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Knobs of the engine; tests set the grace to zero."""

    timer_grace: timedelta = timedelta(seconds=2)
    """How long after a timer is due the clock-driven tick fires it (messages in flight)."""
    supervise_unheard_devices: bool = True
    """At start, arm the silence timer of devices never heard from, so a dead one alarms."""
    seen_retention: timedelta = timedelta(days=7)
    """How long handled event ids are kept to recognise replays."""


@dataclass(frozen=True, slots=True)
class _Occurrence:
    """One trigger, whether from an event or a timer."""

    rule: str
    subject_by: SubjectBy
    priority: Priority
    night_only: bool
    resident_id: str | None
    room: str | None
    device_id: str
    at: datetime
    key: str
    ref: str | None
    event_id: str | None
    stale: bool
    same_within: timedelta | None = None
    clock_at: datetime | None = None
    """The hub's time of the trigger (`received_at`), which starts its escalation and
    reminders; None: `at` (a timer's due time is already the hub's)."""

    @property
    def subject(self) -> str:
        if self.subject_by == "resident" and self.resident_id is not None:
            return f"resident:{self.resident_id}"
        return f"device:{self.device_id}"


def self_test_alarm_id(site: str, event_id: str) -> str:
    """The alarm a self-test event raises: known in advance, so the web app can wait for it."""
    return str(uuid.uuid5(ALARM_NAMESPACE, f"{site}/{SELF_TEST}/{event_id}"))


def event_time(event: CanonicalEvent) -> datetime:
    """When it happened, as far as we can trust it: min(device ts, gateway received_at)."""
    return min(event.ts, event.received_at)


class RulesEngine:
    """Applies the site's rules to events and timers, writing alarms through the store."""

    def __init__(
        self,
        index: SiteIndex,
        store: AlarmStore,
        clock: Clock,
        config: EngineConfig | None = None,
        monitored: Callable[[str], bool] | None = None,
    ) -> None:
        """`monitored(resident_id)` is the admin's per-resident monitoring switch (None: all
        residents monitored); it is read from the shared store, so it must be cheap."""
        self.index = index
        self.store = store
        self.clock = clock
        self.config = config or EngineConfig()
        self.monitored = monitored
        self.site = index.site.site
        self._timer_handlers: dict[str, Callable[[Timer, datetime], None]] = {
            "dose": self._fire_dose,
            "silent": self._fire_silence,
            "bed_exit": self._fire_bed_exit,
            ESCALATE: self._fire_escalation,
            REMIND: self._fire_reminder,
        }

    # --- entry points ---------------------------------------------------------------------

    def start(self) -> None:
        """Arm silence supervision for every bound device not yet heard from or timed."""
        if not self.config.supervise_unheard_devices:
            return
        now = self.clock.now()
        with self.store.transaction():
            for device_id in self.index.bindings:
                binding = self.index.binding_at(device_id, now)
                timer_id = silence_timer_id(device_id)
                if binding is None or self.store.get_timer(timer_id) is not None:
                    continue
                if self.store.channel_ts(device_id, "seen") is not None:
                    continue  # heard before and its alarm (if any) is open: nothing to arm
                cfg = self.index.rules_for(self._single_resident(device_id, now)).sensor_silent
                if not cfg.enabled:
                    continue
                due = now + timedelta(seconds=cfg.heartbeats_missed * binding.heartbeat_seconds)
                self.store.set_timer(Timer(timer_id, "silent", due, {"device_id": device_id}))

    def handle(self, event: CanonicalEvent) -> list[Change]:
        """Apply one event in its own transaction; answers the changes it made."""
        with self.store.transaction():
            first = self.store.last_change_seq()
            self.apply(event)
            return self.store.changes_after(first)

    def tick(self, now: datetime | None = None) -> list[Change]:
        """Fire timers that are due (by the clock, less the grace); answers the changes."""
        until = (now or self.clock.now()) - self.config.timer_grace
        with self.store.transaction():
            first = self.store.last_change_seq()
            self._fire_until(until)
            return self.store.changes_after(first)

    def prune(self) -> int:
        """Forget handled event ids older than the retention; answers how many."""
        return self.store.prune_seen(self.clock.now() - self.config.seen_retention)

    def apply(self, event: CanonicalEvent) -> None:
        """Apply one event inside the caller's transaction (the service batches them)."""
        if event.site != self.site:
            _LOGGER.warning(
                "event %s is for site %s, not %s", event.event_id, event.site, self.site
            )
            return
        at = event_time(event)
        received = event.received_at
        with self.store.transaction():
            # The hub's clock has reached `received`: what was due before that happens first.
            self._fire_until(received - timedelta(microseconds=1))
            if not self.store.mark_seen(event.event_id, at):
                _LOGGER.debug("event %s already handled", event.event_id)
                return
            if event.type is EventType.SELF_TEST:
                self._self_test(event, at)
                return  # not a device: no silence supervision, no other rule
            binding = self.index.binding_at(event.device_id, event.ts) or self.index.device(
                event.device_id
            )
            ctx = EventContext(
                at,
                binding.heartbeat_seconds if binding else 60.0,
                received,
                self.index.is_night(at),
            )
            rules = self.index.rules_for(event.resident_id)
            stale: dict[str, bool] = {}

            def is_stale(channel: str | None) -> bool:
                if channel is None:
                    return False
                if channel not in stale:
                    newest = self.store.channel_ts(event.device_id, channel)
                    stale[channel] = newest is not None and newest > at
                return stale[channel]

            for spec in RULES:
                if spec.on is not None and event.type not in spec.on:
                    continue
                cfg = getattr(rules, spec.name)
                if not cfg.enabled:
                    continue
                for action in spec.evaluate(event, cfg, ctx):
                    if isinstance(action, Trigger):
                        self._trigger(
                            _Occurrence(
                                rule=spec.name,
                                subject_by=spec.subject,
                                priority=action.priority,
                                night_only=cfg.night_only,
                                resident_id=event.resident_id,
                                room=event.room,
                                device_id=event.device_id,
                                at=at,
                                key=action.occurrence_key or event.event_id,
                                ref=action.ref,
                                event_id=event.event_id,
                                stale=is_stale(action.channel),
                                same_within=action.same_within,
                                clock_at=received,
                            )
                        )
                    elif isinstance(action, Clear):
                        if not is_stale(action.channel):
                            self._clear(spec.name, spec.subject, event, at, action.ref)
                    elif isinstance(action, Schedule):
                        if not is_stale(action.channel):
                            timer = Timer(action.timer_id, action.kind, action.due, action.data)
                            self.store.set_timer(timer)
                    elif isinstance(action, Cancel):
                        self.store.delete_timer(action.timer_id)
                    elif isinstance(action, Observe):
                        is_stale(action.channel)  # noted, so its time advances below
            for channel in stale:
                self.store.advance_channel(event.device_id, channel, at)

    # --- triggers and clears --------------------------------------------------------------

    def _trigger(self, occ: _Occurrence) -> None:
        if occ.same_within is None:
            seen = self.store.has_occurrence(occ.key)
        else:
            within = occ.same_within // timedelta(microseconds=1)
            seen = self.store.has_occurrence(occ.key, occ.at, within)
        if seen:
            return  # this occurrence (e.g. a dose both timed out and reported missed) counted
        current = self.store.open_alarm(self.site, occ.rule, occ.subject)
        if current is not None:
            updated = model.repeat(current, occ.at)
            self.store.add_occurrence(occ.key, current.alarm_id, occ.event_id, occ.at, occ.ref)
            self.store.save_alarm(updated, occ.at)
            self.store.add_change(updated, "update", "repeat", occ.at)
            return
        if occ.stale:
            _LOGGER.debug("stale %s trigger from %s ignored", occ.rule, occ.device_id)
            return
        if occ.night_only and not self.index.is_night(occ.at):
            return
        if occ.resident_id is not None and not self._is_monitored(occ.resident_id):
            # The admin switched this resident's monitoring off (with a reason): keep a mark
            # of what would have alarmed, raise nothing. Open alarms above still count.
            self.store.add_suppressed(
                occ.event_id, occ.rule, occ.resident_id, occ.device_id, occ.at
            )
            _LOGGER.debug("%s from %s suppressed: monitoring off", occ.rule, occ.device_id)
            return
        name = f"{self.site}/{occ.rule}/{occ.key}/{to_us(occ.at)}"
        alarm_id = str(uuid.uuid5(ALARM_NAMESPACE, name))
        alarm = Alarm(
            alarm_id=alarm_id,
            site=self.site,
            rule=occ.rule,
            kind=RULE_KIND[occ.rule],
            priority=occ.priority,
            resident_id=occ.resident_id,
            room=occ.room,
            device_id=occ.device_id,
            raised_at=occ.at,
            last_seen_at=occ.at,
            trigger_event_id=occ.event_id,
        )
        self.store.insert_alarm(alarm, occ.subject)
        self.store.add_occurrence(occ.key, alarm_id, occ.event_id, occ.at, occ.ref)
        self.store.add_change(alarm, "new", "raised", occ.at)
        arm_timers(self.store, alarm, self.index.site.escalation, start=occ.clock_at)
        _LOGGER.info("alarm %s raised: %s (%s)", alarm_id, occ.rule, occ.priority.value)

    def _is_monitored(self, resident_id: str) -> bool:
        return self.monitored is None or self.monitored(resident_id)

    def _self_test(self, event: CanonicalEvent, at: datetime) -> None:
        """An admin's self-test: a low alarm of its own (one per test), like any other alarm,
        so the test proves the path to the board; the web app resolves it."""
        alarm = Alarm(
            alarm_id=self_test_alarm_id(self.site, event.event_id),
            site=self.site,
            rule=SELF_TEST,
            kind="technical",
            priority=Priority.LOW,
            device_id=event.device_id,
            raised_at=at,
            last_seen_at=at,
            trigger_event_id=event.event_id,
        )
        self.store.insert_alarm(alarm, f"{SELF_TEST}:{event.event_id}")
        self.store.add_occurrence(event.event_id, alarm.alarm_id, event.event_id, at, None)
        self.store.add_change(alarm, "new", "raised", at)
        arm_timers(self.store, alarm, self.index.site.escalation, start=event.received_at)
        _LOGGER.info("alarm %s raised: %s", alarm.alarm_id, SELF_TEST)

    def _clear(
        self,
        rule: str,
        subject_by: SubjectBy,
        event: CanonicalEvent,
        at: datetime,
        ref: str | None,
    ) -> None:
        resident = event.resident_id if subject_by == "resident" else None
        subject = f"resident:{resident}" if resident else f"device:{event.device_id}"
        current = self.store.open_alarm(self.site, rule, subject)
        if current is None:
            return
        if ref is not None:
            refs = {r for _k, _e, _t, r in self.store.occurrences(current.alarm_id)}
            if refs != {ref}:
                return  # the alarm is (also) about something this event does not settle
        try:
            resolved = model.resolve_by_sensor(current, at)
        except InvalidTransitionError:
            if current.cleared_at is None:
                cleared = model.mark_cleared(current, at)
                self.store.save_alarm(cleared, at)
                self.store.add_change(cleared, "update", "sensor_cleared", at)
            return
        self.store.save_alarm(resolved, at)
        disarm_timers(self.store, current.alarm_id)
        self.store.add_change(resolved, "end", "sensor_resolved", at)
        _LOGGER.info("alarm %s resolved by its sensor", current.alarm_id)

    # --- timers ---------------------------------------------------------------------------

    def _fire_until(self, until: datetime) -> None:
        while True:
            due = self.store.due_timers(until)
            if not due:
                return
            for timer in due:
                self.store.delete_timer(timer.timer_id)
                handler = self._timer_handlers.get(timer.kind)
                if handler is None:
                    _LOGGER.warning(
                        "timer %s of unknown kind %s dropped", timer.timer_id, timer.kind
                    )
                    continue
                handler(timer, until)

    def _single_resident(self, device_id: str, at: datetime) -> str | None:
        binding = self.index.binding_at(device_id, at)
        if binding is None:
            return None
        residents = self.index.residents_of(binding)
        return residents[0] if len(residents) == 1 else None

    def _fire_dose(self, timer: Timer, _now: datetime) -> None:
        data: dict[str, Any] = timer.data
        cfg = self.index.rules_for(data.get("resident_id")).dose_missed
        if not cfg.enabled:
            return
        self._trigger(
            _Occurrence(
                rule="dose_missed",
                subject_by=RULE_SPECS["dose_missed"].subject,
                priority=cfg.priority,
                night_only=cfg.night_only,
                resident_id=data.get("resident_id"),
                room=data.get("room"),
                device_id=str(data["device_id"]),
                at=timer.due,
                key=timer.timer_id,
                ref=data.get("dose_id"),
                event_id=data.get("event_id"),
                stale=False,
                same_within=DOSE_SAME_WITHIN,
            )
        )

    def _fire_bed_exit(self, timer: Timer, _now: datetime) -> None:
        """Still out of bed `minutes` after getting up at night (the rule checked the night
        when the resident got up, so a walk that runs past the window's end still alarms)."""
        data: dict[str, Any] = timer.data
        cfg = self.index.rules_for(data.get("resident_id")).bed_exit
        if not cfg.enabled:
            return
        self._trigger(
            _Occurrence(
                rule="bed_exit",
                subject_by=RULE_SPECS["bed_exit"].subject,
                priority=cfg.priority,
                night_only=False,
                resident_id=data.get("resident_id"),
                room=data.get("room"),
                device_id=str(data["device_id"]),
                at=timer.due,
                key=f"{timer.timer_id}:{to_us(timer.due)}",
                ref=None,
                event_id=data.get("event_id"),
                stale=False,
            )
        )

    def _fire_silence(self, timer: Timer, _now: datetime) -> None:
        device_id = str(timer.data["device_id"])
        binding = self.index.binding_at(device_id, timer.due)
        if binding is None:
            return  # not bound any more: nobody to protect
        resident = self._single_resident(device_id, timer.due)
        cfg = self.index.rules_for(resident).sensor_silent
        if not cfg.enabled:
            return
        self._trigger(
            _Occurrence(
                rule="sensor_silent",
                subject_by="device",
                priority=silent_priority(cfg, binding.kind, self.index.is_night(timer.due)),
                night_only=cfg.night_only,
                resident_id=resident,
                room=self.index.room_of(binding),
                device_id=device_id,
                at=timer.due,
                key=f"{timer.timer_id}:{to_us(timer.due)}",
                ref=None,
                event_id=timer.data.get("last_event_id"),
                stale=False,
            )
        )

    def _fire_escalation(self, timer: Timer, _now: datetime) -> None:
        alarm = self.store.get(str(timer.data["alarm_id"]))
        if alarm is None or alarm.state is not AlarmState.RAISED:
            return
        escalated = model.escalate(alarm, timer.due)
        self.store.save_alarm(escalated, timer.due)
        target = target_json(self.index.site.escalation.target)
        self.store.add_change(escalated, "update", "escalated", timer.due, target)
        _LOGGER.info("alarm %s escalated to %s", alarm.alarm_id, target["kind"])

    def _fire_reminder(self, timer: Timer, now: datetime) -> None:
        alarm = self.store.get(str(timer.data["alarm_id"]))
        if alarm is None or alarm.state not in UNACKNOWLEDGED:
            return
        escalation = self.index.site.escalation
        target = target_json(escalation.target) if alarm.state is AlarmState.ESCALATED else None
        self.store.add_change(alarm, "update", "reminder", timer.due, target)
        every = escalation.remind_every(alarm.priority)
        if every is None:
            return
        # After downtime, remind once now rather than once for every interval missed.
        nxt = timer.due + every
        if nxt <= now:
            nxt = now + every
        self.store.set_timer(Timer(timer.timer_id, REMIND, nxt, timer.data))
