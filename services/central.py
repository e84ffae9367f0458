"""The municipality's central ingest as a running part: `carehub run central` (docs/multisite.md).

The care homes' bridges forward their events, alarms and dead letters to the central broker;
this part reads them all as `carehub-central` and writes them, through `CentralIngest`
(below), into the central InfluxDB that the central Grafana reads. It runs on the gateway's
`DurableSubscriber`: a persistent QoS 1 session, and a message is acknowledged only after the
batch it came in was flushed to InfluxDB. While InfluxDB is away nothing is acknowledged, the
broker holds what arrives, and it all comes again once we write.

It serves every site, so it takes no site file; it needs the broker (`CAREHUB_MQTT_URL`) and
InfluxDB (`CAREHUB_INFLUX_*`). Like the other parts it writes a heartbeat beside `CAREHUB_DB`,
which `carehub health central` reads. It logs topics (site and device ids) and counts, never
payloads: only pseudonymous ids travel on MQTT anyway.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from carehub import heartbeat
from carehub.clock import Clock
from carehub.errors import CareHubError, ConfigError
from carehub.events import CanonicalEvent, EventType
from carehub.mqtt import Protocol
from carehub.settings import MqttTarget, Settings
from carehub.site import DeviceKind
from carehub.storewatch import StoreWatch
from carehub.subscriber import Delivery, DurableSubscriber, SubscriptionConfig
from carehub.topics import central_filters
from gateway.metrics import Counters
from gateway.store.base import DeadLetter, DeviceState
from services.timeseries.points import alarm_change_point, required_time
from services.timeseries.writer import TimeseriesWriter

_LOGGER = logging.getLogger(__name__)

PART = "central"
"""Its name for `carehub run` and `carehub health`, and its heartbeat file."""
CLIENT_ID = "carehub-central"
"""The login docs/multisite.md gives it (deploy/mosquitto/bridge.py writes it)."""
SESSION_EXPIRY_S = 7 * 86_400
"""How long the central broker keeps our session, and queues for it, while we are down: a
long weekend without anyone noticing loses nothing."""
FLUSH_RETRY_S = (0.5, 1.0)
"""Retries inside one flush. Short, because a failed flush costs nothing: the batch stays
unacknowledged at the broker and the subscriber tries the whole commit again."""


class CentralIngest:
    """At the municipality: what the care homes' bridges forward → the central InfluxDB.

    Each site's edge broker forwards `{prefix}/{site}/events/#`, `alarms/#` and `deadletter`
    (deploy/mosquitto/bridge.py); this turns them into the same points a site's own gateway
    and alarm writer make, so one set of dashboards serves every site. Feed it from an MQTT
    subscription on `subscriptions()` (a persistent session, acknowledging after `flush()`).
    Device state is what events tell (last seen, battery, signal); whether a device is online
    and its sequence gaps are known at the care home only.
    """

    def __init__(self, events: Any, writer: TimeseriesWriter, prefix: str = "carehub") -> None:
        """`events` is a `gateway.store.influx.InfluxEventStore` on the central bucket."""
        self.events = events
        self.writer = writer
        self.prefix = prefix
        self.refused = 0
        self._topic = re.compile(
            rf"^{re.escape(prefix)}/(?P<site>[a-z0-9-]+)/"
            r"(?:(?P<events>events)/[^/]+/[^/]+|(?P<alarms>alarms)/[^/]+|(?P<dead>deadletter))$"
        )

    def subscriptions(self) -> list[str]:
        """The topic filters to subscribe to (QoS 1)."""
        return central_filters(self.prefix)

    def handle(self, topic: str, payload: bytes) -> bool:
        """Buffer what one message says; False (logged, counted) for what cannot be used, so
        a bad message is acknowledged and dropped rather than redelivered for ever."""
        match = self._topic.match(topic)
        if match is None:
            return self._refuse(topic, "unexpected topic")
        site = match["site"]
        if not payload:
            return True  # a cleared retained alarm: its resolution was its last change
        try:
            body = json.loads(payload)
            if not isinstance(body, dict):
                msg = f"a JSON {type(body).__name__}, not an object"
                raise TypeError(msg)
            if match["events"]:
                self._event(site, payload)
            elif match["alarms"]:
                if body.get("site") != site:
                    return self._refuse(topic, f"alarm of site {body.get('site')!r}")
                self.writer.add([alarm_change_point(body)])
            else:
                self._dead_letter(site, body)
        except (ValueError, KeyError, TypeError) as err:
            return self._refuse(topic, str(err).splitlines()[0])
        return True

    def _event(self, site: str, payload: bytes) -> None:
        event = CanonicalEvent.model_validate_json(payload)
        if event.site != site:
            msg = f"event of site {event.site!r}"
            raise ValueError(msg)
        digest = hashlib.sha256(payload).hexdigest()[:16]
        self.events.add_event(event, f"e:{event.event_id}", digest)
        if event.kind.value not in {k.value for k in DeviceKind}:
            return  # the hub's own events (self-test) are about no device
        heartbeat = event.type == EventType.HEARTBEAT
        battery = event.data.get("battery") if heartbeat else None
        rssi = event.data.get("rssi") if heartbeat else None
        self.events.put_device_state(
            DeviceState(
                device_id=event.device_id,
                site=site,
                kind=DeviceKind(event.kind.value),
                last_seen=event.received_at,
                battery=None if battery is None else float(battery),
                rssi=None if rssi is None else int(rssi),
            )
        )

    def _dead_letter(self, site: str, body: Mapping[str, Any]) -> None:
        received = required_time(body, "received_at")
        self.events.add_dead_letter(
            DeadLetter(
                site=site,
                topic=str(body["topic"]),
                payload=str(body.get("payload", "")),
                encoding="base64" if body.get("encoding") == "base64" else "utf-8",
                reason=str(body["reason"]),
                detail=str(body.get("detail", "")),
                received_at=received,
                device_id=body.get("device_id"),
                truncated=bool(body.get("truncated", False)),
            )
        )

    def _refuse(self, topic: str, why: str) -> bool:
        self.refused += 1
        _LOGGER.warning("central ingest: %s dropped (%s)", topic, why)
        return False

    def flush(self) -> None:
        """Make everything handled so far durable; raises (gateway's `StoreUnavailableError`,
        or `TimeseriesUnavailableError`) with nothing lost, so the caller does not acknowledge."""
        self.events.flush()
        self.writer.flush()


@dataclass(frozen=True, slots=True)
class CentralConfig:
    """How the central ingest talks to the central broker."""

    target: MqttTarget
    client_id: str = CLIENT_ID
    protocol: Protocol = "5"
    session_expiry_s: int = SESSION_EXPIRY_S
    commit_interval_s: float = 0.05
    commit_batch: int = 500
    ca_file: str | None = None


def _required(settings: Settings) -> list[str]:
    """The settings the central ingest cannot run without that are not set."""
    return [
        name
        for name, value in (
            ("CAREHUB_MQTT_URL", settings.mqtt_url),
            ("CAREHUB_INFLUX_URL", settings.influx_url),
            ("CAREHUB_INFLUX_TOKEN", settings.influx_token),
            ("CAREHUB_INFLUX_ORG", settings.influx_org),
            ("CAREHUB_INFLUX_BUCKET", settings.influx_bucket),
        )
        if not value
    ]


def open_ingest(settings: Settings) -> CentralIngest:
    """`CentralIngest` on the InfluxDB of `CAREHUB_INFLUX_*` (which must all be set)."""
    from gateway.store.influx import InfluxEventStore

    if settings.influx_token is None or _required(settings):
        msg = f"set {', '.join(_required(settings))}"
        raise ConfigError(msg)
    url, token = settings.influx_url or "", settings.influx_token.get_secret_value()
    org, bucket = settings.influx_org or "", settings.influx_bucket or ""
    # The ingest never looks a dedupe key up (its points are idempotent), so the event store
    # need not load the bucket's recent keys at start.
    events = InfluxEventStore(
        url, token, org, bucket, retry_delays_s=FLUSH_RETRY_S, dedupe_lookback=timedelta(0)
    )
    writer = TimeseriesWriter(url, token, org, bucket, retry_delays_s=FLUSH_RETRY_S)
    return CentralIngest(events, writer, settings.mqtt_prefix)


class CentralService:
    """A `CentralIngest` behind the central broker's subscription; start() then stop()."""

    def __init__(
        self,
        ingest: CentralIngest,
        config: CentralConfig,
        *,
        heartbeats: Path | None = None,
        clock: Clock | None = None,
    ) -> None:
        """`heartbeats`: the folder to write the `central` heartbeat into (none without)."""
        self.ingest = ingest
        self.config = config
        self.counters = Counters()
        self.store_watch = StoreWatch()
        """Whether InfluxDB takes our flushes; the heartbeat reports it."""
        self.subscriber = DurableSubscriber(
            SubscriptionConfig(
                target=config.target,
                client_id=config.client_id,
                filters=tuple(ingest.subscriptions()),
                protocol=config.protocol,
                session_expiry_s=config.session_expiry_s,
                commit_interval_s=config.commit_interval_s,
                commit_batch=config.commit_batch,
                ca_file=config.ca_file,
            ),
            self._commit,
            name="central",
            clock=clock,
        )
        self._heartbeats = heartbeats
        self._beat: heartbeat.Beat | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> CentralService:
        """From `CAREHUB_*`: the broker URL (user and password in it), CA file, prefix,
        InfluxDB, and the heartbeat folder beside `CAREHUB_DB`. `overrides` are
        `CentralConfig` fields. A `ConfigError` names every missing setting."""
        missing = _required(settings)
        target = settings.mqtt_target()
        if missing or target is None:
            msg = (
                f"carehub run central reads the central broker and writes into the central "
                f"InfluxDB: set {', '.join(missing)} (docs/multisite.md)"
            )
            raise ConfigError(msg)
        config = CentralConfig(
            target=target,
            ca_file=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None,
            **overrides,
        )
        return cls(open_ingest(settings), config, heartbeats=heartbeat.heartbeat_dir(settings.db))

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Connect (retrying in the background), start committing, start the heartbeat."""
        self.subscriber.start()
        if self._heartbeats is not None:
            self._beat = heartbeat.Beat(self._heartbeats, PART, self.status).start()

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """Whether the connection and its subscriptions are up within `timeout`."""
        return self.subscriber.wait_ready(timeout)

    def stop(self) -> None:
        """Flush and acknowledge what is pending (what InfluxDB refuses now stays with the
        broker), disconnect, close the InfluxDB clients, remove the heartbeat."""
        self.subscriber.stop()
        self._close_ingest()
        if self._beat is not None:
            self._beat.stop()
            self._beat = None

    def abort(self) -> None:
        """Die as a crash would: nothing flushed or acknowledged (for tests)."""
        self.subscriber.abort()
        if self._beat is not None:
            self._beat.stop()
            self._beat = None

    def _close_ingest(self) -> None:
        try:
            self.ingest.events.close()
        except CareHubError as err:
            # the messages these points came from were not acknowledged: they come again
            _LOGGER.warning("central ingest closed with points unwritten: %s", err)
        self.ingest.writer.close()

    # --- commit path ----------------------------------------------------------------------

    def _commit(self, batch: list[Delivery]) -> None:
        """Buffer what each message says (once, across retries), then flush to InfluxDB;
        raises if InfluxDB did not take it, so the subscriber acknowledges nothing."""
        with self.store_watch.commit():
            for item in batch:
                if item.result is None and not item.failed:
                    self._handle(item)
            self.ingest.flush()
        for item in batch:
            if item.result is True:
                self.counters.inc("carehub_central_messages_total", site=_site(item.topic))

    def _handle(self, item: Delivery) -> None:
        """What cannot be used is counted and dropped (acknowledged); an unexpected error is a
        bug in one message's path: logged, left unacknowledged, and the others go on."""
        try:
            item.result = self.ingest.handle(item.topic, item.payload)
        except Exception:
            item.failed = True
            self.counters.inc("carehub_central_errors_total")
            _LOGGER.exception("message on %s could not be handled", item.topic)
            return
        if item.result is False:
            self.counters.inc("carehub_central_refused_total", site=_site(item.topic))

    # --- health ---------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether the central broker connection is up."""
        return self.subscriber.connected

    def status(self) -> dict[str, Any]:
        """The heartbeat: 'ok', or what is wrong (InfluxDB first), with the counters."""
        store = self.store_watch.state()
        state = store if store != "ok" else "ok" if self.connected else "broker disconnected"
        return {"state": state, "metrics": self.metrics()}

    def metrics(self) -> dict[str, float]:
        """Messages written and refused by site, and the connection's counters."""
        sub = self.subscriber
        return {
            **self.counters.snapshot(),
            "carehub_central_pending": float(sub.pending()),
            "carehub_central_commits_total": float(sub.commits),
            "carehub_central_mqtt_connects_total": float(sub.connects),
            "carehub_central_mqtt_disconnects_total": float(sub.disconnects),
        }


def _site(topic: str) -> str:
    """The site level of `{prefix}/{site}/...` (what the subscriptions deliver)."""
    levels = topic.split("/")
    return levels[1] if len(levels) > 2 else "unknown"
