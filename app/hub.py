"""The production hub: gateway, rules engine and web app, in one process or one each.

`carehub run all` (and the demo) runs every part here, sharing one alarm service so a new alarm
reaches the board without a poll; `carehub run gateway|rules|api` runs one part per container,
the parts meeting only in the broker and the SQLite file (`CAREHUB_DB`). Each part writes a
heartbeat beside that file, which is how the web app knows, in either layout, that a part has
stopped. (`carehub run central`, the municipality's ingest, is no part of a care home's hub:
`services.central.CentralService`.)
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as paho
from fastapi import APIRouter, FastAPI

from carehub import heartbeat
from carehub.clock import Clock, SystemClock
from carehub.errors import ConfigError
from carehub.mqtt import ClientOptions, Protocol, close, connect_until_stopped
from carehub.private import private_db
from carehub.settings import MqttTarget, Settings
from carehub.site import Site, SiteIndex
from gateway.service import GatewayService
from gateway.store.base import DeviceState, EventStore
from services.alarms.service import AlarmService
from services.notify.channel import Channel
from services.notify.service import Notifier
from services.privacy.retention import RetentionJob
from services.rules.service import RulesService
from services.web.context import HubContext

_LOGGER = logging.getLogger(__name__)

PARTS = ("gateway", "rules", "api")
"""A care home's parts: `all` is these."""
CENTRAL = "central"
"""The municipality's central ingest (services/central.py, docs/multisite.md): it serves every
site, so it runs alone and takes no site file, and `all` does not include it."""
RUN_PARTS = (*PARTS, CENTRAL)
"""Every part `carehub run` and `carehub health` know."""
SERVER_START_TIMEOUT_S = 15.0


@dataclass(frozen=True, slots=True)
class HubOptions:
    """How this hub runs, beyond the settings: the demo decides these, `carehub run` does not."""

    protocol: Protocol = "5"
    """MQTT protocol; "3.1.1" for the embedded demo broker."""
    demo: bool = False
    """Demo mode: a random session key when none is set, and demo-only conveniences."""
    http_host: str | None = None
    http_port: int | None = None
    """Override `CAREHUB_HTTP_HOST` / `CAREHUB_HTTP_PORT` (0 = any free port)."""
    client_id_prefix: str = "carehub"
    """MQTT client ids are `{prefix}-gateway` etc. The broker keeps a persistent session by
    client id, so two hubs on one broker (tests, a shared lab broker) need different prefixes.
    With credentials the broker uses the username instead (`use_username_as_clientid`)."""


def parse_parts(part: str) -> tuple[str, ...]:
    """`all`, one of PARTS (or a comma list) or `central` → the parts to run, in start order."""
    wanted = PARTS if part == "all" else tuple(p.strip() for p in part.split(",") if p.strip())
    unknown = [p for p in wanted if p not in RUN_PARTS]
    if unknown or not wanted:
        msg = (
            f"unknown part {', '.join(unknown) or part!r}: choose gateway, rules, api or all "
            "(a care home), or central (the municipality's ingest)"
        )
        raise ConfigError(msg)
    if CENTRAL in wanted and len(set(wanted)) > 1:
        msg = "central runs alone: it serves every care home, the other parts one"
        raise ConfigError(msg)
    return tuple(p for p in RUN_PARTS if p in wanted)


