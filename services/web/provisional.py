"""The board's view of alarms: the stored ones, plus the gateway's provisional fall alarms.

While the store does not answer, the gateway announces falls on
`{prefix}/{site}/provisional/fall/{device_id}` before anything can be stored
(gateway/emergency.py). This port lays them over the alarm service for the board: in the
active list (unless a stored alarm for that device and rule is already active, so nothing is
shown twice) and as `new`/`update`/`end` changes on the live stream. They cannot be
acknowledged or resolved (409): nothing about them can be recorded until the store answers,
and then the stored alarm replaces them.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from carehub.errors import ConflictError
from carehub.topics import SiteTopics
from services.alarms.model import Outcome
from services.web.ports import AlarmsPort

_LOGGER = logging.getLogger(__name__)

Listener = Callable[[dict[str, Any]], None]


class BoardAlarms:
    """An `AlarmsPort`: the alarm service's alarms and the provisional ones, merged."""

    def __init__(self, inner: AlarmsPort, prefix: str, site: str) -> None:
        self.inner = inner
        self._topic_head = SiteTopics(prefix, site).provisional_head()
        self._provisional: dict[str, dict[str, Any]] = {}
        """topic → provisional alarm JSON, while announced."""
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

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
        self._emit({"type": "update" if known else "new", "alarm": alarm})

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
        covered = {(a.get("rule"), a.get("device_id")) for a in stored}
        with self._lock:
            extra = [
                a
                for a in self._provisional.values()
                if (a.get("rule"), a.get("device_id")) not in covered
            ]
        return [*stored, *extra]

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
