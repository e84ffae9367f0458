"""`RoundService`: the round state kept current as canonical events and alarm changes arrive,
rebuilt from the stores on start, never per request (docs/round.md).

It reads the event store and the alarm service through their public interfaces only; the hub
feeds it the canonical events the web app's broker connection receives (`on_message`) and it
subscribes to the alarm service's change feed itself.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from carehub.clock import Clock
from carehub.errors import NotFoundError
from carehub.events import CanonicalEvent, EventType
from carehub.site import DeviceKind, SiteIndex
from carehub.timefmt import rfc3339
from gateway.store.base import EventStore
from services.round.checks import CheckResult, CheckStore, DigitalCheck
from services.round.verdict import Locale, Seen, Sensor, verdict

_LOGGER = logging.getLogger(__name__)

REBUILD_HOURS = 24
"""On start, the last day of events is read back: enough for every device's latest state."""
DOSE_HOURS = 16
"""A dose event older than this is not tonight's."""
OFFLINE_AFTER_BEATS = 3
"""A device unheard for this many heartbeat intervals is offline (as `sensor_silent`)."""
AUDIT_ACTION = "digital_check"
_DOSE_WORDS: dict[EventType, Literal["taken", "due", "missed"]] = {
    EventType.DOSE_DUE: "due",
    EventType.TAKEN: "taken",
    EventType.MISSED: "missed",
}


class AlarmFeed(Protocol):
    """What the round needs of the alarm service."""

    def list_alarms(self, state: str, since: datetime | None) -> list[dict[str, Any]]:
        """Alarm JSON; 'active' for the open ones."""
        ...

    def subscribe(self, listener: Callable[[dict[str, Any]], None]) -> Callable[[], None]:
        """Change envelopes from now on; answers the unsubscribe function."""
        ...

    def record_access(self, actor: str, action: str, detail: dict[str, Any]) -> None:
        """Append to the audit log."""
        ...


@dataclass(slots=True)
class _Device:
    """The latest of one device."""

    last_seen: datetime | None = None
    presence: int | None = None
    movement: int | None = None
    in_bed: bool | None = None
    bed_since: datetime | None = None
    level: float | None = None
    level_since: datetime | None = None
    dose: Literal["taken", "due", "missed"] | None = None
    dose_at: datetime | None = None


