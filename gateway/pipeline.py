"""The ingest pipeline: topic → device → decode → validate → dedupe → enrich → store.

One `Ingestor` serves every way messages arrive — the MQTT consumer, the vendor webhook, the
simulator's backfill and `carehub import` — so a message is judged the same whichever door it
came through. It is thread-safe; `flush()` makes everything accepted so far durable, and only
then may the caller acknowledge the messages to whoever sent them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from carehub.events import KIND_TYPES, CanonicalEvent, EventType, event_id_for, utc
from carehub.site import Binding, SiteIndex
from carehub.timefmt import rfc3339
from carehub.topics import SELFTEST_DEVICE, Route, TopicMap
from gateway.budget import ROUTINE
from gateway.codecs import (
    Codec,
    CodecError,
    DecodeContext,
    Decoded,
    Reason,
    codec_for,
    registry,
)
from gateway.codecs.base import check_size
from gateway.deadletters import DeadLetterSampler
from gateway.errors import StoreUnavailableError
from gateway.metrics import Counters
from gateway.selftest import selftest_event
from gateway.skew import ClockSkew
from gateway.store.base import (
    DeadLetter,
    DeviceState,
    EventStore,
    SeqState,
    StatusSource,
)

_LOGGER = logging.getLogger(__name__)

FUTURE_TOLERANCE = timedelta(hours=24)
"""docs/devices.md: a device time more than this ahead of the gateway's is refused."""
EARLIEST_TS = datetime(2000, 1, 1, tzinfo=UTC)
"""A device time before this is a clock that was never set, not history."""
SEQLESS_DUPLICATE_WINDOW = timedelta(seconds=10)
"""Identical payloads from a device without seq this close together are one redelivery."""
MAX_SEQ_GAP = 10_000
"""A forward seq jump larger than this is a counter reset, not 10,000 lost messages."""
LATE_WINDOW = 100
"""A seq at most this far behind the last one is a late arrival; further back, a reset."""
SILENCE_HEARTBEATS = 3
"""docs/alarms.md: a device is offline after three heartbeat intervals without a message."""
DEFAULT_FLUSH_EVERY = 500
"""Flush by itself after this many messages, so a caller that never flushes stays bounded."""


class IngestOutcome(StrEnum):
    """What became of a message."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    STATUS = "status"
    """An online/offline status message: device state updated, no event."""
    SKIPPED = "skipped"
    """A retained uplink the broker replayed on subscribing: an old message, not a new one
    (docs/devices.md, "Retained messages"); nothing stored, nothing dead-lettered."""


@dataclass(frozen=True, slots=True)
class IngestResult:
    """The verdict on one message, with the events to publish once flushed."""

    outcome: IngestOutcome
    events: tuple[CanonicalEvent, ...] = ()
    reason: str | None = None
    detail: str | None = None
    device_id: str | None = None
    dead_letter: DeadLetter | None = None
    duplicate_of: str | None = None
    """For a duplicate: the event id stored the first time."""

    @property
    def accepted(self) -> bool:
        """Whether new events were stored."""
        return self.outcome is IngestOutcome.ACCEPTED

    @property
    def duplicate(self) -> bool:
        """Whether it was a redelivery of a stored message."""
        return self.outcome is IngestOutcome.DUPLICATE

    @property
    def skipped(self) -> bool:
        """Whether it was a retained replay, skipped."""
        return self.outcome is IngestOutcome.SKIPPED

    @property
    def rejected(self) -> bool:
        """Whether it was dead-lettered."""
        return self.outcome is IngestOutcome.REJECTED


def _decoded_digest(decoded: list[Decoded]) -> str:
    """A digest of what a message says, independent of its JSON spelling."""
    body = [
        [d.type.value, d.ts.isoformat() if d.ts else None, d.seq, d.key, d.data] for d in decoded
    ]
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


STORE_ERRORS = (sqlite3.Error, OSError, StoreUnavailableError)
"""Failures of the store (locked, disk full, InfluxDB away), as opposed to a bad message."""


def _validate(binding: Binding, decoded: list[Decoded], received_at: datetime) -> None:
    """Types the device's kind may send, and times a real clock could give."""
    allowed = KIND_TYPES[binding.kind]
    for d in decoded:
        if d.type not in allowed:
            msg = f"type {d.type.value!r} is not one a {binding.kind.value} device sends"
            raise CodecError(Reason.TYPE_NOT_ALLOWED, msg)
        ts = d.ts or received_at
        if ts - received_at > FUTURE_TOLERANCE:
            msg = f"ts {rfc3339(ts, 'auto')} is more than 24 h after received_at"
            raise CodecError(Reason.FUTURE_TS, msg)
        if ts < EARLIEST_TS:
            raise CodecError(Reason.IMPOSSIBLE_VALUE, f"ts {rfc3339(ts, 'auto')}: clock not set")


