"""A persistent MQTT subscription whose messages are acknowledged only once committed.

paho's network thread only queues what arrives. A commit thread hands the queue to the
owner's `commit(batch)` every `commit_interval_s` (sooner when `commit_batch` messages wait)
and then acknowledges (`manual_ack`) the messages of that batch. If `commit` raises, nothing
is acknowledged and the batch goes back to the front of the queue for the next try. With the
persistent session this sets up (MQTT 5 `clean_start` off + session expiry, 3.1.1
`clean_session` off) the broker delivers again whatever we never acknowledged, after a crash or
a restart, so nothing is lost; the owner's dedupe, or idempotent writes, absorb the repeats.

Urgent lane: the owner may classify each message on arrival (`urgent(topic, payload)`, cheap:
it runs on paho's network thread). An urgent message wakes the commit thread at once and is
committed and acknowledged in a batch of its own, ahead of the routine messages that arrived
before it; the routine messages of its topic that wait go with it, so one topic's messages
keep their order (docs/handover.md, "Urgent lane"). Acknowledgements then leave in commit
order, not arrival order: Mosquitto takes a PUBACK by packet id in any order.

The gateway (SQLite or InfluxDB), the rules engine (its alarm store) and the municipality's
central ingest (InfluxDB) run on it.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import paho.mqtt.client as paho

from carehub.clock import Clock, SystemClock
from carehub.mqtt import (
    ClientOptions,
    Protocol,
    close,
    connect_until_stopped,
    release_sockets,
    taken_over,
)
from carehub.settings import MqttTarget

_LOGGER = logging.getLogger(__name__)

_SERIALS = itertools.count(1)

COMMIT_RETRY_S = 1.0
"""Wait after a failed commit before trying again; the messages stay unacknowledged."""


@dataclass(frozen=True, slots=True)
class SubscriptionConfig:
    """Where to subscribe, under which session, and how commits are batched."""

    target: MqttTarget
    client_id: str
    """Stable: the broker keeps the session (and what we did not acknowledge) by it."""
    filters: tuple[str, ...]
    """Topic filters, all subscribed with QoS 1."""
    protocol: Protocol = "5"
    session_expiry_s: int = 86_400
    """How long the broker keeps the session (and queues for it) while we are away."""
    commit_interval_s: float = 0.05
    commit_batch: int = 500
    """At most this many routine messages a commit: the urgent lane goes between two, so a
    fall waits for one batch, never for a whole backlog (docs/handover.md, "Urgent lane")."""
    ca_file: str | None = None
    wake_on_first: bool = False
    """Commit as soon as a message arrives on an empty queue instead of after the interval
    (the rules engine: an event waits for the previous batch, never for the interval; under
    load the batches grow by themselves while a commit runs)."""

    def client_options(self) -> ClientOptions:
        """A persistent session with manual acknowledgement; with no filters (a connection
        only to publish on) a clean one, which also drops what an earlier run subscribed."""
        return ClientOptions(
            client_id=self.client_id,
            protocol=self.protocol,
            clean_start=not self.filters,
            session_expiry_s=self.session_expiry_s if self.filters else 0,
            manual_ack=bool(self.filters),
            ca_file=self.ca_file,
        )


@dataclass(slots=True)
class Delivery:
    """A message received and not yet acknowledged."""

    generation: int
    """The connection it came on: an acknowledgement is only valid on that connection."""
    mid: int
    qos: int
    topic: str
    payload: bytes
    received_at: datetime
    redelivered: bool
    retained: bool = False
    """The broker's retain flag: a stored message replayed on (re)subscribing, not a new one
    (docs/devices.md, "Retained messages")."""
    result: Any = None
    """What the owner made of it; None until handled, so a retried commit handles it once."""
    failed: bool = False
    """The owner could not handle it (a bug, not the store): never acknowledged, so the
    broker delivers it again on the next connection."""
    arrived: float = field(default_factory=time.monotonic)
    """Monotonic time of arrival: how long it has waited for its commit."""
    serial: int = field(default_factory=lambda: next(_SERIALS))
    """Unique in this process (ids of objects are reused once they are freed)."""
    urgent: bool = False
    """Committed in the urgent lane (classified urgent, or waiting ahead of one on its topic)."""
    note: Any = None
    """What the owner's `shed` check learnt on arrival, for its commit (the gateway's rate
    budget verdict, taken once per message)."""


Commit = Callable[[list[Delivery]], None]
"""Handle every delivery not yet handled and make the batch durable; raise if it is not."""

Classify = Callable[[str, bytes], bool]
"""Whether a message (topic, payload) may be alarm-worthy: it then takes the urgent lane."""

Shed = Callable[[Delivery], bool]
"""Whether a message is refused on arrival, with nothing to store: it is acknowledged at once
and never queued (the gateway's flooding device past its budget and its dead-letter sample;
gateway/service.py). Runs on paho's network thread, so it must be cheap."""