class RoundService:
    """Per-resident round state, verdicts and digital checks."""

    def __init__(
        self,
        index: SiteIndex,
        events: EventStore,
        alarms: AlarmFeed,
        checks: CheckStore,
        clock: Clock,
    ) -> None:
        self.index = index
        self.events = events
        self.alarms = alarms
        self.checks = checks
        self.clock = clock
        self.site = index.site.site
        self._lock = threading.Lock()
        self._devices: dict[str, _Device] = {}
        self._active: dict[str, str | None] = {}
        """alarm id → resident id of every active alarm."""
        self._last_check: dict[str, DigitalCheck] = {}
        self._unsubscribe: Callable[[], None] | None = None

    # --- keeping current ------------------------------------------------------------------

    def start(self) -> RoundService:
        """Subscribe to alarm changes, then read the stores back (a change in between is
        applied twice, which sets the same state)."""
        self._unsubscribe = self.alarms.subscribe(self.on_alarm_change)
        now = self.clock.now()
        for state in self.events.device_states():
            if state.last_seen is not None:
                self._device(state.device_id).last_seen = state.last_seen
        for event in self.events.query_events(
            self.site, now - timedelta(hours=REBUILD_HOURS), now + timedelta(minutes=5)
        ):
            self.on_event(event)
        with self._lock:
            for alarm in self.alarms.list_alarms("active", None):
                self._active[alarm["alarm_id"]] = alarm.get("resident_id")
            self._last_check = self.checks.latest()
        return self

    def stop(self) -> None:
        """Stop following the alarm feed."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def _device(self, device_id: str) -> _Device:
        return self._devices.setdefault(device_id, _Device())

    def on_message(self, topic: str, payload: bytes) -> None:
        """A broker message: the canonical events (`…/events/…`) move the state."""
        if "/events/" not in topic or not payload:
            return
        try:
            event = CanonicalEvent.model_validate_json(payload)
        except ValueError:
            _LOGGER.warning("round: an event on %s could not be read", topic)
            return
        self.on_event(event)

    def on_event(self, event: CanonicalEvent) -> None:
        """Fold one canonical event into its device's latest state."""
        if event.site != self.site:
            return
        at = min(event.ts, event.received_at)
        data = event.data
        with self._lock:
            dev = self._device(event.device_id)
            if dev.last_seen is None or event.received_at > dev.last_seen:
                dev.last_seen = event.received_at
            if "presence" in data:
                dev.presence, dev.movement = int(data["presence"]), int(data.get("movement", 0))
            kind = event.type
            if kind in (EventType.IN_BED, EventType.OUT_OF_BED) or "occupancy" in data:
                in_bed = kind is EventType.IN_BED or bool(data.get("occupancy"))
                if dev.in_bed != in_bed and (dev.bed_since is None or at >= dev.bed_since):
                    dev.in_bed, dev.bed_since = in_bed, at
            elif kind is EventType.SATURATION:
                level = float(data["level"])
                if dev.level_since is None or at >= dev.level_since:
                    if dev.level != level:
                        dev.level_since = at
                    dev.level = level
            elif kind is EventType.DETACHED:
                dev.level, dev.level_since = None, at
            elif kind in _DOSE_WORDS and (dev.dose_at is None or at >= dev.dose_at):
                dev.dose, dev.dose_at = _DOSE_WORDS[kind], at

    def on_alarm_change(self, envelope: dict[str, Any]) -> None:
        """Keep the active alarms per resident (from the alarm service's feed thread)."""
        alarm = envelope.get("alarm") or {}
        alarm_id = alarm.get("alarm_id")
        if not alarm_id:
            return
        with self._lock:
            if envelope.get("type") == "end" or alarm.get("state") == "resolved":
                self._active.pop(alarm_id, None)
            else:
                self._active[alarm_id] = alarm.get("resident_id")

    # --- reading --------------------------------------------------------------------------

    def _seen(self, resident_id: str, now: datetime) -> Seen:
        """The resident's state from every device bound to them now (room devices too)."""
        sensors: list[Sensor] = []
        presence: Literal["in_room", "absent"] | None = None
        movement: Literal["still", "moving"] | None = None
        in_bed = bed_since = level = dose = None
        for device_id in self.index.bindings:
            binding = self.index.binding_at(device_id, now)
            if binding is None or resident_id not in self.index.residents_of(binding):
                continue
            if binding.kind is DeviceKind.PRESENCE:
                continue  # it sees the staff, not the resident (docs/freed-hours.md)
            dev = self._devices.get(device_id, _Device())
            limit = timedelta(seconds=OFFLINE_AFTER_BEATS * binding.heartbeat_seconds)
            online = dev.last_seen is not None and now - dev.last_seen <= limit
            sensors.append(Sensor(device_id, binding.kind.value, online))
            if dev.presence is not None:
                presence = "in_room" if dev.presence else "absent"
                movement = "moving" if dev.movement == 2 else "still"
            if dev.in_bed is not None:
                in_bed, bed_since = dev.in_bed, dev.bed_since
            if dev.level is not None:
                level = dev.level
            if (
                dev.dose is not None
                and dev.dose_at
                and now - dev.dose_at < timedelta(hours=DOSE_HOURS)
            ):
                dose = dev.dose
        active = sum(1 for r in self._active.values() if r == resident_id)
        return Seen(
            sensors=sensors,
            presence=presence,
            movement=movement,
            in_bed=in_bed,
            out_of_bed_since=bed_since if in_bed is False else None,
            diaper_level=level,
            dose=dose,
            active_alarms=active,
        )

    def due_checks(self, resident_id: str, now: datetime) -> dict[str, Any] | None:
        """The care plan's checks this night (`checks_per_night`, spread evenly over the
        window), how many are past, how many were done digitally; None outside the night."""
        label = self.index.night_of(now)
        if label is None:
            return None
        start, end = self.index.night_bounds(label)
        planned = round(self.index.benefit_for(resident_id)["checks_per_night"])
        slot = (end - start) / planned if planned else None
        past = 0 if slot is None else sum(1 for k in range(planned) if start + slot * k <= now)
        done = sum(
            1
            for c in self.checks.between(start, now + timedelta(microseconds=1))
            if c.resident_id == resident_id
        )
        return {"planned": planned, "past": past, "done": done, "due": past > done}

    def round(self, ward: str | None = None, locale: Locale = "en") -> dict[str, Any]:
        """The round API's answer (docs/round.md): every resident, or one ward's."""
        now = self.clock.now()
        settings = self.index.site.round
        out: list[dict[str, Any]] = []
        with self._lock:
            for resident in self.index.site.residents:
                room_ward = self.index.room_ward.get(resident.room)
                if ward is not None and room_ward != ward:
                    continue
                seen = self._seen(resident.id, now)
                minutes = self.index.rules_for(resident.id).bed_exit.minutes
                word, reasons = verdict(seen, now, settings, minutes, locale)
                check = self._last_check.get(resident.id)
                out.append(
                    {
                        "resident_id": resident.id,
                        "room": resident.room,
                        "ward": room_ward,
                        "verdict": word,
                        "reasons": reasons,
                        "state": {
                            "presence": seen.presence,
                            "movement": seen.movement,
                            "in_bed": seen.in_bed,
                            "out_of_bed_since": rfc3339(seen.out_of_bed_since, "seconds")
                            if seen.out_of_bed_since
                            else None,
                            "diaper_level": seen.diaper_level,
                            "dose": seen.dose,
                            "active_alarms": seen.active_alarms,
                        },
                        "sensors": {
                            "online": [s.device_id for s in seen.sensors if s.online],
                            "offline": [s.device_id for s in seen.sensors if not s.online],
                        },
                        "last_check": check.to_json() if check else None,
                        "plan": self.due_checks(resident.id, now),
                    }
                )
        return {"at": rfc3339(now, "seconds"), "residents": out}

    def check(
        self, resident_id: str, actor: str, result: CheckResult, note: str | None = None
    ) -> dict[str, Any]:
        """Record a digital check, audited; NotFoundError for an unknown resident."""
        if resident_id not in self.index.residents:
            msg = f"no resident has id {resident_id!r}"
            raise NotFoundError(msg)
        check = DigitalCheck(resident_id, self.clock.now(), actor, result, note)
        self.checks.add(check)
        detail = {"resident_id": resident_id, "result": result, "note": note}
        self.alarms.record_access(actor, AUDIT_ACTION, detail)
        with self._lock:
            self._last_check[resident_id] = check
        _LOGGER.info("digital check of %s: %s", resident_id, result)
        return {"resident_id": resident_id, "last_check": check.to_json()}
