"""`carehub demo`: everything on embedded defaults, on one machine, with one command.

A broker (the configured one if it answers, else Mosquitto or the embedded broker), the whole
hub in this process, a simulated care home running on an accelerated clock shared with the
hub, a few weeks of simulated history so the reports have nights to show, and demo logins with
fresh random passwords. Demo state lives in its own folder and starts clean every run.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from pydantic import SecretStr

from app.broker import LocalBroker, MosquittoBroker, reachable, start_local_broker
from app.hub import Hub, HubOptions
from carehub.clock import ScaledClock
from carehub.mqtt import Protocol
from carehub.settings import MqttTarget, Settings, get_settings
from carehub.site import Site, SiteIndex, load_site

_LOGGER = logging.getLogger(__name__)

DEMO_USERS = (("nattevagt", "staff"), ("leder", "manager"), ("admin", "admin"))
"""Night staff, manager, administrator: demo mode only, with new passwords every run."""
LEAD_IN = timedelta(minutes=20)
"""The simulated evening starts this long before the night window, to see the night begin."""


@dataclass(frozen=True, slots=True)
class DemoBroker:
    """Where the demo's broker is and how to speak to it."""

    target: MqttTarget
    name: str
    protocol: Protocol


def resolve_broker(stack: ExitStack) -> DemoBroker:
    """The configured broker when it answers, else one we start (and stop on exit)."""
    target = get_settings().mqtt_target()
    if target is not None and reachable(target.host, target.port):
        return DemoBroker(target, "configured", "5")
    if target is not None:
        _LOGGER.warning("configured broker %s does not answer; starting a local one", target.url())
    local: LocalBroker = start_local_broker()
    stack.callback(local.stop)
    protocol: Protocol = "5" if isinstance(local, MosquittoBroker) else "3.1.1"
    return DemoBroker(MqttTarget(host=local.host, port=local.port), local.name, protocol)


def demo_start(index: SiteIndex, now: datetime) -> datetime:
    """Simulated time begins shortly before tonight's night window (the site's local date)."""
    tonight = now.astimezone(index.tz).date()
    return index.night_bounds(tonight)[0] - LEAD_IN


def demo_settings(base: Settings, state: Path, target: MqttTarget, http_port: int) -> Settings:
    """The demo's own settings: its own database, the broker it found, no InfluxDB."""
    return base.model_copy(
        update={
            "db": state / "carehub.db",
            "mqtt_url": target.url(with_password=True),
            "mqtt_gateway_url": None,
            "mqtt_rules_url": None,
            "mqtt_api_url": None,
            "http_port": http_port,
            "secret_key": SecretStr(secrets.token_urlsafe(32)),
            "webhook_token": SecretStr(secrets.token_urlsafe(32)),
            "influx_url": None,
        }
    )


def create_demo_users(db: Path) -> list[tuple[str, str, str]]:
    """Demo logins with random passwords: (name, role, password)."""
    from services.web.users import Role, UserStore

    store = UserStore(db)
    made = []
    try:
        for name, role in DEMO_USERS:
            password = "-".join(secrets.token_hex(2) for _ in range(3))
            store.upsert(name, password, Role(role))
            made.append((name, role, password))
    finally:
        store.close()
    return made


class DemoStoppedError(Exception):
    """Ctrl-C while the history was being written."""


def _history(
    site: Site, settings: Settings, days: int, end: datetime, seed: int, stop: threading.Event
) -> None:
    """Nights of simulated history before the demo starts, so the reports show something;
    written through the gateway and rules like live data (`carehub backfill`)."""
    if days <= 0:
        return
    from app.backfill import backfill

    typer.echo(f"  history  simulating the {days} days before tonight ...")

    def progress(_days: float) -> None:
        if stop.is_set():
            raise DemoStoppedError

    report = backfill(
        site,
        settings.db,
        days=days,
        end=end,
        seed=seed,
        prefix=settings.mqtt_prefix,
        progress=progress,
    )
    typer.echo(
        f"           {report.accepted} messages, {report.alarms} alarms ({report.seconds:.0f} s)"
    )


def status_line(hub: Hub, sim: Any, index: SiteIndex) -> str:
    """One line every few seconds: simulated time, devices online, messages, open alarms."""
    stats = sim.stats()
    when = stats.sim_time.astimezone(index.tz).strftime("%a %H:%M") if stats.sim_time else "—"
    active = len(hub.alarms.list_alarms("active")) if hub.alarms is not None else 0
    return (
        f"  [{when}] {stats.online}/{stats.devices} devices online, {stats.sent} messages, "
        f"{active} open alarms"
    )


def run_demo(
    site_path: Path,
    *,
    speed: float,
    http_port: int,
    stop: threading.Event,
    history_days: int = 7,
    seed: int = 1,
    state_dir: Path | None = None,
    ready: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Start the parts, print where to look, and run until `stop` is set."""
    site = load_site(site_path)
    index = SiteIndex(site)
    base = get_settings()
    state = state_dir or base.db.parent / "demo"
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    with ExitStack() as stack:
        broker = resolve_broker(stack)
        settings = demo_settings(base, state, broker.target, http_port)
        start = demo_start(index, datetime.now(UTC))
        try:
            _history(site, settings, history_days, start, seed, stop)
        except DemoStoppedError:
            typer.echo("stopped.")
            return
        logins = create_demo_users(settings.db)
        clock = ScaledClock(start, speed)
        hub = Hub(
            settings,
            site,
            clock=clock,
            options=HubOptions(protocol=broker.protocol, demo=True, http_host="127.0.0.1"),
        )
        hub.start()
        stack.callback(hub.stop)
        if not hub.wait_ready(30):
            _LOGGER.warning("the hub has not connected to the broker yet; it keeps trying")
        from firmware_sim.runtime import Simulator

        sim = Simulator(
            site,
            broker.target,
            clock=clock,
            seed=seed,
            prefix=settings.mqtt_prefix,
            protocol=broker.protocol,
            webhook_url=f"{hub.url}/api/webhooks/medcloud" if hub.url else None,
            webhook_token=settings.webhook_token.get_secret_value()
            if settings.webhook_token
            else None,
        )
        sim.start()
        stack.callback(sim.stop)
        local_start = start.astimezone(index.tz)
        typer.echo(f"CareHub demo: {site.name} ({len(site.residents)} residents)")
        typer.echo(f"  web app  {hub.url}")
        if hub.notifier is not None:
            typer.echo(f"  phones   {hub.url}/phones (what each phone was sent: the ladder)")
        typer.echo(f"  broker   {broker.target.url()} ({broker.name})")
        typer.echo(f"  clock    {speed:g}x, simulated evening from {local_start:%Y-%m-%d %H:%M %Z}")
        typer.echo("  logins   (demo only; new passwords every run)")
        for name, role, password in logins:
            typer.echo(f"           {name:<10} {password:<16} {role}")
        typer.echo("Press Ctrl-C to stop.")
        if ready is not None:
            ready({"url": hub.url, "logins": logins, "hub": hub, "sim": sim})
        last = 0.0
        while not stop.wait(0.5):
            if time.monotonic() - last >= 5:
                last = time.monotonic()
                typer.echo(status_line(hub, sim, index))
        typer.echo("stopping ...")
    typer.echo("stopped.")