class DurableSubscriber:
    """Runs `commit` behind a persistent QoS 1 subscription, in background threads."""

    def __init__(
        self,
        config: SubscriptionConfig,
        commit: Commit,
        *,
        name: str,
        clock: Clock | None = None,
        tick: Callable[[], object] | None = None,
        urgent: Classify | None = None,
        shed: Shed | None = None,
    ) -> None:
        """`name` labels threads and logs; `tick` runs on the commit thread after each round
        (the gateway's silence check); `urgent` classifies arrivals for the urgent lane;
        `shed` refuses arrivals that need no commit."""
        self.config = config
        self.name = name
        self.clock: Clock = clock or SystemClock()
        self._commit = commit
        self._tick = tick
        self.connects = 0
        self.disconnects = 0
        self.commits = 0
        """Batches committed and acknowledged."""
        self._client: paho.Client | None = None
        self._generation = 0
        self._pending: list[Delivery] = []
        self._urgent: list[Delivery] = []
        """The urgent lane: committed before `_pending`, in batches of their own."""
        self._routine_topics: Counter[str] = Counter()
        """Messages of each topic in `_pending`: an urgent arrival takes them along."""
        self._classify = urgent
        self._shed = shed
        self.received = 0
        """Messages that arrived (on any connection)."""
        self.shed = 0
        """Messages refused on arrival and acknowledged without a commit."""
        self.urgent_commits = 0
        """Urgent-lane batches committed and acknowledged."""
        self._in_commit: list[Delivery] = []
        """The batch the commit thread is working on (a store that hangs holds it there)."""
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._aborted = False
        self._failing = False
        self._ready = threading.Event()
        self._woken = False
        self._threads: list[threading.Thread] = []

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Connect (retrying in the background) and start committing."""
        self._stopping.clear()
        for name, target in (("connect", self._connect_loop), ("commit", self._commit_loop)):
            thread = threading.Thread(target=target, name=f"{self.name}-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Whether the first connection and its subscriptions are up within `timeout`."""
        return self._ready.wait(timeout)

    def stop(self) -> None:
        """Commit and acknowledge what is pending, then disconnect. A commit that fails now
        leaves its messages unacknowledged: the broker keeps them for the next start."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=15)
        self._threads.clear()
        try:
            while self.commit_pending():
                pass
        except Exception as err:  # noqa: BLE001 - logged; the broker redelivers the batch
            _LOGGER.warning(
                "%s stopping with %s messages unacknowledged (%s); the broker keeps them",
                self.name,
                self.pending(),
                err,
            )
        if self._client is not None:
            close(self._client)
            self._client = None

    def abort(self) -> None:
        """Die as a crash would: no commit, no acknowledgements, no DISCONNECT (for tests)."""
        self._aborted = True
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        # The connect thread may still be between CONNACK and storing the client: join it
        # first, or a client connected a moment ago would be left open (and its sockets).
        for thread in self._threads:
            if thread.name.endswith("-connect"):
                thread.join(timeout=15)
        client = self._client
        if client is not None:
            client.on_message = None
            client.loop_stop()
            release_sockets(client)  # the connection's socket too, without a DISCONNECT
        for thread in self._threads:
            thread.join(timeout=15)
        self._threads.clear()

    @property
    def client(self) -> paho.Client | None:
        """The connected client (None before the first connection), for publishing."""
        return self._client

    @property
    def connected(self) -> bool:
        """Whether the broker connection is up (for heartbeats and /healthz)."""
        client = self._client
        return client is not None and client.is_connected()

    def wake(self) -> None:
        """Run a round (commit, then `tick`) now instead of after the interval: the owner
        learned of work that does not arrive by MQTT (the rules engine's hand-over log)."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def pending(self) -> int:
        """Messages received and not yet acknowledged."""
        with self._cond:
            return len(self._urgent) + len(self._pending)

    def queued(self) -> list[Delivery]:
        """Messages waiting for the next commit (not the batch being committed)."""
        with self._cond:
            return [*self._urgent, *self._pending]

    def unsettled(self, older_than_s: float) -> list[Delivery]:
        """Every message not yet committed, oldest first, when the oldest of them has waited
        longer than `older_than_s` (the store hangs or fails); else none. Commits normally
        take milliseconds, so this is how the owner learns, while the commit thread is stuck
        in the store, that messages wait (the gateway's provisional alarms)."""
        with self._cond:  # polled often: look at the oldest before copying anything
            heads = [q[0].arrived for q in (self._in_commit, self._urgent, self._pending) if q]
            if not heads or time.monotonic() - min(heads) <= older_than_s:
                return []
            return sorted([*self._in_commit, *self._urgent, *self._pending], key=_arrival)

    # --- connection -----------------------------------------------------------------------

    def _connect_loop(self) -> None:
        client = connect_until_stopped(
            self.config.target,
            self.config.client_options(),
            self._stopping,
            self._on_connect,
            self.name,
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
        self.connects += 1
        if not self.config.filters:
            self._ready.set()
            return
        client.subscribe([(f, 1) for f in self.config.filters])

    def _on_subscribe(self, *_args: Any) -> None:
        self._ready.set()

    def _on_disconnect(self, _c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if self._stopping.is_set():
            return
        self.disconnects += 1
        if taken_over(reason):
            _LOGGER.error(
                "%s was thrown off: another client connected as %r (two parts or processes "
                "with one broker login? each part needs its own, docs/deployment.md)",
                self.name,
                self.config.client_id,
            )
            return
        _LOGGER.warning("%s lost the broker (%s); paho reconnects", self.name, reason)

    # --- receive path ---------------------------------------------------------------------

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        """Queue for the commit thread; never raises into paho.

        Nothing here touches a store: a locked or full disk, or an InfluxDB that is away, must
        not stall paho's network thread (keepalives, other messages), only the commit thread.
        """
        self.received += 1
        try:
            item = Delivery(
                self._generation,
                msg.mid,
                msg.qos,
                msg.topic,
                bytes(msg.payload),
                self.clock.now(),
                bool(msg.dup),
                bool(msg.retain),
            )
            if self._shed is not None and self._refused(item):
                self.shed += 1
                self.acknowledge(_c, item)  # nothing to commit: a redelivery would cost again
                return
            urgent = self._is_urgent(item)
            with self._cond:
                if urgent:
                    self._queue_urgent(item)
                    self._cond.notify_all()
                    return
                self._pending.append(item)
                self._routine_topics[item.topic] += 1
                first = self.config.wake_on_first and len(self._pending) == 1
                if first or len(self._pending) >= self.config.commit_batch:
                    self._cond.notify_all()
        except Exception:
            _LOGGER.exception("message on %s could not be queued", msg.topic)

    def _refused(self, item: Delivery) -> bool:
        assert self._shed is not None
        try:
            return self._shed(item)
        except Exception:  # a bug in the check must not lose the message: it is queued
            _LOGGER.exception("could not check a message on %s", item.topic)
            return False

    def _is_urgent(self, item: Delivery) -> bool:
        if self._classify is None:
            return False
        try:
            return self._classify(item.topic, item.payload)
        except Exception:  # a classifier bug must not lose the message: it stays routine
            _LOGGER.exception("could not classify a message on %s", item.topic)
            return False

    def _queue_urgent(self, item: Delivery) -> None:
        """Into the urgent lane, after the routine messages of its topic (held `_cond`)."""
        if self._routine_topics.pop(item.topic, 0):
            keep: list[Delivery] = []
            for waiting in self._pending:
                if waiting.topic == item.topic:
                    waiting.urgent = True
                    self._urgent.append(waiting)
                else:
                    keep.append(waiting)
            self._pending = keep
        item.urgent = True
        self._urgent.append(item)

    # --- commit path ----------------------------------------------------------------------

    def _commit_loop(self) -> None:
        while not self._stopping.is_set():
            with self._cond:
                waiting = len(self._pending)
                if (
                    not self._woken
                    and not self._urgent
                    and (
                        not waiting
                        or (not self.config.wake_on_first and waiting < self.config.commit_batch)
                    )
                ):
                    self._cond.wait(self.config.commit_interval_s)
                self._woken = False
            if self._aborted:
                return
            try:
                self.commit_pending()
                if self._tick is not None:
                    self._tick()
            except Exception:
                # the first failure with its traceback; the heartbeat says it goes on
                if not self._failing:
                    _LOGGER.exception("%s commit failed; retrying, nothing acknowledged", self.name)
                self._failing = True
                self._stopping.wait(COMMIT_RETRY_S)
                continue
            if self._failing:
                _LOGGER.info("%s commits again", self.name)
            self._failing = False

    def commit_pending(self) -> bool:
        """Commit the urgent lane, then at most `commit_batch` routine messages, and
        acknowledge exactly what each commit covered; answers whether routine messages still
        wait. One routine batch a call, so an urgent arrival (and the owner's tick) waits for
        one batch, however long the backlog behind it."""
        self._commit_lane(urgent=True)
        return self._commit_lane(urgent=False)

    def _commit_lane(self, *, urgent: bool) -> bool:
        """One commit of a lane; answers whether that lane still has messages waiting."""
        if self._aborted:
            return False
        with self._cond:
            if urgent:
                batch, self._urgent = self._urgent, []
            else:
                cut = self.config.commit_batch
                batch, self._pending = self._pending[:cut], self._pending[cut:]
                if self._pending:
                    for item in batch:
                        self._routine_topics[item.topic] -= 1
                    self._routine_topics += Counter()  # drops the topics now at zero
                else:
                    self._routine_topics.clear()
            self._in_commit = batch
            generation = self._generation
            more = bool(self._pending) and not urgent
        if not batch:
            return False
        try:
            self._commit(batch)
        except Exception:
            with self._cond:
                if urgent:
                    self._urgent[:0] = batch  # keep order; acknowledge nothing yet
                else:
                    self._pending[:0] = batch
                    self._routine_topics = Counter(d.topic for d in self._pending)
                self._in_commit = []
            raise
        with self._cond:
            self._in_commit = []
        if self._aborted:
            return False  # died during the commit: a crash acknowledges nothing
        client = self._client
        for item in batch:
            if client is None or item.qos == 0 or item.failed:
                continue
            if item.generation != generation:
                continue  # that connection is gone; the broker redelivers, dedupe drops it
            self.acknowledge(client, item)
        self.commits += 1
        if urgent:
            self.urgent_commits += 1
        return more

    def acknowledge(self, client: paho.Client, item: Delivery) -> None:
        """PUBACK one message whose batch is committed."""
        try:
            client.ack(item.mid, item.qos)
        except Exception:
            _LOGGER.warning("could not acknowledge message %s", item.mid, exc_info=True)


def _arrival(item: Delivery) -> float:
    return item.arrived