def broker_logins(settings: Settings, parts: Iterable[str]) -> dict[str, MqttTarget]:
    """Each part's broker login (`CAREHUB_MQTT_{PART}_URL`, else `CAREHUB_MQTT_URL`); refuses
    two parts of one process under one username.

    A broker that takes the username as client id (Mosquitto's `use_username_as_clientid`,
    which `carehub broker-config` sets so that no device can take over another's session)
    holds one connection per username: two parts under one login would throw each other off
    in turn, and a part's clean start would wipe the other's persistent session. Each
    generated login's topic rights also fit its own part only (docs/deployment.md, "Broker
    logins"). Without a username (the demo's and the tests' brokers) the parts' client ids
    differ anyway.
    """
    targets: dict[str, MqttTarget] = {}
    for part in parts:
        if part not in PARTS:
            continue
        target = settings.mqtt_target(part)
        if target is None:
            msg = (
                f"no broker for the {part} part: set CAREHUB_MQTT_URL "
                f"(or CAREHUB_MQTT_{part.upper()}_URL), mqtt://user:pass@host:port"
            )
            raise ConfigError(msg)
        targets[part] = target
    users: dict[str, list[str]] = {}
    for part, target in targets.items():
        if target.username:
            users.setdefault(target.username, []).append(part)
    shared = {user: names for user, names in users.items() if len(names) > 1}
    if shared:
        user, names = next(iter(shared.items()))
        msg = (
            f"the {' and '.join(names)} parts would log in to the broker as one user, {user!r}. "
            "With the username as client id (carehub broker-config's Mosquitto) they would "
            "throw each other off, and each login may use its own part's topics only. Give each "
            "part its own login: CAREHUB_MQTT_GATEWAY_URL, CAREHUB_MQTT_RULES_URL and "
            "CAREHUB_MQTT_API_URL, which `carehub broker-config` writes into hub.env "
            "(docs/deployment.md)"
        )
        raise ConfigError(msg)
    return targets


def _device_state_json(state: DeviceState) -> dict[str, Any]:
    return {
        "device_id": state.device_id,
        "kind": str(state.kind),
        "last_seen": state.last_seen.isoformat() if state.last_seen else None,
        "battery": state.battery,
        "rssi": state.rssi,
        "online": bool(state.online),
    }


