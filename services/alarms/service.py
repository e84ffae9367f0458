"""`AlarmService`: what the web app (and `carehub run`) call to see and change alarms.

It works over the store only, never over the rules engine's memory, so the web app may run
in the engine's process or in its own: an acknowledgement is a transaction on the shared
SQLite file either way. Listeners learn about changes by a thread that reads the store's
change log (`alarm_changes`) from where it left off, every `poll_s` or at once when `wake()`
is called (the rules service does, in-process, after each commit). One path for both cases,
and no broker credentials needed by the web app.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import services.alarms.lifecycle as lifecycle
from carehub.clock import Clock, SystemClock
from services.alarms.errors import AlarmNotFoundError
from services.alarms.model import Outcome
from services.alarms.store import AlarmStore, AuditEntry

_LOGGER = logging.getLogger(__name__)

POLL_S = 0.25
"""How often the change feed looks at the change log when nobody wakes it."""

Listener = Callable[[dict[str, Any]], None]


class AlarmService:
    """List, acknowledge and resolve alarms; subscribe to their changes."""

    def __init__(
        self, store: AlarmStore, clock: Clock | None = None, poll_s: float = POLL_S
    ) -> None:
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.poll_s = poll_s
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._cursor = 0
        self._owns_store = False

    @classmethod
    def open(cls, db: Path | str, clock: Clock | None = None) -> AlarmService:
        """A service over the alarm store in the SQLite file `db` (`CAREHUB_DB`); `close()`
        closes that store too."""
        service = cls(AlarmStore(db), clock)
        service._owns_store = True
        return service

    # --- reads ----------------------------------------------------------------------------

    def list_alarms(
        self, state: Literal["active", "all"] | str = "active", since: datetime | None = None
    ) -> list[dict[str, Any]]:
        """Alarms as JSON (docs/alarms.md), newest first: 'active' ones, or 'all' raised since."""
        if state not in ("active", "all"):
            msg = f"state {state!r} is not 'active' or 'all'"
            raise ValueError(msg)
        alarms = self.store.list_alarms(active_only=state == "active", since=since)
        return [a.to_json() for a in alarms]

    def get(self, alarm_id: str) -> dict[str, Any]:
        """One alarm's JSON; `AlarmNotFoundError` (404) if there is none."""
        alarm = self.store.get(alarm_id)
        if alarm is None:
            msg = f"no alarm has id {alarm_id!r}"
            raise AlarmNotFoundError(msg)
        return alarm.to_json()

    def raised_between(self, lo: datetime, hi: datetime) -> list[dict[str, Any]]:
        """Alarm JSON of alarms raised in [lo, hi): the reports' `alarms(lo, hi)` source."""
        return self.store.raised_between(lo, hi)

    def audit_log(self, alarm_id: str | None = None) -> list[AuditEntry]:
        """Who did what, when (oldest first)."""
        return self.store.audit_log(alarm_id)

    def changes_since(self, change_id: int) -> list[dict[str, Any]]:
        """Change envelopes after `change_id`, e.g. for an SSE client's Last-Event-ID."""
        return [c.envelope() for c in self.store.changes_after(change_id)]

    def record_access(self, actor: str, action: str, detail: dict[str, Any]) -> None:
        """Append a read of health data (a report, an export) to the audit log.

        Residents may ask who looked at their data; reads are logged like changes.
        """
        with self.store.transaction():
            self.store.add_audit(self.clock.now(), actor, action, None, detail)

    # --- changes by people ----------------------------------------------------------------

    def acknowledge(self, alarm_id: str, username: str) -> dict[str, Any]:
        """'I'm on it'. 404 if unknown, 409 (`InvalidTransitionError`) if not raised/escalated."""
        alarm = lifecycle.acknowledge(self.store, self.clock, alarm_id, username)
        self.wake()
        return alarm.to_json()

    def resolve(
        self, alarm_id: str, username: str, outcome: Outcome | str, note: str | None = None
    ) -> dict[str, Any]:
        """Close with an outcome. 404 if unknown, 409 if already resolved, ValueError if the
        outcome is not one of those in docs/alarms.md."""
        alarm = lifecycle.resolve(self.store, self.clock, alarm_id, username, outcome, note)
        self.wake()
        return alarm.to_json()

    # --- change feed ----------------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` (from the feed thread) with every change envelope from now on:
        {"type": "new"|"update"|"end", "alarm": {...}, "reason", "change_id", "at"[, "target"]}.
        Answers the function that unsubscribes."""
        with self._lock:
            if self._thread is None:
                self._cursor = self.store.last_change_seq()
                self._stopping.clear()
                self._thread = threading.Thread(
                    target=self._feed, name="alarm-change-feed", daemon=True
                )
                self._thread.start()
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def wake(self) -> None:
        """Look at the change log now (called after a commit in this process)."""
        self._wake.set()

    def _feed(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.poll_s)
            self._wake.clear()
            try:
                self.deliver()
            except Exception:
                _LOGGER.exception("alarm change feed failed; retrying")

    def deliver(self) -> int:
        """Hand every change not yet delivered to the listeners; answers how many."""
        changes = self.store.changes_after(self._cursor)
        with self._lock:
            listeners = list(self._listeners)
        for change in changes:
            envelope = change.envelope()
            for listener in listeners:
                try:
                    listener(envelope)
                except Exception:
                    _LOGGER.exception("alarm listener failed")
            self._cursor = change.seq
        return len(changes)

    def close(self) -> None:
        """Stop the feed thread; close the store if `open()` opened it."""
        self._stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=5)
        self._thread = None
        if self._owns_store:
            self.store.close()
