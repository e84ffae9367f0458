"""The gateway as a long-running MQTT consumer: receive, ingest, commit, acknowledge, publish.

The receive path (paho's network thread) only buffers; the commit thread of a
`carehub.subscriber.DurableSubscriber` ingests and flushes the store every
`commit_interval_s` (or sooner when `commit_batch` messages wait), publishes the canonical
events of that flush and only then acknowledges those messages to the broker. With an MQTT 5
persistent session (or a 3.1.1 clean_session=False one) the broker redelivers whatever was not
acknowledged when we died, and the pipeline's dedupe drops what was already stored.

The rules engine does not depend on the published events: the store's flush also commits each
new event to the hand-over log, which the rules engine reads (docs/handover.md). The watchdog
raises `handover_stalled` when that log stops draining.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from carehub import failpoints
from carehub.clock import Clock, SystemClock
from carehub.mqtt import SESSIONS_LOST, Protocol
from carehub.settings import MqttTarget
from carehub.site import Binding
from carehub.storewatch import StoreWatch
from carehub.subscriber import Delivery, DurableSubscriber, SubscriptionConfig
from carehub.topics import SELFTEST_DEVICE, SiteTopics
from gateway.budget import RateBudget
from gateway.codecs import codec_for
from gateway.diskwatch import DiskWatch
from gateway.emergency import EMERGENCY_AFTER_S, ProvisionalAlarms
from gateway.handover import CHECK_EVERY_S, STALL_AFTER_S, HandoverWatch, HandsOver
from gateway.metrics import Counters
from gateway.pipeline import STORE_ERRORS, Ingestor, IngestResult

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """How the gateway talks to the broker and how it batches commits."""

    target: MqttTarget
    prefix: str = "carehub"
    client_id: str = "carehub-gateway"
    protocol: Protocol = "5"
    session_expiry_s: int = 86_400
    shared_group: str | None = None
    """MQTT 5 shared subscription group: instances in one group split the load."""
    commit_interval_s: float = 0.05
    commit_batch: int = 200
    silence_check_s: float = 5.0
    ca_file: str | None = None
    emergency_after_s: float = EMERGENCY_AFTER_S
    """Announce falls provisionally once messages wait this long for their commit."""
    handover_db: Path | None = None
    """The SQLite file with the hand-over log to watch (None: no rules engine reads one)."""
    handover_stall_s: float = STALL_AFTER_S
    """The oldest unhandled hand-over row older than this raises `handover_stalled`."""
    disk_path: Path | None = None
    """Watch free space where this file lives (gateway/diskwatch.py); None: not watched."""
    disk_min_free_bytes: int = 1024 * 2**20


class GatewayService:
    """Runs an `Ingestor` behind an MQTT subscription, in background threads."""

    def __init__(
        self, ingestor: Ingestor, config: GatewayConfig, clock: Clock | None = None
    ) -> None:
        if config.shared_group and config.protocol != "5":
            msg = "shared subscriptions need MQTT 5"
            raise ValueError(msg)
        self.ingestor = ingestor
        self.config = config
        self.clock: Clock = clock or SystemClock()
        self.counters = Counters()
        self.store_watch = StoreWatch()
        """Whether commits are answered; the heartbeat reports it."""
        self.subscriber = DurableSubscriber(
            SubscriptionConfig(
                target=config.target,
                client_id=config.client_id,
                filters=tuple(self.filters()),
                protocol=config.protocol,
                session_expiry_s=config.session_expiry_s,
                commit_interval_s=config.commit_interval_s,
                commit_batch=config.commit_batch,
                ca_file=config.ca_file,
            ),
            self._commit,
            name="gateway",
            clock=self.clock,
            tick=self._maybe_check_silence,
            urgent=self.urgent,
            shed=self.shed,
        )
        self._next_silence_check = 0.0
        self.provisional = ProvisionalAlarms(ingestor, ingestor.index, config.prefix)
        self.budget = RateBudget()
        """Per-device rate budgets, on received (the injected clock's) time."""
        self._watching = threading.Event()
        self._watchdog: threading.Thread | None = None
        self.handover_watch = (
            HandoverWatch(config.handover_db, ingestor.site, config.prefix, config.handover_stall_s)
            if config.handover_db is not None
            else None
        )
        self._next_handover_check = 0.0
        self.disk_watch = (
            DiskWatch(config.disk_path, config.disk_min_free_bytes) if config.disk_path else None
        )
        self.on_handover: Callable[[], None] | None = None
        """Called right after a commit that handed events over: the in-process rules
        engine's wake-up (app/hub.py wires it in the one-process layout)."""

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Connect (retrying in the background) and start committing."""
        self.subscriber.start()
        self._watching.clear()
        self._watchdog = threading.Thread(target=self._watch, name="gateway-watchdog", daemon=True)
        self._watchdog.start()

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Whether the first connection and its subscriptions are up within `timeout`."""
        return self.subscriber.wait_ready(timeout)

    def stop(self) -> None:
        """Commit, acknowledge and publish what is pending, then disconnect."""
        self._stop_watchdog()
        self.subscriber.stop()
        if self.handover_watch is not None:
            self.handover_watch.close()

    def abort(self) -> None:
        """Die as a crash would: no commit, no acknowledgements, no DISCONNECT (for tests)."""
        self._stop_watchdog()
        self.subscriber.abort()

    def _stop_watchdog(self) -> None:
        self._watching.set()
        if self._watchdog is not None:
            self._watchdog.join(timeout=5)
            self._watchdog = None

    def _watch(self) -> None:
        """While the commit thread is stuck in the store, announce falls provisionally
        (gateway/emergency.py). Its own thread: the commit thread is the one that hangs.
        First, once connected, clear what an earlier process announced and left retained."""
        cleared = False
        while not self._watching.wait(0.25):
            if not cleared and self.connected:
                try:
                    self.provisional.clear_all(self._publish)
                    cleared = True
                except Exception:
                    _LOGGER.exception("clearing old provisional alarms failed; trying again")
                    continue
            try:
                self.provisional.store_state(self.storage_state(), self.clock.now(), self._publish)
                settled = self.provisional.settled
                waiting = self.subscriber.unsettled(self.config.emergency_after_s)
                if waiting:
                    n = self.provisional.announce(waiting, self._publish, settled)
                    self.counters.inc("carehub_gateway_provisional_alarms_total", n)
                if self.handover_watch is not None and time.monotonic() >= (
                    self._next_handover_check
                ):
                    self._next_handover_check = time.monotonic() + CHECK_EVERY_S
                    self.handover_watch.check(self._publish, self.connected)
            except Exception:
                _LOGGER.exception("provisional alarms failed; the normal path goes on")

    def storage_state(self) -> str:
        """'ok', or why the store cannot (or soon cannot) take commits: it hangs, or the disk
        is nearly full. Either raises the `store_failing` technical alarm."""
        state = self.store_watch.state()
        if state == "ok" and self.disk_watch is not None:
            state = self.disk_watch.state()
        return state

    def _publish(self, topic: str, payload: bytes, retain: bool) -> None:
        client = self.subscriber.client
        if client is not None:
            client.publish(topic, payload, qos=1, retain=retain)

    def filters(self) -> list[str]:
        """The subscription filters, with `$share/{group}/` when load is shared."""
        plain = self.ingestor.topics.subscriptions()
        if self.config.shared_group:
            return [f"$share/{self.config.shared_group}/{f}" for f in plain]
        return plain

    # --- commit path ----------------------------------------------------------------------

    def _commit(self, batch: list[Delivery]) -> None:
        """Ingest and flush the store, then publish what that flush covered; the subscriber
        acknowledges the batch after this returns."""
        with self.store_watch.commit():
            for item in batch:
                if item.result is None and not item.failed:  # once, even across retries
                    self._ingest(item)
                    self._hand_over_unstored(item)
            self.ingestor.flush()
        failpoints.hit("gateway.after_commit")
        for item in batch:
            if item.result is not None:
                self.publish_result(item.result)
        failpoints.hit("gateway.after_publish")
        # what was announced provisionally is stored now; the rules engine takes over
        if self.provisional.engaged:  # only after an outage: no copy of the queue per commit
            self.provisional.settle(self.subscriber.queued(), self._publish)

    def urgent(self, topic: str, payload: bytes) -> bool:
        """Whether a message takes the urgent lane: a device uplink its codec's sniff calls a
        fall or a fault, or an admin's self-test. Runs on paho's network thread for every
        message: topic → device → model → a bytes search, no decoding."""
        route = self.ingestor.topics.route(topic)
        if route is None:
            return False
        if route.leaf == "selftest":
            return True
        if route.leaf != "up" or route.device_id is None:
            return False
        binding = self.ingestor.index.device(route.device_id)
        codec = codec_for(binding.model) if binding is not None else None
        return codec is not None and codec.urgent is not None and codec.urgent(payload)

    def shed(self, item: Delivery) -> bool:
        """On arrival (paho's network thread): spend the device's rate budget once, and
        refuse what a flood sends past it that would only be counted: routine, and its dead
        letter sampled out this minute. Such a message is acknowledged at once and never
        queued, so a flooding device costs the commit thread nothing and a fall behind it in
        the broker's queue waits less (docs/handover.md, "Urgent lane"). Everything else
        carries the verdict in `item.note` to its commit."""
        route = self.ingestor.topics.route(item.topic)
        if item.retained or route is None or route.leaf != "up" or route.device_id is None:
            return False
        binding = self.ingestor.index.device(route.device_id)
        if binding is None:
            return False
        within, starts = self.budget.take(binding, item.received_at)
        item.note = (binding, within, starts)
        if within or starts:
            return False
        return self.ingestor.routine_only(
            binding, item.payload, item.received_at
        ) and self.ingestor.shed_rate_limited(binding.device_id, item.received_at)

    def _ingest(self, item: Delivery) -> None:
        """Ingest one message; a store error propagates (the batch is retried), anything else
        is a bug in one message's path and must not hold up the others."""
        try:
            binding, within, starts = self._spend_budget(item)
            result = None
            if binding is not None and not within:
                result = self.ingestor.rate_limited(
                    item.topic, item.payload, item.received_at, binding.device_id
                )
            if result is None:
                result = self.ingestor.ingest(
                    item.topic,
                    item.payload,
                    item.received_at,
                    redelivered=item.redelivered,
                    retained=item.retained,
                )
            if binding is not None and starts:
                fault = self.ingestor.flooding(binding, item.received_at)
                result = replace(result, events=(*result.events, fault))
            item.result = result
        except STORE_ERRORS:
            raise
        except Exception:
            item.failed = True
            self.counters.inc("carehub_gateway_ingest_errors_total")
            _LOGGER.exception("message on %s could not be handled", item.topic)

    def _spend_budget(self, item: Delivery) -> tuple[Binding | None, bool, bool]:
        """The device's rate budget (gateway/budget.py) for a device uplink: (its binding,
        within budget, whether a flooding episode starts). No binding: not budgeted (status,
        self-test, unknown topics and devices: cheap, or refused anyway; retained replays:
        skipped anyway)."""
        if item.note is not None:  # taken on arrival (`shed`)
            binding, within, starts = item.note
            return binding, within, starts
        route = self.ingestor.topics.route(item.topic)
        if item.retained or route is None or route.leaf != "up" or route.device_id is None:
            return None, True, False
        binding = self.ingestor.index.device(route.device_id)
        if binding is None:
            return None, True, False
        within, starts = self.budget.take(binding, item.received_at)
        return binding, within, starts

    def _hand_over_unstored(self, item: Delivery) -> None:
        """A self-test is published, never stored; the rules engine still gets it through the
        hand-over log, with the batch's flush (docs/handover.md)."""
        result = item.result
        store = self.ingestor.store
        if (
            result is not None
            and result.accepted
            and result.device_id == SELFTEST_DEVICE
            and isinstance(store, HandsOver)
        ):
            store.hand_over(result.events)

    def publish_result(self, result: IngestResult) -> None:
        """Wake the in-process rules engine, then publish a flushed result's canonical events
        (QoS 1) or its dead letter. The rules engine reads the hand-over log, not these: they
        are for other consumers (central ingest, Grafana, the web app's self-test)."""
        if result.events and self.on_handover is not None:
            self.on_handover()
        client = self.subscriber.client
        if client is None:
            return
        prefix = self.ingestor.prefix
        for event in result.events:
            client.publish(event.topic(prefix), event.model_dump_json(), qos=1)
            self.counters.inc("carehub_gateway_events_published_total")
        if result.dead_letter is not None:
            topic = SiteTopics(prefix, self.ingestor.site).deadletter()
            client.publish(topic, json.dumps(result.dead_letter.to_json()), qos=1)

    def _maybe_check_silence(self) -> None:
        now = time.monotonic()
        if now < self._next_silence_check:
            return
        self._next_silence_check = now + self.config.silence_check_s
        self.check_silence()

    def check_silence(self) -> list[str]:
        """Mark devices silent for 3 x heartbeat offline (by the injected clock)."""
        return self.ingestor.check_silence(self.clock.now())

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up (for the heartbeat and /healthz)."""
        return self.subscriber.connected

    def metrics(self) -> dict[str, float]:
        """Pipeline and MQTT counters together, for /metrics."""
        sub = self.subscriber
        return {
            **self.ingestor.metrics(),
            **self.counters.snapshot(),
            "carehub_gateway_mqtt_connects_total": float(sub.connects),
            "carehub_gateway_mqtt_disconnects_total": float(sub.disconnects),
            "carehub_gateway_commits_total": float(sub.commits),
            "carehub_gateway_urgent_commits_total": float(sub.urgent_commits),
            "carehub_gateway_shed_on_arrival_total": float(sub.shed),
            "carehub_gateway_mqtt_sessions_lost_total": float(
                SESSIONS_LOST.get(sub.config.client_id, 0)
            ),
            **(self.handover_watch.metrics() if self.handover_watch is not None else {}),
        }
