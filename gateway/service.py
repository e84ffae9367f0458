"""The gateway as a long-running MQTT consumer: receive, ingest, commit, acknowledge, publish.

The receive path (paho's network thread) only decodes and buffers; a commit thread flushes
the store every `commit_interval_s` (or sooner when `commit_batch` messages wait) and only
then acknowledges those messages to the broker and publishes their canonical events. With an
MQTT 5 persistent session (or a 3.1.1 clean_session=False one) the broker redelivers whatever
was not acknowledged when we died, and the pipeline's dedupe drops what was already stored.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import paho.mqtt.client as paho

from carehub.clock import Clock, SystemClock
from carehub.mqtt import ClientOptions, Protocol, close, connect_until_stopped
from carehub.settings import MqttTarget
from carehub.storewatch import StoreWatch
from gateway.metrics import Counters
from gateway.pipeline import Ingestor, IngestResult

_LOGGER = logging.getLogger(__name__)

STORE_RETRY_S = 1.0
"""Wait after a failed commit before trying again; the messages stay unacknowledged."""


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
    commit_batch: int = 500
    silence_check_s: float = 5.0
    ca_file: str | None = None


@dataclass(slots=True)
class _Pending:
    """A message received and not yet acknowledged; `result` once it is ingested."""

    generation: int
    mid: int
    qos: int
    topic: str
    payload: bytes
    received_at: datetime
    redelivered: bool
    result: IngestResult | None = None
    failed: bool = False
    """Ingest raised something other than a store error: a bug; left unacknowledged."""


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
        self._client: paho.Client | None = None
        self._generation = 0
        self._pending: list[_Pending] = []
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._aborted = False
        self._ready = threading.Event()
        self._threads: list[threading.Thread] = []
        self._next_silence_check = 0.0

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Connect (retrying in the background) and start committing."""
        self._stopping.clear()
        for name, target in (("connect", self._connect_loop), ("commit", self._commit_loop)):
            thread = threading.Thread(target=target, name=f"gateway-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Whether the first connection and its subscriptions are up within `timeout`."""
        return self._ready.wait(timeout)

    def stop(self) -> None:
        """Commit, acknowledge and publish what is pending, then disconnect."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=15)
        self._threads.clear()
        self._commit_pending()
        if self._client is not None:
            close(self._client)
            self._client = None

    def abort(self) -> None:
        """Die as a crash would: no commit, no acknowledgements, no DISCONNECT (for tests)."""
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

    # --- connection -----------------------------------------------------------------------

    def _options(self) -> ClientOptions:
        return ClientOptions(
            client_id=self.config.client_id,
            protocol=self.config.protocol,
            clean_start=False,
            session_expiry_s=self.config.session_expiry_s,
            manual_ack=True,
            ca_file=self.config.ca_file,
        )

    def _connect_loop(self) -> None:
        client = connect_until_stopped(
            self.config.target, self._options(), self._stopping, self._on_connect, "gateway"
        )
        if client is not None:
            self._client = client
            client.on_disconnect = self._on_disconnect

    def filters(self) -> list[str]:
        """The subscription filters, with `$share/{group}/` when load is shared."""
        plain = self.ingestor.topics.subscriptions()
        if self.config.shared_group:
            return [f"$share/{self.config.shared_group}/{f}" for f in plain]
        return plain

    def _on_connect(self, client: paho.Client) -> None:
        """After every (re)connect: a new ack generation, and subscribe again."""
        with self._cond:
            self._generation += 1
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self.counters.inc("carehub_gateway_mqtt_connects_total")
        client.subscribe([(f, 1) for f in self.filters()])

    def _on_subscribe(self, *_args: Any) -> None:
        self._ready.set()

    def _on_disconnect(self, _c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not self._stopping.is_set():
            self.counters.inc("carehub_gateway_mqtt_disconnects_total")
            _LOGGER.warning("gateway lost the broker (%s); paho reconnects", reason)

    # --- receive path ---------------------------------------------------------------------

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        """Queue for the commit thread; never raises into paho.

        Nothing here touches the store: a locked or full disk must not stall paho's network
        thread (keepalives, other messages), only the commit thread, which reports it.
        """
        try:
            item = _Pending(
                self._generation,
                msg.mid,
                msg.qos,
                msg.topic,
                bytes(msg.payload),
                self.clock.now(),
                bool(msg.dup),
            )
            with self._cond:
                self._pending.append(item)
                if len(self._pending) >= self.config.commit_batch:
                    self._cond.notify_all()
        except Exception:
            _LOGGER.exception("message on %s could not be handled", msg.topic)

    # --- commit path ----------------------------------------------------------------------

    def _commit_loop(self) -> None:
        while not self._stopping.is_set():
            with self._cond:
                if len(self._pending) < self.config.commit_batch:
                    self._cond.wait(self.config.commit_interval_s)
            if self._aborted:
                return
            try:
                self._commit_pending()
                self._maybe_check_silence()
            except Exception:
                _LOGGER.exception("gateway commit failed; will retry")
                self._stopping.wait(STORE_RETRY_S)

    def _commit_pending(self) -> None:
        """Flush the store, then acknowledge and publish exactly what that flush covered."""
        if self._aborted:
            return
        with self._cond:
            batch, self._pending = self._pending, []
            generation = self._generation
        if not batch:
            return
        try:
            with self.store_watch.commit():
                for item in batch:
                    if item.result is None and not item.failed:  # once, even across retries
                        self._ingest(item)
                self.ingestor.flush()
        except Exception:
            with self._cond:
                self._pending[:0] = batch  # keep order; acknowledge nothing yet
            raise
        client = self._client
        for item in batch:
            if item.result is not None:
                self.publish_result(item.result)
        for item in batch:
            if client is None or item.qos == 0 or item.failed:
                continue
            if item.generation != generation:
                continue  # that connection is gone; the broker redelivers, dedupe drops it
            self._ack(client, item.mid, item.qos)
        self.counters.inc("carehub_gateway_commits_total")

    def _ingest(self, item: _Pending) -> None:
        """Ingest one message; a store error propagates (the batch is retried), anything else
        is a bug in one message's path and must not hold up the others."""
        try:
            item.result = self.ingestor.ingest(
                item.topic, item.payload, item.received_at, redelivered=item.redelivered
            )
        except (sqlite3.Error, OSError):
            raise
        except Exception:
            item.failed = True
            self.counters.inc("carehub_gateway_ingest_errors_total")
            _LOGGER.exception("message on %s could not be handled", item.topic)

    def _ack(self, client: paho.Client, mid: int, qos: int) -> None:
        """PUBACK one message whose event is committed."""
        try:
            client.ack(mid, qos)
        except Exception:
            _LOGGER.warning("could not acknowledge message %s", mid, exc_info=True)

    def publish_result(self, result: IngestResult) -> None:
        """Publish a flushed result's canonical events (QoS 1) or its dead letter."""
        client = self._client
        if client is None:
            return
        prefix = self.ingestor.prefix
        for event in result.events:
            client.publish(event.topic(prefix), event.model_dump_json(), qos=1)
            self.counters.inc("carehub_gateway_events_published_total")
        if result.dead_letter is not None:
            topic = f"{prefix}/{self.ingestor.site}/deadletter"
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
        client = self._client
        return client is not None and client.is_connected()

    def metrics(self) -> dict[str, float]:
        """Pipeline and MQTT counters together, for /metrics."""
        return {**self.ingestor.metrics(), **self.counters.snapshot()}
