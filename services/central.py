"""The municipality's central ingest as a running part: `carehub run central` (docs/multisite.md).

The care homes' bridges forward their events, alarms and dead letters to the central broker;
this part reads them all as `carehub-central` and writes them, through
`services.timeseries.CentralIngest`, into the central InfluxDB that the central Grafana reads.
It runs on the gateway's `DurableSubscriber`: a persistent QoS 1 session, and a message is
acknowledged only after the batch it came in was flushed to InfluxDB. While InfluxDB is away
nothing is acknowledged, the broker holds what arrives, and it all comes again once we write.

It serves every site, so it takes no site file; it needs the broker (`CAREHUB_MQTT_URL`) and
InfluxDB (`CAREHUB_INFLUX_*`). Like the other parts it writes a heartbeat beside `CAREHUB_DB`,
which `carehub health central` reads. It logs topics (site and device ids) and counts, never
payloads: only pseudonymous ids travel on MQTT anyway.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from carehub import heartbeat
from carehub.clock import Clock
from carehub.errors import CareHubError, ConfigError
from carehub.mqtt import Protocol
from carehub.settings import MqttTarget, Settings
from carehub.storewatch import StoreWatch
from carehub.subscriber import Delivery, DurableSubscriber, SubscriptionConfig
from gateway.metrics import Counters
from services.timeseries import CentralIngest, TimeseriesWriter

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