class _WebServer:
    """uvicorn in a thread; `carehub run` serves the web app (or the webhook alone) with it."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        import uvicorn

        from app.broker import free_port
        from app.webserver import server_config

        self.host = host
        self.port = port or free_port(host)
        config = server_config(  # limits against slow and greedy clients
            app,
            host,
            self.port,
            log_level="warning",
            lifespan="off",
            proxy_headers=True,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="http", daemon=True)

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host  # noqa: S104
        return f"http://{host}:{self.port}"

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                msg = f"the web server could not listen on {self.host}:{self.port}"
                raise ConfigError(msg)
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


class _BrokerWatch:
    """The api's own broker connection: the honest 'broker' health component, and the link the
    admin's self-test publishes and listens on (`services.privacy.selftest.MqttLink`)."""

    def __init__(
        self, target: MqttTarget, options: ClientOptions, subscriptions: tuple[str, ...] = ()
    ) -> None:
        self._target = target
        self._options = options
        self._subscriptions = subscriptions
        self._client: paho.Client | None = None
        self._listeners: list[Callable[[str, bytes], None]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="api-broker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        self._client = connect_until_stopped(
            self._target, self._options, self._stopping, self._on_connect, name="api"
        )

    def _on_connect(self, client: paho.Client) -> None:
        client.on_message = self._on_message
        for topic in self._subscriptions:
            client.subscribe(topic, 1)

    def _on_message(self, _c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        """Hand a message to the listeners; never raises into paho."""
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(msg.topic, bytes(msg.payload))
            except Exception:
                _LOGGER.exception("listener on %s failed", msg.topic)

    def add_listener(self, listener: Callable[[str, bytes], None]) -> Callable[[], None]:
        """Call `listener(topic, payload)` for every message; answers the remover."""
        with self._lock:
            self._listeners.append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    def publish(self, topic: str, payload: bytes, timeout: float) -> bool:
        """QoS 1; whether the broker acknowledged within `timeout` (False when not connected)."""
        client = self._client
        if client is None or not client.is_connected():
            return False
        info = client.publish(topic, payload, qos=1)
        try:
            info.wait_for_publish(timeout)
        except (RuntimeError, ValueError):
            return False
        return info.is_published()

    def state(self) -> str:
        client = self._client
        if client is None:
            return "connecting"
        return "ok" if client.is_connected() else "disconnected"

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        if self._client is not None:
            close(self._client)


class Hub:
    """The chosen parts of CareHub over one site; start() then stop()."""

    def __init__(
        self,
        settings: Settings,
        site: Site,
        parts: Iterable[str] = PARTS,
        clock: Clock | None = None,
        options: HubOptions | None = None,
    ) -> None:
        self.settings = settings
        self.site = site
        self.index = SiteIndex(site)
        self.parts = tuple(parts)
        self.clock: Clock = clock or SystemClock()
        self.options = options or HubOptions()
        self.url: str | None = None
        self.gateway: GatewayService | None = None
        """When the gateway runs here."""
        self.rules: RulesService | None = None
        """When the rules engine runs here."""
        self.alarms: AlarmService | None = None
        """Shared by rules and api in this process."""
        self.retention: RetentionJob | None = None
        """When the gateway runs here."""
        self.app: FastAPI | None = None
        self.notifier: Notifier | None = None
        """When the rules engine runs here and the site has phones."""
        self._stack = ExitStack()
        self._beats = heartbeat.heartbeat_dir(settings.db)
        self.targets = broker_logins(settings, self.parts)
        """The broker login of each part that runs here, one username per part."""
        self._secret_key = self._session_key()

    def _target(self, part: str) -> MqttTarget:
        """A part's broker login; a test may serve the api's context (`api_context`) from a
        hub that does not run the api part, so its login is looked up when first needed."""
        if part not in self.targets:
            self.targets.update(broker_logins(self.settings, (*self.targets, part)))
        return self.targets[part]

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the parts in order (gateway, rules, api); on failure stop what started."""
        private_db(self.settings.db)  # 0600 before any part opens it (docs/security.md)
        try:
            if "gateway" in self.parts:
                self._start_gateway()
            if "rules" in self.parts or "api" in self.parts:
                self._open_alarms()
            if "rules" in self.parts:
                self._start_rules()
            if "api" in self.parts:
                self._start_api()
            elif "gateway" in self.parts and (
                self._webhook_token() is not None or self.settings.webhook_secret is not None
            ):
                self._start_webhook_only()
        except BaseException:
            self.stop()
            raise

    def wait_ready(self, timeout: float = 15.0) -> bool:
        """Whether every MQTT part has connected and subscribed within `timeout`."""
        deadline = time.monotonic() + timeout
        for service in (self.gateway, self.rules):
            if service is not None and not service.wait_ready(
                max(0.0, deadline - time.monotonic())
            ):
                return False
        return True

    def stop(self) -> None:
        """Stop in reverse order: the web app first, the gateway (committing) last."""
        self._stack.close()

    def __enter__(self) -> Hub:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- parts ----------------------------------------------------------------------------

    def _start_gateway(self) -> None:
        from gateway.pipeline import Ingestor
        from gateway.service import GatewayConfig, GatewayService
        from gateway.store import open_store

        store = open_store(self.settings, handover=True)
        ingestor = Ingestor(self.index, store, self.settings.mqtt_prefix)
        self._stack.callback(ingestor.close)
        config = GatewayConfig(
            target=self._target("gateway"),
            prefix=self.settings.mqtt_prefix,
            client_id=f"{self.options.client_id_prefix}-gateway",
            protocol=self.options.protocol,
            ca_file=str(self.settings.mqtt_ca_file) if self.settings.mqtt_ca_file else None,
            handover_db=self.settings.db,
            handover_stall_s=self.settings.handover_stall_s,
            disk_path=self.settings.db,
            disk_min_free_bytes=self.settings.disk_min_free_mb * 2**20,
        )
        self.gateway = GatewayService(ingestor, config, self.clock)
        from services.rules.monitoring import MonitoringSwitch

        switch = MonitoringSwitch(self.settings.db, self.site.site)
        self._stack.callback(switch.close)
        self.gateway.provisional.monitored = switch
        self.gateway.start()
        self._stack.callback(self.gateway.stop)
        gateway = self.gateway
        self._start_retention()

        def status() -> dict[str, Any]:
            store = gateway.storage_state()
            state = store if store != "ok" else "ok" if gateway.connected else "broker disconnected"
            return {"state": state, "metrics": gateway.metrics()}

        self._beat("gateway", status)

    def _start_retention(self) -> None:
        """The gateway part owns the raw events, so it also deletes them when they are due."""
        from services.privacy.retention import RetentionJob

        self.retention = RetentionJob.from_settings(self.settings, self.index, self.clock).start()
        self._stack.callback(self.retention.stop)

    def _open_alarms(self) -> AlarmService:
        """The alarm service rules and api share in this process, opened once."""
        if self.alarms is None:
            self.alarms = AlarmService.open(self.settings.db, self.clock)
            self._stack.callback(self.alarms.close)
        return self.alarms

    def _start_rules(self) -> None:
        from services.rules.service import RulesService

        self.rules = RulesService.from_settings(
            self.settings,
            self.index,
            self.clock,
            alarms=self._open_alarms(),
            protocol=self.options.protocol,
            client_id=f"{self.options.client_id_prefix}-rules",
            hints=self.gateway is None,
        )
        self.rules.start()
        self._stack.callback(self.rules.stop)
        rules = self.rules
        if self.gateway is not None:  # one process: the gateway wakes us right after its commit
            self.gateway.on_handover = rules.wake

        def status() -> dict[str, Any]:
            store = rules.store_watch.state()
            state = store if store != "ok" else "ok" if rules.connected else "broker disconnected"
            out: dict[str, Any] = {"state": state, "metrics": rules.metrics()}
            notifier = self.notifier
            if notifier is not None:  # the api part, in its own process, reads these
                out["metrics"].update(notifier.metrics())
                out["notify_health"] = notifier.health()
            return out

        self._beat("rules", status)
        self._start_timeseries()
        self._start_notifier()

    def _start_notifier(self) -> None:
        """Phones hear of alarms from the process that runs the rules part
        (docs/notifications.md): the notifier follows the change log in the shared file."""

        channels: list[Channel] = []
        ntfy = self.site.notify.ntfy
        if ntfy is not None:
            from services.notify.ntfy import NtfyChannel

            channels.append(NtfyChannel(ntfy.url, ntfy.token_env))
        espa = self.site.notify.espa
        if espa is not None:
            from services.notify.espa import EspaChannel, EspaSettings

            channels.append(EspaChannel(EspaSettings(**espa.model_dump())))
        if self.options.demo:
            from services.notify.record import RecordChannel

            channels.append(RecordChannel())
        from services.notify.desk import webpush_enabled

        if webpush_enabled(self.site):
            channels.append(self._webpush_channel())
        if not self.site.phones or not channels:
            return
        from services.notify.service import Notifier

        alarms = self._open_alarms()
        notifier = Notifier(
            self.settings.db,
            self.site,
            channels,
            self.clock,
            secret_key=self._secret_key,
        )
        notifier.on_change = alarms.wake
        self.notifier = notifier.start()
        self._stack.callback(notifier.stop)
        self._stack.callback(alarms.subscribe(lambda _change: notifier.wake()))

    def _webpush_channel(self) -> Channel:
        """Browsers subscribed from the board (docs/notifications.md, "Web Push"): signed with
        the VAPID key kept beside the database, the site's public URL as the VAPID subject."""
        from urllib.parse import urlsplit

        from services.notify.ladder import Ladder
        from services.notify.vapid import load_or_create, vapid_path
        from services.notify.webpush import WebPushChannel

        url = self.site.notify.public_url or ""
        subject = url if url.startswith("https://") else f"mailto:carehub@{urlsplit(url).hostname}"
        keys = load_or_create(vapid_path(self.settings.db))
        return WebPushChannel(keys, subject, ack_label=Ladder(self.site).ack_label())

    def _start_timeseries(self) -> None:
        """With InfluxDB configured, alarm changes and nightly freed hours go there too, for
        Grafana; written by the rules part only, so each change is written once."""
        from services.timeseries import AlarmChangeWriter, FreedHoursJob, TimeseriesWriter

        ts = TimeseriesWriter.from_settings(self.settings)
        if ts is None:
            return
        from gateway.store import open_store
        from services.reports.service import StoreReportSource

        self._stack.callback(ts.close)
        alarms = self._open_alarms()
        writer = AlarmChangeWriter(ts, log=alarms)
        self._stack.callback(writer.close)
        self._stack.callback(alarms.subscribe(writer))
        from services.privacy.aggregates import AggregateStore, site_digest

        events = open_store(self.settings)
        self._stack.callback(events.close)
        aggregates = AggregateStore(self.settings.db, self.site.site, site_digest(self.index))
        self._stack.callback(aggregates.close)
        source = StoreReportSource(
            self.site.site, events, alarms.raised_between, aggregates.stored_nights
        )
        job = FreedHoursJob(ts, self.index, source, self.clock).start()
        self._stack.callback(job.stop)

    def api_context(self) -> HubContext:
        """The web app's view of this hub (services.web.context.HubContext); its stores and
        broker watch close with the hub. Tests serve it themselves to stop and restart it."""
        from carehub.topics import SiteTopics
        from gateway.store import open_store
        from services.privacy.aggregates import AggregateStore, site_digest
        from services.privacy.monitoring import MonitoringStore
        from services.privacy.selftest import SelfTest
        from services.privacy.service import PrivacyService
        from services.reports.service import StoreReportSource
        from services.web.context import HubContext
        from services.web.provisional import BoardAlarms
        from services.web.users import UserStore

        alarms = self._open_alarms()
        users = UserStore(self.settings.db)
        self._stack.callback(users.close)
        # The web app reads through its own store handle: reports never wait on ingest commits.
        events = open_store(self.settings)
        self._stack.callback(events.close)
        prefix, site = self.settings.mqtt_prefix, self.site.site
        # a test may serve the web app of a hub started without its api part
        watch = _BrokerWatch(
            self._target("api"),
            ClientOptions(
                client_id=f"{self.options.client_id_prefix}-api",
                protocol=self.options.protocol,
                ca_file=str(self.settings.mqtt_ca_file) if self.settings.mqtt_ca_file else None,
            ),
            subscriptions=(
                # every canonical event: the round's state, and the self-test's event
                SiteTopics(prefix, site).events_filter(),
                SiteTopics(prefix, site).provisional_filter(),
            ),
        )
        # the board shows the gateway's provisional fall alarms while the store hangs
        board = BoardAlarms(alarms, prefix, site)
        self._stack.callback(watch.add_listener(board.on_message))
        watch.start()
        self._stack.callback(watch.stop)
        aggregates = AggregateStore(self.settings.db, site, site_digest(self.index))
        privacy = PrivacyService(
            self.index,
            MonitoringStore(self.settings.db, site),
            alarms,
            events,
            aggregates,
            self.clock,
            SelfTest(watch, alarms, site, prefix),
        )
        self._stack.callback(privacy.close)
        self._beat("api", lambda: {"state": watch.state()})
        from services.round.checks import CheckStore
        from services.round.service import RoundService

        checks = CheckStore(self.settings.db, site)
        self._stack.callback(checks.close)
        from gateway.store.visits import VisitStore

        visits = VisitStore(self.settings.db, site)
        self._stack.callback(visits.close)
        rounds = RoundService(self.index, events, alarms, checks, self.clock)
        self._stack.callback(watch.add_listener(rounds.on_message))
        rounds.start()
        self._stack.callback(rounds.stop)

        def devices() -> list[dict[str, Any]]:
            return [_device_state_json(s) for s in events.device_states()]

        def health() -> dict[str, str]:
            components = {"broker": watch.state(), "store": self._store_state(events)}
            for part in ("gateway", "rules"):
                components[part] = heartbeat.read(self._beats, part)
            return components

        desk = None
        if self.site.phones:
            from services.notify.desk import NotifyDesk

            desk = NotifyDesk(
                self.settings.db, self.site, self.clock, self._secret_key, alarms.wake
            )
            self._stack.callback(desk.close)
            if self.notifier is not None:  # the board hears of a send here at once
                self.notifier.on_delivery = desk.wake
        return HubContext(
            notify=desk,
            settings=self.settings,
            site=self.index,
            users=users,
            secret_key=self._secret_key,
            demo=self.options.demo,
            clock=self.clock,
            alarms=board,
            reports=StoreReportSource(
                site,
                events,
                alarms.raised_between,
                aggregates.stored_nights,
                deliveries=None if desk is None else desk.deliveries_between,
                checks=checks.between,
                visits=visits.between,
            ),
            privacy=privacy,
            round=rounds,
            devices=devices,
            health=health,
            metrics=self._metrics,
            channels=self._channel_health,
            extra_routers=self._webhook_routers(),
        )

    def _start_api(self) -> None:
        from services.web.app import create_app

        self.app = create_app(self.api_context())
        server = _WebServer(self.app, *self._http_address())
        server.start()
        self._stack.callback(server.stop)
        self.url = server.url

    def _start_webhook_only(self) -> None:
        """`carehub run gateway` alone still takes vendor webhooks: they are gateway input."""
        from fastapi import FastAPI

        app = FastAPI(
            title="CareHub gateway webhooks", docs_url=None, redoc_url=None, openapi_url=None
        )
        for router in self._webhook_routers():
            app.include_router(router)
        server = _WebServer(app, *self._http_address())
        server.start()
        self._stack.callback(server.stop)
        self.url = server.url

    def _webhook_routers(self) -> list[APIRouter]:
        if self.gateway is None:
            return []
        from gateway.webhook import webhook_router

        token = self._webhook_token()
        secret = self.settings.webhook_secret
        return [
            webhook_router(self.gateway.ingestor, token, self.gateway.publish_result, secret=secret)
        ]

    # --- helpers --------------------------------------------------------------------------

    def _beat(self, part: str, status: Callable[[], dict[str, Any]]) -> None:
        beat = heartbeat.Beat(self._beats, part, status).start()
        self._stack.callback(beat.stop)

    def _metrics(self) -> dict[str, float]:
        """Every part's counters: from this process, or from the heartbeats of the others."""
        out: dict[str, float] = {}
        for part, service in (("gateway", self.gateway), ("rules", self.rules)):
            if service is not None:
                out.update(service.metrics())
                if part == "rules" and self.notifier is not None:
                    out.update(self.notifier.metrics())
                continue
            status = heartbeat.read_status(self._beats, part) or {}
            metrics = status.get("metrics") or {}
            out.update({str(k): float(v) for k, v in metrics.items()})
            out[f'carehub_part_up{{part="{part}"}}'] = float(
                heartbeat.read(self._beats, part) == "ok"
            )
        return out

    def _channel_health(self) -> dict[str, str]:
        """`channel:phone` → ok / failing / unknown: from the notifier in this process, or
        from the rules part's heartbeat (unknown while that part is not heard from)."""
        if self.notifier is not None:
            return self.notifier.health()
        state = heartbeat.read(self._beats, "rules")
        status = heartbeat.read_status(self._beats, "rules") or {}
        health = {str(k): str(v) for k, v in (status.get("notify_health") or {}).items()}
        if state in ("not running", "unreadable heartbeat") or state.startswith("silent"):
            return dict.fromkeys(health, "unknown")
        return health

    @staticmethod
    def _store_state(events: EventStore) -> str:
        try:
            events.counters()
        except Exception as err:  # noqa: BLE001 - any store failure is reported, not raised
            return f"failing: {type(err).__name__}"
        return "ok"

    def _http_address(self) -> tuple[str, int]:
        host = self.options.http_host or self.settings.http_host
        port = self.options.http_port
        return host, self.settings.http_port if port is None else port

    def _webhook_token(self) -> str | None:
        token = self.settings.webhook_token
        return token.get_secret_value() if token is not None else None

    def _session_key(self) -> str:
        key = self.settings.secret_key
        if key is not None and len(key.get_secret_value()) >= 32:
            return key.get_secret_value()
        if key is not None:
            msg = "CAREHUB_SECRET_KEY is too short: use at least 32 random characters"
            raise ConfigError(msg)
        # acknowledge links are signed in the rules part and checked in the api part; every
        # channel carries them, Web Push too (its notice's acknowledge action)
        from services.notify.desk import webpush_enabled

        notify = self.site.notify
        channels = notify.ntfy is not None or notify.espa is not None or webpush_enabled(self.site)
        links = bool(self.site.phones) and channels and "rules" in self.parts
        if self.options.demo or ("api" not in self.parts and not links):
            return secrets.token_urlsafe(32)
        msg = (
            "CAREHUB_SECRET_KEY is not set. The web app signs staff sessions and the rules part "
            "signs acknowledge links with it; set it (the same in every part) to "
            "32+ random characters (python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
        raise ConfigError(msg)
