"""Provisional fall alarms while the store hangs or fails.

Normally an alarm exists only once its event and the alarm itself are committed (docs/alarms.md:
stored before published). When the store stops answering (another process holds the SQLite
lock, the disk is full) that order would leave a resident on the floor until the store
returns. So while messages wait longer than `EMERGENCY_AFTER_S` for their commit, the gateway
previews them (decode, validate, enrich: no dedupe, no store) and publishes a provisional
alarm for each fall that the fall rule would alarm on, retained on
`{prefix}/{site}/provisional/fall/{device_id}` (one per device: a sensor repeating its fall
every 30 s updates the same alarm). The web app shows these on the board, marked as not yet
stored; a nurse-call bridge may subscribe too.

When the store answers again the waiting messages are committed and go the normal way (the
rules engine raises, stores and publishes the real alarm); right after that commit the gateway
clears (empty retained message) each provisional alarm whose device has no message left
waiting. Nothing provisional is ever stored, counted in reports or acknowledged.

The same way, while the gateway's store is not answering at all, a provisional technical
alarm (`store_failing`) says so on `{prefix}/{site}/provisional/store/gateway`.

Retained messages outlive the process that published them: a gateway killed before `settle`
would leave a provisional fall on the broker for good. So a starting gateway clears every
provisional topic of its site (`clear_all`) before it announces anything itself. That loses
nothing: whatever the old process had announced is either stored by now (and the rules engine
raised the real alarm) or was never acknowledged, so the broker delivers it again and it is
announced again if the store still does not answer. The board also hides a provisional fall
whose device has a stored alarm active or resolved after it (services/web/provisional.py).
Times of provisional alarms are the hub's (`received_at`), like the rules engine's timers.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from carehub.events import CanonicalEvent, EventType
from carehub.site import DeviceKind, SiteIndex
from carehub.subscriber import Delivery
from carehub.topics import SiteTopics
from gateway.pipeline import Ingestor

_LOGGER = logging.getLogger(__name__)

EMERGENCY_AFTER_S = 2.0
"""A message this long without its commit means the store is not answering (commits take
milliseconds); then falls are announced provisionally."""

Publish = Callable[[str, bytes, bool], None]
"""publish(topic, payload, retain), QoS 1."""


class ProvisionalAlarms:
    """Previews waiting messages and keeps one provisional fall alarm per device."""

    def __init__(self, ingestor: Ingestor, index: SiteIndex, prefix: str = "carehub") -> None:
        self.ingestor = ingestor
        self.index = index
        self.prefix = prefix
        self.site = index.site.site
        self.published = 0
        """Provisional alarms published (first announcements and repeats)."""
        self._seen: set[int] = set()
        """Serials of the deliveries already previewed."""
        self._open: dict[str, dict[str, Any]] = {}
        """device id → its provisional alarm, while announced."""
        self._store_alarm: dict[str, Any] | None = None
        self._lock = threading.Lock()
        self._settles = 0
        self.monitored: Callable[[str], bool] | None = None
        """The rules engine's monitoring switch (`services.rules.monitoring`), when the
        hub sets it: a resident whose monitoring an admin switched off gets no provisional
        alarm either."""

    @property
    def settled(self) -> int:
        """How many times `settle` ran: taken before a look at what waits, and handed to
        `announce`, it tells whether a commit settled that list meanwhile."""
        with self._lock:
            return self._settles

    def announce(
        self, waiting: list[Delivery], publish: Publish, settled: int | None = None
    ) -> int:
        """Preview the deliveries not seen yet; publish a provisional alarm for each fall the
        fall rule would alarm on. Answers how many alarms were published.

        `settled`: the value of `settled` from before `waiting` was read. If a commit has
        settled since, `waiting` may hold deliveries stored a moment ago: announcing them
        would leave a provisional alarm that no later commit clears (seen in CI: the stored
        fall replaced on the board by its provisional copy). Nothing is announced then; the
        next look sees what still waits."""
        count = 0
        with self._lock:
            if settled is not None and settled != self._settles:
                return 0
            for item in waiting:
                if item.serial in self._seen:
                    continue
                self._seen.add(item.serial)
                events = self.ingestor.preview(
                    item.topic, item.payload, item.received_at, retained=item.retained
                )
                for event in events:
                    alarm = self._alarm_for(event)
                    if alarm is None:
                        continue
                    topic = SiteTopics(self.prefix, self.site).provisional_fall(event.device_id)
                    publish(topic, json.dumps(alarm).encode(), True)
                    count += 1
        self.published += count
        if count:
            _LOGGER.warning(
                "store not answering: %s provisional fall alarm(s) announced before storing",
                count,
            )
        return count

    def _alarm_for(self, event: CanonicalEvent) -> dict[str, Any] | None:
        if event.type != EventType.FALL:
            return None
        cfg = self.index.rules_for(event.resident_id).fall
        if not cfg.enabled or float(event.data.get("confidence", 1.0)) < cfg.min_confidence:
            return None
        if cfg.night_only and not self.index.is_night(event.ts):
            return None
        if (
            event.resident_id
            and self.monitored is not None
            and not self.monitored(event.resident_id)
        ):
            return None
        now = _iso(event.received_at)
        alarm = self._open.get(event.device_id)
        if alarm is None:
            alarm = {
                "alarm_id": f"provisional-{event.device_id}",
                "site": self.site,
                "rule": "fall",
                "kind": "fall",
                "priority": str(cfg.priority.value),
                "state": "raised",
                "provisional": True,
                "resident_id": event.resident_id,
                "room": event.room,
                "device_id": event.device_id,
                "raised_at": now,
                "last_seen_at": now,
                "count": 0,
                "reason": "store not answering: announced before it is stored",
            }
            self._open[event.device_id] = alarm
        alarm["count"] += 1
        alarm["last_seen_at"] = max(alarm["last_seen_at"], now)
        return alarm

    def settle(self, still_waiting: list[Delivery], publish: Publish) -> int:
        """After a commit: clear each provisional alarm whose device has nothing waiting any
        more (its messages are stored, and the real alarm follows from the rules engine).
        Answers how many were cleared."""
        with self._lock:
            self._settles += 1
            alive = {item.serial for item in still_waiting}
            self._seen &= alive
            waiting_devices = {
                route.device_id
                for item in still_waiting
                if (route := self.ingestor.topics.route(item.topic)) is not None
            }
            done = [d for d in self._open if d not in waiting_devices]
            for device_id in done:
                del self._open[device_id]
                publish(SiteTopics(self.prefix, self.site).provisional_fall(device_id), b"", True)
        return len(done)

    def clear_all(self, publish: Publish) -> int:
        """Clear (empty retained message) the provisional fall topic of every fall device of
        the site and the `store_failing` topic: what an earlier gateway process announced and
        could not settle. Call once at start, before `announce`. Answers how many topics."""
        topics = SiteTopics(self.prefix, self.site)
        devices = sorted(
            d for d, spans in self.index.bindings.items() if spans[0].kind is DeviceKind.FALL
        )
        with self._lock:
            for device_id in devices:
                if device_id not in self._open:
                    publish(topics.provisional_fall(device_id), b"", True)
            if self._store_alarm is None:
                publish(topics.provisional_store(), b"", True)
        return len(devices) + 1

    def store_state(self, state: str, at: datetime, publish: Publish) -> bool:
        """A technical alarm on `{prefix}/{site}/provisional/store/gateway` while the
        gateway's store is not answering (`state` is its StoreWatch's), cleared when it is
        'ok' again: the one alarm about storage that cannot itself wait for storage. Answers
        whether it is announced."""
        topic = SiteTopics(self.prefix, self.site).provisional_store()
        with self._lock:
            if state != "ok" and self._store_alarm is None:
                self._store_alarm = {
                    "alarm_id": "provisional-store-gateway",
                    "site": self.site,
                    "rule": "store_failing",
                    "kind": "technical",
                    "priority": "high",
                    "state": "raised",
                    "provisional": True,
                    "resident_id": None,
                    "room": None,
                    "device_id": None,
                    "raised_at": _iso(at),
                    "last_seen_at": _iso(at),
                    "count": 1,
                    "reason": state,
                }
                publish(topic, json.dumps(self._store_alarm).encode(), True)
                _LOGGER.error("technical alarm: the gateway's %s", state)
            elif state == "ok" and self._store_alarm is not None:
                self._store_alarm = None
                publish(topic, b"", True)
                _LOGGER.warning("the gateway's store answers again")
            return self._store_alarm is not None

    @property
    def engaged(self) -> bool:
        """Whether anything was previewed or announced that `settle` must look at."""
        with self._lock:
            return bool(self._open or self._seen)

    @property
    def open(self) -> int:
        """Provisional alarms announced and not cleared yet."""
        with self._lock:
            return len(self._open)


def _iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")
