"""`carehub demo`: everything on embedded defaults, on one machine, with one command."""

from __future__ import annotations

import logging
import threading
from contextlib import ExitStack
from pathlib import Path

import typer

from carehub.broker import LocalBroker, reachable, start_local_broker
from carehub.settings import MqttTarget, get_settings
from carehub.site import load_site

_LOGGER = logging.getLogger(__name__)


def resolve_broker(stack: ExitStack) -> tuple[MqttTarget, str]:
    """The configured broker when it answers, else one we start (and stop on exit)."""
    target = get_settings().mqtt_target()
    if target is not None and reachable(target.host, target.port):
        return target, "configured"
    if target is not None:
        _LOGGER.warning("configured broker %s does not answer; starting a local one", target.url())
    local: LocalBroker = start_local_broker()
    stack.callback(local.stop)
    return MqttTarget(host=local.host, port=local.port), local.name


def run_demo(site_path: Path, *, speed: float, http_port: int, stop: threading.Event) -> None:
    """Start the parts, print where to look, and run until `stop` is set."""
    site = load_site(site_path)
    with ExitStack() as stack:
        target, broker_name = resolve_broker(stack)
        typer.echo(f"CareHub demo: {site.name} ({len(site.residents)} residents)")
        typer.echo(f"  broker   {target.url()} ({broker_name})")
        typer.echo(f"  speed    {speed:g}x simulated time")
        typer.echo("Press Ctrl-C to stop.")
        while not stop.wait(0.5):
            pass
        typer.echo("stopping ...")
    typer.echo("stopped.")