def _raw_digest(payload: bytes) -> str:
    return hashlib.blake2b(payload, digest_size=16).hexdigest()


class Ingestor:
    """Turns raw device messages into stored, enriched canonical events (docs/mqtt.md,
    docs/devices.md)."""

    def __init__(
        self,
        site_index: SiteIndex,
        store: EventStore,
        prefix: str = "carehub",
        *,
        flush_every: int = DEFAULT_FLUSH_EVERY,
        count_gaps: bool = True,
    ) -> None:
        """`count_gaps=False` for instances sharing a subscription: each sees only a share of
        a device's messages, so its own seq view would report the others' as lost."""
        self.index = site_index
        self.store = store
        self.prefix = prefix
        self.site = site_index.site.site
        self.topics = TopicMap(prefix, site_index)
        self.counters = Counters()
        self._skew = ClockSkew(self.counters)
        self.dead_letters = DeadLetterSampler()
        """Which rejections keep a dead letter (gateway/deadletters.py); all are counted."""
        self._flush_every = flush_every
        self._count_gaps = count_gaps
        self._lock = threading.RLock()
        self._seq: dict[str, SeqState] = store.seq_states()
        self._states: dict[str, DeviceState] = {s.device_id: s for s in store.device_states()}
        self._dirty_seq: set[str] = set()
        self._dirty_state: set[str] = set()
        self._unflushed = 0

    # --- the one entry point --------------------------------------------------------------

    def ingest(
        self,
        topic: str,
        payload: bytes,
        received_at: datetime,
        *,
        redelivered: bool = False,
        retained: bool = False,
    ) -> IngestResult:
        """Judge one message; accepted events are stored (durable after `flush()`).

        `redelivered` is the MQTT DUP flag: for devices without a seq it widens the duplicate
        check from a short window to "same payload as the last accepted one". `retained` is
        the MQTT retain flag: a retained uplink is skipped unless its model retains on purpose
        (status and availability are retained on purpose and always read).
        """
        received_at = utc(received_at)
        with self._lock:
            self.counters.inc("carehub_gateway_messages_in_total")
            route = self.topics.route(topic)
            try:
                result = self._ingest(route, topic, payload, received_at, redelivered, retained)
            except CodecError as err:
                device_id = route.device_id if route else None
                result = self._reject(topic, payload, received_at, err, device_id)
            except STORE_ERRORS:
                # the store failed, not the message: the caller retries the message later.
                # Dead-lettering it here would lose a fall once the store answered again.
                raise
            except Exception as err:  # a bug must cost one message, never the gateway
                _LOGGER.exception("internal error ingesting a message on %s", topic)
                error = CodecError(Reason.INTERNAL_ERROR, type(err).__name__)
                result = self._reject(topic, payload, received_at, error, None)
            self._unflushed += 1
            if self._unflushed >= self._flush_every:
                self.flush()
            return result

    def _ingest(
        self,
        route: Route | None,
        topic: str,
        payload: bytes,
        received_at: datetime,
        redelivered: bool,
        retained: bool = False,
    ) -> IngestResult:
        if route is None:
            raise CodecError(Reason.WRONG_TOPIC, "not a device topic of this site")
        check_size(payload)
        if retained and route.leaf == "selftest":
            return self._skip_retained(None)  # an old request: the admin asked back then
        if route.leaf == "selftest":
            return self._self_test(payload, received_at)
        device_id = route.device_id
        codec: Codec | None
        if route.leaf == "webhook":
            codec = next((c for c in registry().values() if c.webhook == route.vendor), None)
            if codec is None or codec.device_of is None:
                raise CodecError(Reason.WRONG_TOPIC, f"no webhook vendor {route.vendor!r}")
            device_id = codec.device_of(payload)
        assert device_id is not None
        binding = self.index.device(device_id)
        if binding is None:
            raise CodecError(Reason.UNKNOWN_DEVICE, f"device {device_id!r} is not in the site")
        if route.leaf in ("status", "availability"):
            return self._status(route, binding, payload, received_at)
        codec = codec_for(binding.model)
        if codec is None:
            raise CodecError(Reason.UNKNOWN_MODEL, f"no codec for model {binding.model!r}")
        if route.leaf == "webhook" and codec.webhook != route.vendor:
            raise CodecError(Reason.WRONG_TOPIC, f"device {device_id!r} is not a webhook device")
        if binding.kind not in codec.kinds:
            msg = f"model {binding.model!r} has no {binding.kind.value!r} devices"
            raise CodecError(Reason.UNKNOWN_MODEL, msg)
        if retained and not codec.retained_uplinks:
            return self._skip_retained(device_id)
        return self._uplink(codec, binding, topic, payload, received_at, redelivered)

    # --- uplinks --------------------------------------------------------------------------

    def _uplink(
        self,
        codec: Codec,
        binding: Binding,
        topic: str,
        payload: bytes,
        received_at: datetime,
        redelivered: bool,
    ) -> IngestResult:
        device_id = binding.device_id
        seq_state = self._seq.get(device_id) or SeqState(device_id)
        ctx = DecodeContext(device_id, binding.kind, received_at, dict(seq_state.codec_state))
        decoded = codec.decode(payload, ctx)
        _validate(binding, decoded, received_at)
        for d in decoded:
            if d.ts is not None and self._skew.check(device_id, d.ts, received_at):
                break
        first = decoded[0] if decoded else None
        seq = first.seq if first else None

        # dedupe: by vendor key, by (device, seq) with content, or by content and time
        if first is not None and first.key is not None:
            key, digest = first.key, _decoded_digest(decoded)
            hit = self.store.lookup(device_id, key)
            if hit is not None:
                return self._duplicate(device_id, hit.event_id)
            id_base = key
        elif seq is not None:
            key, digest = f"s:{seq}", _decoded_digest(decoded)
            hit = self.store.lookup(device_id, key)
            if hit is not None and hit.digest == digest:
                return self._duplicate(device_id, hit.event_id)
            # the same seq saying something else: the counter restarted or wrapped
            id_base = str(seq) if hit is None else f"{seq}:{digest[:12]}"
        else:
            digest = _raw_digest(payload)
            last_at = seq_state.last_received_at
            if (
                seq_state.last_digest == digest
                and last_at is not None
                and (redelivered or abs(received_at - last_at) <= SEQLESS_DUPLICATE_WINDOW)
            ):
                return self._duplicate(device_id, None)
            key = f"c:{rfc3339(received_at, 'auto')}:{digest[:16]}"
            hit = self.store.lookup(device_id, key)
            if hit is not None:
                return self._duplicate(device_id, hit.event_id)
            id_base = key[2:]

        events = self._enrich(binding, decoded, received_at, id_base)
        for i, event in enumerate(events):
            self.store.add_event(event, key if i == 0 else f"{key}#{i}", digest)
        self._advance_seq(codec, seq_state, seq, digest, received_at, ctx.state)
        self._seen(binding, decoded, received_at)
        self.counters.inc("carehub_gateway_messages_accepted_total")
        self.counters.inc("carehub_gateway_events_total", len(events))
        return IngestResult(IngestOutcome.ACCEPTED, tuple(events), device_id=device_id)

    def _enrich(
        self, binding: Binding, decoded: list[Decoded], received_at: datetime, id_base: str
    ) -> list[CanonicalEvent]:
        """Canonical events with the resident and room of the binding in force at each."""
        device_id = binding.device_id
        events: list[CanonicalEvent] = []
        for i, d in enumerate(decoded):
            ts = d.ts or received_at
            resident_id, room = self._whom(self.index.binding_at(device_id, ts))
            events.append(
                CanonicalEvent(
                    event_id=event_id_for(
                        self.site, device_id, id_base if i == 0 else f"{id_base}#{i}"
                    ),
                    site=self.site,
                    device_id=device_id,
                    kind=binding.kind,
                    type=d.type,
                    ts=ts,
                    received_at=received_at,
                    resident_id=resident_id,
                    room=room,
                    data=d.data,
                    seq=d.seq,
                )
            )
        return events

    def preview(
        self, topic: str, payload: bytes, received_at: datetime, *, retained: bool = False
    ) -> list[CanonicalEvent]:
        """What a device uplink says, decoded, validated and enriched, without deduplicating
        or storing it and without touching any state or lock: for the gateway's provisional
        alarms while the store hangs (the stuck commit thread holds the lock). Empty for
        anything but a valid uplink of a known device, and for a retained replay that
        `ingest` would skip; `ingest` judges it properly later."""
        route = self.topics.route(topic)
        if route is None or route.device_id is None:
            return []
        if route.leaf in ("selftest", "webhook", "status", "availability"):
            return []
        binding = self.index.device(route.device_id)
        codec = codec_for(binding.model) if binding is not None else None
        if binding is None or codec is None or binding.kind not in codec.kinds:
            return []
        if retained and not codec.retained_uplinks:
            return []
        received_at = utc(received_at)
        state = self._seq.get(binding.device_id) or SeqState(binding.device_id)
        ctx = DecodeContext(binding.device_id, binding.kind, received_at, dict(state.codec_state))
        try:
            check_size(payload)
            decoded = codec.decode(payload, ctx)
            _validate(binding, decoded, received_at)
        except CodecError:
            return []
        except Exception:  # a codec bug costs the preview, never the caller
            _LOGGER.exception("preview of a message on %s failed", topic)
            return []
        return self._enrich(binding, decoded, received_at, f"preview:{_raw_digest(payload)}")

    def routine_only(self, binding: Binding, payload: bytes, received_at: datetime) -> bool:
        """Whether a device uplink says nothing but routine (a heartbeat) or nothing at all
        (it does not decode): what a device over its budget may be refused for. Decodes only,
        touching no state or lock, so it may run on paho's network thread. A codec bug
        answers False: the message then takes the full path."""
        codec = codec_for(binding.model)
        if codec is None or binding.kind not in codec.kinds:
            return True  # refused anyway, as a model/kind mismatch
        state = self._seq.get(binding.device_id) or SeqState(binding.device_id)
        ctx = DecodeContext(
            binding.device_id, binding.kind, utc(received_at), dict(state.codec_state)
        )
        try:
            check_size(payload)
            decoded = codec.decode(payload, ctx)
        except CodecError:
            return True
        except Exception:  # noqa: BLE001 - the full path logs it with its traceback
            return False
        return all(d.type in ROUTINE for d in decoded)

    def shed_rate_limited(self, device_id: str, received_at: datetime) -> bool:
        """Count a routine message of a device over its budget without handling it, when its
        dead letter would be sampled out anyway (gateway/deadletters.py): the same counters
        as `rate_limited`, no dead letter, no lock. Answers whether it was shed; False means
        a dead letter of it is due, so it must take the full path."""
        reason = Reason.RATE_LIMITED.value
        if not self.dead_letters.saturated(device_id, reason, utc(received_at)):
            return False
        self.counters.inc("carehub_gateway_messages_in_total")
        self.counters.inc("carehub_gateway_rejected_total", reason=reason)
        self.counters.inc("carehub_gateway_dead_letters_sampled_out_total", reason=reason)
        return True

    def _whom(self, binding: Binding | None) -> tuple[str | None, str | None]:
        """Resident and room from the binding in force; a shared room has no single resident."""
        if binding is None:
            return None, None
        room = self.index.room_of(binding)
        residents = self.index.residents_of(binding)
        return (residents[0] if len(residents) == 1 else None), room

    def _advance_seq(
        self,
        codec: Codec,
        state: SeqState,
        seq: int | None,
        digest: str,
        received_at: datetime,
        codec_state: dict[str, object],
    ) -> None:
        """Count lost messages (seq gaps), late arrivals and counter resets."""
        last, gaps, resets = state.last_seq, state.gaps, state.resets
        modulus = codec.seq_modulus
        if seq is not None and modulus is not None:
            if last is None:
                last = seq
            else:
                ahead = (seq - last) % modulus
                behind = modulus - ahead
                if 0 < ahead <= MAX_SEQ_GAP:
                    if ahead > 1 and self._count_gaps:
                        lost = ahead - 1
                        gaps += lost
                        self.counters.inc("carehub_gateway_seq_gaps_total", lost)
                        _LOGGER.info("device %s: %s message(s) lost", state.device_id, lost)
                    last = seq
                elif 0 < behind <= LATE_WINDOW:
                    gaps = max(0, gaps - 1)  # a late arrival fills a gap counted before
                else:
                    resets += 1
                    self.counters.inc("carehub_gateway_seq_resets_total")
                    last = seq
        # every field given: the constructor, not `replace`, which costs 4x (per message)
        self._seq[state.device_id] = SeqState(
            state.device_id,
            last_seq=last,
            gaps=gaps,
            resets=resets,
            last_digest=digest,
            last_received_at=received_at,
            codec_state=dict(codec_state),
        )
        self._dirty_seq.add(state.device_id)

    def _seen(self, binding: Binding, decoded: list[Decoded], received_at: datetime) -> None:
        """A message proves the device alive; heartbeats also bring battery and rssi."""
        state = self._states.get(binding.device_id) or DeviceState(
            binding.device_id, self.site, binding.kind
        )
        battery, rssi = state.battery, state.rssi
        for d in decoded:
            battery = d.battery if d.battery is not None else battery
            rssi = d.rssi if d.rssi is not None else rssi
        last_seen = state.last_seen
        if last_seen is None or received_at > last_seen:
            last_seen = received_at
        online, source, status_at = state.online, state.status_source, state.status_at
        if online is not True:
            online, source, status_at = True, "message", received_at
        self._states[binding.device_id] = DeviceState(
            state.device_id,
            state.site,
            state.kind,
            last_seen=last_seen,
            battery=battery,
            rssi=rssi,
            online=online,
            status_source=source,
            status_at=status_at,
        )
        self._dirty_state.add(binding.device_id)

    def _self_test(self, payload: bytes, received_at: datetime) -> IngestResult:
        """An admin's self-test: a `system` event to publish, deliberately not stored."""
        event = selftest_event(self.site, payload, received_at)
        self.counters.inc("carehub_gateway_selftests_total")
        _LOGGER.info("self-test %s received", event.data["selftest_id"])
        return IngestResult(IngestOutcome.ACCEPTED, (event,), device_id=SELFTEST_DEVICE)

    # --- rate budget (gateway/budget.py) --------------------------------------------------

    def rate_limited(
        self, topic: str, payload: bytes, received_at: datetime, device_id: str
    ) -> IngestResult | None:
        """A message of a device over its rate budget: dead-lettered `rate_limited` when it
        is routine (a heartbeat, or nothing that decodes), before any dedupe or store write
        of an event; None when it is alarm-worthy and must be ingested as usual."""
        received_at = utc(received_at)
        events = self.preview(topic, payload, received_at)
        if any(e.type not in ROUTINE for e in events):
            self.counters.inc("carehub_gateway_over_budget_passed_total")
            return None
        with self._lock:
            self.counters.inc("carehub_gateway_messages_in_total")
            error = CodecError(Reason.RATE_LIMITED, f"device {device_id!r} over its rate budget")
            result = self._reject(topic, payload, received_at, error, device_id)
            self._unflushed += 1
            if self._unflushed >= self._flush_every:
                self.flush()
            return result

    def flooding(self, binding: Binding, received_at: datetime) -> CanonicalEvent:
        """Store the `fault` event (code `rate_limited`) that starts a device's flooding
        episode: the rules engine's `device_fault` rule makes it one technical alarm naming
        the device, stored, acknowledged and resolved like any other (docs/alarms.md)."""
        received_at = utc(received_at)
        data = {"code": Reason.RATE_LIMITED.value, "source": "gateway"}
        decoded = [Decoded(EventType.FAULT, data)]
        key = f"flood:{rfc3339(received_at)}"
        with self._lock:
            (event,) = self._enrich(binding, decoded, received_at, key)
            self.store.add_event(event, key, _decoded_digest(decoded))
            self.counters.inc("carehub_gateway_flooding_total", device=binding.device_id)
            self.counters.inc("carehub_gateway_events_total")
        _LOGGER.warning("device %s is flooding: over its rate budget", binding.device_id)
        return event

    # --- status, duplicates, rejections ---------------------------------------------------

    def _status(
        self, route: Route, binding: Binding, payload: bytes, received_at: datetime
    ) -> IngestResult:
        word = payload.strip().decode("utf-8", "replace").lower()
        if route.leaf == "availability" and word.startswith("{"):
            try:
                word = str(json.loads(word).get("state", "")).lower()
            except (ValueError, AttributeError):
                word = ""
        if word not in ("online", "offline"):
            raise CodecError(Reason.INVALID_FIELD, "status must be 'online' or 'offline'")
        state = self._states.get(binding.device_id) or DeviceState(
            binding.device_id, self.site, binding.kind
        )
        source: StatusSource = "status" if route.leaf == "status" else "availability"
        self._states[binding.device_id] = replace(
            state, online=word == "online", status_source=source, status_at=received_at
        )
        self._dirty_state.add(binding.device_id)
        self.counters.inc("carehub_gateway_status_total", status=word)
        return IngestResult(IngestOutcome.STATUS, device_id=binding.device_id)

    def _skip_retained(self, device_id: str | None) -> IngestResult:
        """A retained uplink replayed by the broker on (re)subscribing. The gateway's
        persistent session delivered the original when it was new, so this copy is old: a
        radar's retained `{"fall_state": 1}` must not raise a fall again after a restart."""
        self.counters.inc("carehub_gateway_retained_skipped_total")
        _LOGGER.debug("retained uplink of %s skipped", device_id)
        return IngestResult(IngestOutcome.SKIPPED, device_id=device_id)

    def _duplicate(self, device_id: str, event_id: str | None) -> IngestResult:
        self.counters.inc("carehub_gateway_duplicates_total")
        return IngestResult(IngestOutcome.DUPLICATE, device_id=device_id, duplicate_of=event_id)

    def _reject(
        self,
        topic: str,
        payload: bytes,
        received_at: datetime,
        err: CodecError,
        device_id: str | None,
    ) -> IngestResult:
        letter = DeadLetter.of(
            self.site, topic, payload, err.reason.value, err.detail, received_at, device_id
        )
        self.counters.inc("carehub_gateway_rejected_total", reason=err.reason.value)
        keep, sampling = self.dead_letters.keep(device_id or topic, err.reason.value, received_at)
        if keep:
            self.store.add_dead_letter(letter)
        else:
            self.counters.inc(
                "carehub_gateway_dead_letters_sampled_out_total", reason=err.reason.value
            )
        if err.reason is Reason.RATE_LIMITED:
            pass  # a flood logs once (flooding), not per message
        elif keep:
            _LOGGER.info("dead letter from %s: %s (%s)", topic, err.reason.value, err.detail)
        elif sampling:
            _LOGGER.warning(
                "dead letters from %s (%s) sampled for the rest of this minute: counted, not kept",
                device_id or topic,
                err.reason.value,
            )
        return IngestResult(
            IngestOutcome.REJECTED,
            reason=err.reason.value,
            detail=err.detail,
            device_id=device_id,
            dead_letter=letter if keep else None,  # sampled out: neither stored nor published
        )

    # --- supervision, durability ----------------------------------------------------------

    def check_silence(self, now: datetime) -> list[str]:
        """Mark devices offline that were silent for 3 x their heartbeat; answer which."""
        went: list[str] = []
        with self._lock:
            for device_id, state in self._states.items():
                binding = self.index.device(device_id)
                if binding is None or state.online is False or state.last_seen is None:
                    continue
                limit = timedelta(seconds=SILENCE_HEARTBEATS * binding.heartbeat_seconds)
                if now - state.last_seen > limit:
                    self._states[device_id] = replace(
                        state, online=False, status_source="silence", status_at=now
                    )
                    self._dirty_state.add(device_id)
                    went.append(device_id)
                    self.counters.inc("carehub_gateway_devices_silent_total")
                    _LOGGER.info("device %s silent since %s: offline", device_id, state.last_seen)
        return went

    def device_states(self) -> list[DeviceState]:
        """Current device states, including ones not yet flushed."""
        with self._lock:
            return sorted(self._states.values(), key=lambda s: s.device_id)

    def seq_state(self, device_id: str) -> SeqState | None:
        """A device's seq bookkeeping as of now."""
        with self._lock:
            return self._seq.get(device_id)

    def metrics(self) -> dict[str, float]:
        """Counters since start, `name{labels}` → value."""
        return self.counters.snapshot()

    def flush(self) -> None:
        """Make every accepted event, dead letter and state change durable."""
        with self._lock:
            for device_id in sorted(self._dirty_seq):
                self.store.put_seq_state(self._seq[device_id])
            for device_id in sorted(self._dirty_state):
                self.store.put_device_state(self._states[device_id])
            self.store.flush()
            self._dirty_seq.clear()
            self._dirty_state.clear()
            self._unflushed = 0

    def close(self) -> None:
        """Flush and close the store (the Ingestor owns the store it was given)."""
        with self._lock:
            self.flush()
            self.store.close()
