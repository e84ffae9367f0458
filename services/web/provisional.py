"""The board's view of alarms: the stored ones, plus the gateway's provisional fall alarms.

While the store does not answer, the gateway announces falls on
`{prefix}/{site}/provisional/fall/{device_id}` before anything can be stored
(gateway/emergency.py). This port lays them over the alarm service for the board: in the
active list and as `new`/`update`/`end` changes on the live stream. They cannot be
acknowledged or resolved (409): nothing about them can be recorded until the store answers,
and then the stored alarm replaces them.

A provisional alarm is hidden once the store has spoken about its device: a stored alarm of
the same rule and device that is active (nothing shown twice), or that was resolved at or
after the provisional one was last seen (docs/alarms.md, "Provisional alarms"). So a
provisional fall left retained on the broker by a gateway that died never comes back on the
board after its stored alarm was resolved. The active list reads the store for that; the
live stream, on the broker's thread, must not touch the store (it may be the one hanging)
and checks against the stored alarm changes it has seen since its first listener.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from carehub.errors import ConflictError
from carehub.topics import SiteTopics
from services.alarms.model import Outcome
from services.web.ports import AlarmsPort

_LOGGER = logging.getLogger(__name__)

Listener = Callable[[dict[str, Any]], None]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
STORED_LOOKBACK = timedelta(days=1)
"""How far before a provisional alarm a stored alarm about the same fall may have been raised."""


class BoardAlarms:
    """An `AlarmsPort`: the alarm service's alarms and the provisional ones, merged."""

    def __init__(self, inner: AlarmsPort, prefix: str, site: str) -> None:
        self.inner = inner
        self._topic_head = SiteTopics(prefix, site).provisional_head()
        self._provisional: dict[str, dict[str, Any]] = {}
        """topic → provisional alarm JSON, while announced."""
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._stored: dict[tuple[Any, Any], dict[str, Any]] = {}
        """(rule, device) → the latest stored alarm change seen since the first board
        listener subscribed: what the live stream checks a provisional alarm against."""
        self._inner_off: Callable[[], None] | None = None

    # --- the MQTT side (a `_BrokerWatch` listener) ----------------------------------------

    def on_message(self, topic: str, payload: bytes) -> None:
        """A provisional alarm announced, repeated or cleared (empty payload)."""
        if not topic.startswith(self._topic_head):
            return
        if not payload:
            with self._lock:
                alarm = self._provisional.pop(topic, None)
            if alarm is not None:
                self._emit({"type": "end", "alarm": {**alarm, "state": "resolved"}})
            return
        try:
            alarm = json.loads(payload)
            if not isinstance(alarm, dict) or not str(alarm.get("alarm_id", "")):
                raise ValueError("not an alarm")
        except ValueError:
            _LOGGER.warning("ignoring a provisional alarm that is not one, on %s", topic)
            return
        alarm["provisional"] = True
        with self._lock:
            known = topic in self._provisional
            self._provisional[topic] = alarm
        # never the store here: this is the broker's thread, and the store may be the one
        # that hangs (that is what made the alarm provisional); the changes seen will do
        with self._lock:
            seen = list(self._stored.values())
        if self._settled([alarm], seen):
            _LOGGER.info("provisional alarm on %s is stored already: not shown", topic)
            return
        self._emit({"type": "update" if known else "new", "alarm": alarm})

    def _note_stored(self, envelope: dict[str, Any]) -> None:
        """Remember the latest stored alarm per (rule, device) from the alarm service's feed."""
        alarm = envelope.get("alarm")
        if isinstance(alarm, dict) and not alarm.get("provisional"):
            with self._lock:
                self._stored[(alarm.get("rule"), alarm.get("device_id"))] = alarm

    def _emit(self, envelope: dict[str, Any]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(envelope)

    # --- AlarmsPort -----------------------------------------------------------------------

    def list_alarms(self, state: str, since: datetime | None) -> list[dict[str, Any]]:
        """The stored alarms; with `active`, the provisional ones not yet stored as well."""
        stored = self.inner.list_alarms(state, since)
        if state != "active":
            return stored
        with self._lock:
            provisional = list(self._provisional.values())
        if not provisional:
            return stored
        settled = self._settled(provisional, self._stored_since(provisional))
        return [*stored, *(a for a in provisional if id(a) not in settled)]

    def _stored_since(self, provisional: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Stored alarms, active or not, that may be about these provisional ones: raised
        up to a day before the earliest of them (a fall repeating on an open alarm counts
        on it for hours) or later."""
        first = min(_time(a, "raised_at") for a in provisional)
        try:
            return self.inner.list_alarms("all", first - STORED_LOOKBACK)
        except Exception:  # noqa: BLE001 - the store that made them provisional: show all
            _LOGGER.warning("stored alarms unreadable; every provisional alarm shown")
            return []

    @staticmethod
    def _settled(provisional: list[dict[str, Any]], stored: list[dict[str, Any]]) -> set[int]:
        """`id()`s of the provisional alarms a stored alarm has taken over: same rule and
        device, and active, or resolved at or after the provisional one was last seen."""
        by_key: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
        for s in stored:
            by_key.setdefault((s.get("rule"), s.get("device_id")), []).append(s)
        settled: set[int] = set()
        for a in provisional:
            seen = _time(a, "last_seen_at")
            for s in by_key.get((a.get("rule"), a.get("device_id")), []):
                if s.get("state") == "closed":
                    continue  # imported history (docs/freed-hours.md): it took over nothing
                if s.get("state") != "resolved" or _time(s, "resolved_at") >= seen:
                    settled.add(id(a))
                    break
        return settled

    def get(self, alarm_id: str) -> dict[str, Any]:
        """One stored alarm (a provisional one is listed, not looked up)."""
        return self.inner.get(alarm_id)

    def acknowledge(self, alarm_id: str, username: str) -> dict[str, Any]:
        """Stored alarms only: a provisional one has nowhere to record who took it."""
        self._refuse_provisional(alarm_id)
        return self.inner.acknowledge(alarm_id, username)

    def resolve(
        self, alarm_id: str, username: str, outcome: Outcome, note: str | None
    ) -> dict[str, Any]:
        """Stored alarms only (see acknowledge)."""
        self._refuse_provisional(alarm_id)
        return self.inner.resolve(alarm_id, username, outcome, note)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """The alarm service's changes and the provisional ones, to one listener."""
        with self._lock:
            self._listeners.append(listener)
            first = self._inner_off is None
            if first:
                self._inner_off = lambda: None
        if first:
            self._inner_off = self.inner.subscribe(self._note_stored)
        inner_off = self.inner.subscribe(listener)

        def unsubscribe() -> None:
            inner_off()
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def record_access(self, actor: str, action: str, detail: dict[str, Any]) -> None:
        """The alarm service's audit log."""
        self.inner.record_access(actor, action, detail)

    def _refuse_provisional(self, alarm_id: str) -> None:
        with self._lock:
            ids = {a["alarm_id"] for a in self._provisional.values()}
        if alarm_id in ids:
            msg = (
                "this alarm is not stored yet (the hub's store is not answering): go to the"
                " resident; it can be acknowledged once it is stored"
            )
            raise ConflictError(msg)

    def __getattr__(self, name: str) -> Any:
        """Everything else (audit log, escalation, ...) is the alarm service's."""
        return getattr(self.inner, name)


def _time(alarm: dict[str, Any], key: str) -> datetime:
    """An RFC 3339 time of an alarm's JSON (`raised_at` when the key is missing); the far
    past when neither parses, so a malformed provisional alarm is shown rather than lost."""
    raw = alarm.get(key) or alarm.get("raised_at")
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        return EPOCH
