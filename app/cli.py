"""The `carehub` command (docs/cli.md).

Each command imports its part of CareHub only when it runs, so `carehub check-config` stays
fast and a missing optional part never breaks the others. Exit status: 0 success, 2 bad usage
or bad input, with a message that says what to fix.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from app.cliutil import SiteOption, Stop, fail, resolve_site_path, setup_logging
from app.commands import gateway as gateway_commands
from app.commands import services as services_commands
from app.commands import sim as sim_commands
from app.commands import users as user_commands
from carehub.errors import ConfigError
from carehub.private import private_umask

app = typer.Typer(
    name="carehub",
    help="CareHub: sensor hub for care homes (fall, diaper, medication) with measured benefit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_SITE = REPO_ROOT / "sites" / "demo.yaml"


@app.command("check-config")
def check_config(file: Annotated[Path, typer.Argument(help="The site file to check.")]) -> None:
    """Validate a site file and summarise it; errors name the line and the field."""
    from carehub.site import check_site_file

    try:
        site, warnings = check_site_file(file)
    except ConfigError as err:
        typer.echo(str(err), err=True)
        raise typer.Exit(2) from err
    for w in warnings:
        at = f"line {w.line}: " if w.line else ""
        typer.echo(f"{file}: warning: {at}{w.where()}: {w.message}", err=True)
    kinds: dict[str, int] = {}
    for device in {d.id: d for d in site.devices}.values():
        kinds[device.kind.value] = kinds.get(device.kind.value, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no devices"
    typer.echo(
        f"{file}: OK — site {site.site!r} ({site.name}), {len(site.wards)} wards, "
        f"{len(site.residents)} residents, devices: {summary}, {len(site.phones)} phones"
    )


@app.command()
def demo(
    site: Annotated[Path, typer.Option(help="Site file to simulate.")] = DEMO_SITE,
    speed: Annotated[float, typer.Option(help="Simulated seconds per real second.")] = 60.0,
    port: Annotated[int, typer.Option(help="Web app port (0 = any free port).")] = 8080,
    history_days: Annotated[
        int, typer.Option(help="Days of simulated history before tonight, for the reports.")
    ] = 7,
    seed: Annotated[int, typer.Option(help="The same seed gives the same care home.")] = 1,
) -> None:
    """Run the whole hub on embedded defaults: broker, hub, simulated care home, web app."""
    from app.demo import run_demo

    setup_logging(quiet=True)
    if speed <= 0:
        fail("--speed must be positive")
    if history_days < 0:
        fail("--history-days must be 0 or more")
    try:
        run_demo(
            site,
            speed=speed,
            http_port=port,
            stop=Stop().event,
            history_days=history_days,
            seed=seed,
        )
    except ConfigError as err:
        fail(str(err))


@app.command()
def run(
    part: Annotated[
        str,
        typer.Argument(
            help="gateway, rules, api or all (a care home); central (the municipality's ingest)."
        ),
    ] = "all",
    site: SiteOption = None,
) -> None:
    """Run the production services (one part per container, or all in one process)."""
    from app.hub import CENTRAL, Hub, parse_parts
    from carehub.settings import get_settings
    from carehub.site import load_site

    setup_logging()
    stop = Stop()
    try:
        parts = parse_parts(part)
    except ConfigError as err:
        fail(str(err))
    if parts == (CENTRAL,):
        _run_central(stop, site)
        return
    try:
        parsed = load_site(resolve_site_path(site))
        hub = Hub(get_settings(), parsed, parts)
        hub.start()
    except ConfigError as err:
        fail(str(err))
    log = logging.getLogger("carehub.run")
    log.info(
        "running %s for site %s%s",
        "+".join(parts),
        parsed.site,
        f" at {hub.url}" if hub.url else "",
    )
    try:
        stop.wait()
    finally:
        hub.stop()
        log.info("stopped")


def _run_central(stop: Stop, site: Path | None) -> None:
    """`carehub run central`: every site's bridged messages into the central InfluxDB."""
    from carehub.settings import get_settings
    from services.central import CentralService

    if site is not None:
        fail("carehub run central serves every care home: it takes no --site")
    settings = get_settings()
    try:
        service = CentralService.from_settings(settings)
        service.start()
    except ConfigError as err:
        fail(str(err))
    log = logging.getLogger("carehub.run")
    log.info("running central ingest from %s", service.config.target.url())
    try:
        stop.wait()
    finally:
        service.stop()
        log.info("stopped")


@app.command("broker-config")
def broker_config(
    site: SiteOption = None,
    out: Annotated[Path, typer.Option(help="Folder to write the broker files into.")] = Path(
        "broker"
    ),
    port: Annotated[int, typer.Option(help="Plain MQTT listener port.")] = 1883,
    tls_port: Annotated[
        int | None, typer.Option(help="Also a TLS listener on this port (certs in OUT/tls/).")
    ] = None,
    rotate: Annotated[bool, typer.Option(help="New credentials for every client.")] = False,
    host: Annotated[
        str, typer.Option(help="Where the hub reaches the broker, for hub.env.")
    ] = "localhost",
) -> None:
    """Write mosquitto.conf, passwd, acl, credentials.json and hub.env (0600) for the site."""
    from app.brokerconfig import write_broker_config
    from carehub.settings import get_settings
    from carehub.site import load_site

    try:
        parsed = load_site(resolve_site_path(site))
    except ConfigError as err:
        fail(str(err))
    files = write_broker_config(
        parsed,
        out,
        prefix=get_settings().mqtt_prefix,
        port=port,
        tls_port=tls_port,
        keep_existing=not rotate,
        host=host,
    )
    typer.echo(
        f"wrote {files.config}, {files.passwd}, {files.acl}, {files.credentials}, {files.hub_env}"
    )
    typer.echo(
        "credentials.json holds every client's password and hub.env the hub parts' logins: "
        "keep them secret (mode 0600)."
    )


@app.command()
def health(
    part: Annotated[str, typer.Argument(help="gateway, rules, api or central.")],
) -> None:
    """Exit 0 when the part's heartbeat is fresh and healthy (for container health checks)."""
    from carehub import heartbeat
    from carehub.settings import get_settings

    state = heartbeat.read(heartbeat.heartbeat_dir(get_settings().db), part)
    typer.echo(f"{part}: {state}")
    if state != "ok":
        raise typer.Exit(1)


def _register_parts() -> None:
    """Each part of CareHub contributes its own commands."""
    sim_commands.register(app)
    gateway_commands.register(app)
    services_commands.register(app)
    user_commands.register(app)
    try:
        from bench.commands import register as register_bench
    except ImportError:  # an installation without the benchmarks (bench/ is a dev tool)
        return
    register_bench(app)


_register_parts()


def main() -> None:
    """Console entry point. Files it creates are private (0600, folders 0700): the database
    holds health data and password hashes (docs/security.md, "Files")."""
    private_umask()
    app()
