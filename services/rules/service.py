"""The rules service: MQTT canonical events in, committed alarms out, on the broker.

It runs on `carehub.subscriber.DurableSubscriber`, as the gateway does: paho's network thread
only queues messages; the commit thread applies each batch to the engine in one transaction
(one savepoint per event, so a bad event cannot sink the batch), fires due timers, commits,
publishes committed changes and only then acknowledges the batch (`manual_ack`). It wakes as
soon as an event arrives on an empty queue (`wake_on_first`), so a fall waits for the previous
batch, never for a timer. The subscription is a persistent session, so events that arrive
while we are down, or that we received but never acknowledged, are delivered again, and the
engine's idempotency on `event_id` drops what was already applied.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

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
    batch: int = 500
    ca_file: str | None = None
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
        self.store_watch = StoreWatch()
        """Whether alarm-store commits are answered; the heartbeat reports it."""
        self._owns_store = False
        self.subscriber = DurableSubscriber(
            SubscriptionConfig(
                target=config.target,
                client_id=config.client_id or f"carehub-rules-{self.site}",
                filters=(self.events_filter,),
                protocol=config.protocol,
                session_expiry_s=config.session_expiry_s,
                commit_interval_s=config.tick_s,
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
        target = settings.mqtt_target()
        if target is None:
            msg = "CAREHUB_MQTT_URL is not set. The rules service needs a broker."
            raise ConfigError(msg)
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
        """The subscription: every canonical event of this site."""
        return SiteTopics(self.config.prefix, self.site).events_filter()

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Arm supervision timers, connect (retrying in the background), start working."""
        self.engine.start()
        self.subscriber.start()

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
            "carehub_rules_alarm_publishes_total": float(self.publisher.published),
        }
        for state, n in self.store.counts_by_state().items():
            out[f'carehub_alarms{{state="{state}"}}'] = float(n)
        if self.notifier is not None:
            out["carehub_rules_webhook_delivered_total"] = float(self.notifier.delivered)
            out["carehub_rules_webhook_failed_total"] = float(self.notifier.failed)
        return out

    # --- work (on the subscriber's commit thread) ------------------------------------------

    def _commit(self, batch: list[Delivery]) -> None:
        """Apply a batch and the due timers in one transaction, then publish what changed;
        the subscriber acknowledges the batch after this returns."""
        with self.store_watch.commit():
            self._apply(batch)
            self.engine.tick()
        self._next_tick = time.monotonic() + self.config.tick_s
        self._after_commit()

    def _tick(self) -> None:
        """Timers (silence, missed doses, escalation, reminders) when no batch fired them for
        `tick_s`; and the hourly prune."""
        if time.monotonic() >= self._next_tick:
            with self.store_watch.commit():
                self.engine.tick()
            self._next_tick = time.monotonic() + self.config.tick_s
            self._after_commit()
        now = self.clock.now()
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_EVERY
            self.engine.prune()

    def _after_commit(self) -> None:
        try:
            self.publisher.publish_pending(self.subscriber.client)
        except Exception:
            _LOGGER.exception("publishing alarms failed; will retry from the change log")
        if self.alarms is not None:
            self.alarms.wake()

    def _apply(self, batch: list[Delivery]) -> None:
        started = time.perf_counter()
        with self.store.transaction():
            for item in batch:
                try:
                    event = CanonicalEvent.model_validate_json(item.payload)
                except ValidationError as err:
                    _LOGGER.warning(
                        "not a canonical event on %s (%s errors); dropped",
                        item.topic,
                        err.error_count(),
                    )
                    continue
                try:
                    with self.store.savepoint():
                        self.engine.apply(event)
                except sqlite3.Error:
                    raise  # the store is in trouble: the whole batch waits
                except Exception:
                    _LOGGER.exception("event %s could not be applied; skipped", event.event_id)
        self.handled += len(batch)
        _LOGGER.debug(
            "applied %s events in %.1f ms", len(batch), 1e3 * (time.perf_counter() - started)
        )
