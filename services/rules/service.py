"""The rules service: stored events in from the hand-over log, committed alarms out on MQTT.

The gateway appends every stored event to the hand-over log in the SQLite file, in the
transaction that stores it (carehub/handover.py). We read it urgent-first, apply a batch to the
engine (one savepoint for the batch, and one per event only when an event fails, so a bad event
cannot sink the batch) and delete the rows we
handled in the same transaction as the alarms they caused, then publish the committed alarm
changes. So each stored event reaches the engine exactly once across a kill -9 of either
part, and no broker queue can drop one under a flood (docs/handover.md).

It runs on `carehub.subscriber.DurableSubscriber`, for its broker connection (alarms are
published on it) and its commit thread. That thread reads the log when woken: by the gateway
in this process right after its commit (`wake`), by a canonical event on MQTT (only a hint:
the events themselves are read from the log), or every `poll_s`. It also fires due timers
every `tick_s` and prunes hourly.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from carehub import failpoints
from carehub import handover as handover_log
from carehub.clock import Clock, SystemClock
from carehub.errors import ConfigError
from carehub.events import CanonicalEvent
from carehub.mqtt import Protocol
from carehub.settings import MqttTarget, Settings
from carehub.site import SiteIndex
from carehub.storewatch import StoreWatch
from carehub.subscriber import Delivery, DurableSubscriber, SubscriptionConfig
from carehub.topics import SiteTopics
from services.alarms.notify import WebhookNotifier
from services.alarms.service import AlarmService
from services.alarms.store import AlarmStore
from services.rules.engine import EngineConfig, RulesEngine
from services.rules.monitoring import MonitoringSwitch
from services.rules.publisher import AlarmPublisher

_LOGGER = logging.getLogger(__name__)

PRUNE_EVERY = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class RulesConfig:
    """How the rules service talks to the broker and how often it looks at its timers."""

    target: MqttTarget
    prefix: str = "carehub"
    client_id: str | None = None
    """Default `carehub-rules-{site}`; stable, because the broker keeps our session by it."""
    protocol: Protocol = "5"
    session_expiry_s: int = 86_400
    tick_s: float = 0.5
    """Real seconds between timer checks (timers themselves are in clock time)."""
    poll_s: float = 0.05
    """Real seconds between looks at the hand-over log when nothing wakes us."""
    batch: int = 100
    """Hand-over rows per transaction; a fall arriving meanwhile waits for one batch."""
    ca_file: str | None = None
    hints: bool = True
    """Subscribe to the canonical events as wake-up hints. Off when the gateway runs in this
    process and wakes us itself: a second MQTT stream of every event would only cost CPU."""
    engine: EngineConfig = field(default_factory=EngineConfig)


class RulesService:
    """Runs a `RulesEngine` behind an MQTT subscription; start() and stop()."""

    def __init__(
        self,
        config: RulesConfig,
        index: SiteIndex,
        store: AlarmStore,
        clock: Clock | None = None,
        alarms: AlarmService | None = None,
    ) -> None:
        self.config = config
        self.index = index
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.alarms = alarms
        """An in-process AlarmService to wake after each commit (optional)."""
        self.site = index.site.site
        # the admin's per-resident switch, read from the shared file (the web app writes it)
        self.monitoring = MonitoringSwitch(store.path, self.site)
        self.engine = RulesEngine(index, store, self.clock, config.engine, self.monitoring)
        target = index.site.escalation.target
        self.notifier = (
            WebhookNotifier(target.url) if target.kind == "webhook" and target.url else None
        )
        self.publisher = AlarmPublisher(store, config.prefix, self.site, target, self.notifier)
        self._next_prune = self.clock.now()
        self._next_tick = 0.0
        self.handled = 0
        self.batch_retries = 0
        """Batches applied again event by event because one of their events failed."""
        self.store_watch = StoreWatch()
        """Whether alarm-store commits are answered; the heartbeat reports it."""
        self._owns_store = False
        self.subscriber = DurableSubscriber(
            SubscriptionConfig(
                target=config.target,
                client_id=config.client_id or f"carehub-rules-{self.site}",
                filters=(self.events_filter,) if config.hints else (),
                protocol=config.protocol,
                session_expiry_s=config.session_expiry_s,
                commit_interval_s=min(config.poll_s, config.tick_s),
                commit_batch=config.batch,
                ca_file=config.ca_file,
                wake_on_first=True,
            ),
            self._commit,
            name="rules",
            clock=self.clock,
            tick=self._tick,
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        index: SiteIndex,
        clock: Clock | None = None,
        alarms: AlarmService | None = None,
        **overrides: Any,
    ) -> RulesService:
        """Build from `CAREHUB_*` settings: broker URL, prefix, CA file and the SQLite file.

        `overrides` are `RulesConfig` fields (e.g. protocol="3.1.1" for the embedded broker).
        The store is opened on `settings.db`, or shared with `alarms` when given.
        """
        target = settings.mqtt_target("rules")
        if target is None:
            msg = "CAREHUB_MQTT_URL is not set. The rules service needs a broker."
            raise ConfigError(msg)
        overrides.setdefault("poll_s", settings.handover_poll_s)
        config = RulesConfig(
            target=target,
            prefix=settings.mqtt_prefix,
            ca_file=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None,
            **overrides,
        )
        if alarms is not None:
            return cls(config, index, alarms.store, clock, alarms)
        service = cls(config, index, AlarmStore(settings.db), clock)
        service._owns_store = True
        return service

    @property
    def events_filter(self) -> str:
        """The subscription: every canonical event of this site, as a wake-up hint only."""
        return SiteTopics(self.config.prefix, self.site).events_filter()

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Arm supervision timers, connect (retrying in the background), start working."""
        handover_log.create(self.store.sql)
        self.engine.start()
        self.subscriber.start()

    def wake(self) -> None:
        """Read the hand-over log now: the gateway in this process has just committed."""
        self.subscriber.wake()

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Whether the connection and subscription are up within `timeout`."""
        return self.subscriber.wait_ready(timeout)

    def stop(self) -> None:
        """Apply, commit, publish and acknowledge what is queued, then disconnect."""
        self.subscriber.stop()
        if self.notifier is not None:
            self.notifier.close()
        self.monitoring.close()
        if self._owns_store:
            self.store.close()

    def abort(self) -> None:
        """Die as a crash would: no commit of the queue, no acknowledgements (for tests)."""
        self.subscriber.abort()

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up (for /healthz)."""
        return self.subscriber.connected

    def metrics(self) -> dict[str, float]:
        """Flat counters for /metrics: events handled, alarm publishes, alarms by state."""
        out: dict[str, float] = {
            "carehub_rules_events_total": float(self.handled),
            "carehub_rules_batch_retries_total": float(self.batch_retries),
            "carehub_rules_mqtt_hints_total": float(self.subscriber.received),
            "carehub_rules_alarm_publishes_total": float(self.publisher.published),
            **handover_log.backlog(self.store.sql).metrics(self.clock.now()),
        }
        for state, n in self.store.counts_by_state().items():
            out[f'carehub_alarms{{state="{state}"}}'] = float(n)
        if self.notifier is not None:
            out["carehub_rules_webhook_delivered_total"] = float(self.notifier.delivered)
            out["carehub_rules_webhook_failed_total"] = float(self.notifier.failed)
        return out

    # --- work (on the subscriber's commit thread) ------------------------------------------

    def _commit(self, _hints: list[Delivery]) -> None:
        """Canonical events on MQTT only say that something was stored: read the log. The
        subscriber acknowledges the hints after this returns."""
        self._drain()

    def _tick(self) -> None:
        """After every round: the hand-over log (woken or polled), timers (silence, missed
        doses, escalation, reminders) every `tick_s`, and the hourly prune."""
        self._drain()
        self._timers_if_due()
        now = self.clock.now()
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_EVERY
            self.engine.prune()

    def _timers_if_due(self) -> None:
        if time.monotonic() >= self._next_tick:
            with self.store_watch.commit():
                self.engine.tick()
            self._next_tick = time.monotonic() + self.config.tick_s
            self._after_commit()

    def _drain(self) -> None:
        """Batches until the log is empty. Each batch is read afresh, so a fall stored while
        a batch of heartbeats is applied goes next; timers still fire on time meanwhile."""
        while True:
            with self.store_watch.commit():
                handled = self._apply_handover()
            if not handled:
                return
            failpoints.hit("rules.after_commit")
            self._after_commit()
            if handled < self.config.batch:
                return
            self._timers_if_due()

    def _after_commit(self) -> None:
        try:
            self.publisher.publish_pending(self.subscriber.client)
        except Exception:
            _LOGGER.exception("publishing alarms failed; will retry from the change log")
        if self.alarms is not None:
            self.alarms.wake()

    def _apply_all(self, events: list[CanonicalEvent]) -> None:
        """Apply a batch inside the open transaction: at once under one savepoint, and only
        if an event fails, again one savepoint per event, skipping the one that fails (a bad
        event must not sink the batch). Two statements a batch instead of two an event."""
        try:
            with self.store.savepoint():
                for event in events:
                    self.engine.apply(event)
            return
        except sqlite3.Error:
            raise  # the store is in trouble: the whole batch waits
        except Exception:  # noqa: BLE001 - which event failed is found and logged below
            self.batch_retries += 1
        for event in events:
            try:
                with self.store.savepoint():
                    self.engine.apply(event)
            except sqlite3.Error:
                raise
            except Exception:
                _LOGGER.exception("event %s could not be applied; skipped", event.event_id)

    def _apply_handover(self) -> int:
        """Apply one batch of hand-over rows and delete them, in one transaction with the
        alarm changes they cause; answers how many rows it handled."""
        started = time.perf_counter()
        sql = self.store.sql
        with self.store.transaction():
            rows = handover_log.read(sql, self.config.batch)
            if not rows:
                return 0
            events: list[CanonicalEvent] = []
            for row in rows:
                try:
                    events.append(row.event())
                except ValidationError as err:
                    _LOGGER.warning(
                        "hand-over row %s is not a canonical event (%s errors); dropped",
                        row.seq,
                        err.error_count(),
                    )
            self._apply_all(events)
            handover_log.delete(sql, [row.seq for row in rows])
            failpoints.hit("rules.before_commit")
        self.handled += len(rows)
        _LOGGER.debug(
            "applied %s events in %.1f ms", len(rows), 1e3 * (time.perf_counter() - started)
        )
        return len(rows)
