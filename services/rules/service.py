"""The rules service: MQTT canonical events in, committed alarms out, on the broker.

paho's network thread only queues messages. One worker thread takes a batch, applies it to
the engine in one transaction (one savepoint per event, so a bad event cannot sink the
batch), commits, fires due timers, publishes committed changes and only then acknowledges
the batch (`manual_ack`). The subscription is a persistent session (MQTT 5
`clean_start=False` + session expiry; 3.1.1 `clean_session=False`), so events that arrive
while we are down, or that we received but never acknowledged, are delivered again, and the
engine's idempotency on `event_id` drops what was already applied.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import paho.mqtt.client as paho
from pydantic import ValidationError

from carehub.clock import Clock, SystemClock
from carehub.errors import ConfigError
from carehub.mqtt import ClientOptions, Protocol, close, connect_until_stopped
from carehub.settings import MqttTarget, Settings
from carehub.site import SiteIndex
from carehub.storewatch import StoreWatch
from gateway.events import CanonicalEvent
from services.alarms.notify import WebhookNotifier
from services.alarms.service import AlarmService
from services.alarms.store import AlarmStore
from services.privacy.monitoring import MonitoringSwitch
from services.rules.engine import EngineConfig, RulesEngine
from services.rules.publisher import AlarmPublisher

_LOGGER = logging.getLogger(__name__)

STORE_RETRY_S = 1.0
"""Wait after a failed commit; the batch stays unacknowledged and is applied again."""
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


@dataclass(frozen=True, slots=True)
class _Pending:
    generation: int
    mid: int
    qos: int
    topic: str
    payload: bytes


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
        self._client: paho.Client | None = None
        self._generation = 0
        self._queue: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._aborted = False
        self._ready = threading.Event()
        self._threads: list[threading.Thread] = []
        self._next_prune = self.clock.now()
        self.handled = 0
        self.store_watch = StoreWatch()
        """Whether alarm-store commits are answered; the heartbeat reports it."""
        self._owns_store = False

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
        return f"{self.config.prefix}/{self.site}/events/#"

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Arm supervision timers, connect (retrying in the background), start working."""
        self._stopping.clear()
        self.engine.start()
        for name, target in (("connect", self._connect_loop), ("worker", self._work_loop)):
            thread = threading.Thread(target=target, name=f"rules-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Whether the connection and subscription are up within `timeout`."""
        return self._ready.wait(timeout)

    def stop(self) -> None:
        """Apply, commit, publish and acknowledge what is queued, then disconnect."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=15)
        self._threads.clear()
        if not self._aborted:
            try:
                self._step()
            except Exception:
                _LOGGER.exception("last rules step failed; the broker redelivers what is unacked")
        if self._client is not None:
            close(self._client)
            self._client = None
        if self.notifier is not None:
            self.notifier.close()
        self.monitoring.close()
        if self._owns_store:
            self.store.close()

    def abort(self) -> None:
        """Die as a crash would: no commit of the queue, no acknowledgements (for tests)."""
        self._aborted = True
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        client = self._client
        if client is not None:
            client.on_message = None
            client.loop_stop()
            sock = client.socket()
            if sock is not None:
                sock.close()
        for thread in self._threads:
            thread.join(timeout=15)
        self._threads.clear()

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up (for /healthz)."""
        client = self._client
        return client is not None and client.is_connected()

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

    # --- connection -----------------------------------------------------------------------

    def _options(self) -> ClientOptions:
        return ClientOptions(
            client_id=self.config.client_id or f"carehub-rules-{self.site}",
            protocol=self.config.protocol,
            clean_start=False,
            session_expiry_s=self.config.session_expiry_s,
            manual_ack=True,
            ca_file=self.config.ca_file,
        )

    def _connect_loop(self) -> None:
        client = connect_until_stopped(
            self.config.target, self._options(), self._stopping, self._on_connect, "rules"
        )
        if client is not None:
            self._client = client
            client.on_disconnect = self._on_disconnect

    def _on_connect(self, client: paho.Client) -> None:
        """After every (re)connect: a new acknowledgement generation, and subscribe again."""
        with self._cond:
            self._generation += 1
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.subscribe(self.events_filter, 1)

    def _on_subscribe(self, *_args: Any) -> None:
        self._ready.set()
        with self._cond:
            self._cond.notify_all()

    def _on_disconnect(self, _c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not self._stopping.is_set():
            _LOGGER.warning("rules lost the broker (%s); paho reconnects", reason)

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        """Queue for the worker; never raises into paho."""
        try:
            with self._cond:
                self._queue.append(
                    _Pending(self._generation, msg.mid, msg.qos, msg.topic, bytes(msg.payload))
                )
                # Wake the worker when work arrives on an empty queue (it waits only then), so
                # an event waits for the previous batch, never for `tick_s`: a fall alarm in
                # milliseconds. Under load the batches grow by themselves while it works.
                if len(self._queue) == 1 or len(self._queue) >= self.config.batch:
                    self._cond.notify_all()
        except Exception:
            _LOGGER.exception("message on %s could not be queued", msg.topic)

    # --- work -----------------------------------------------------------------------------

    def _work_loop(self) -> None:
        while not self._stopping.is_set():
            with self._cond:
                if not self._queue:
                    self._cond.wait(self.config.tick_s)
            if self._aborted:
                return
            try:
                self._step()
            except Exception:
                _LOGGER.exception("rules step failed; retrying")
                self._stopping.wait(STORE_RETRY_S)

    def _step(self) -> None:
        """One round: apply a batch, fire timers, commit, publish, acknowledge."""
        with self._cond:
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), self.config.batch))]
            generation = self._generation
        try:
            with self.store_watch.commit():
                if batch:
                    self._apply(batch)
                self.engine.tick()
        except Exception:
            with self._cond:
                self._queue.extendleft(reversed(batch))  # not acknowledged: keep and retry
            raise
        now = self.clock.now()
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_EVERY
            self.engine.prune()
        client = self._client
        try:
            self.publisher.publish_pending(client)
        except Exception:
            _LOGGER.exception("publishing alarms failed; will retry from the change log")
        if self.alarms is not None:
            self.alarms.wake()
        if client is not None:
            for item in batch:
                if item.qos and item.generation == generation:
                    self._ack(client, item)

    def _apply(self, batch: list[_Pending]) -> None:
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

    def _ack(self, client: paho.Client, item: _Pending) -> None:
        try:
            client.ack(item.mid, item.qos)
        except Exception:
            _LOGGER.warning("could not acknowledge message %s", item.mid, exc_info=True)
