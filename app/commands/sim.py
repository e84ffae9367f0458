"""`carehub sim` and `carehub backfill`; heavy imports stay inside the command bodies."""

from __future__ import annotations

import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.cliutil import Stop, fail, resolve_site_path

if TYPE_CHECKING:
    from carehub.site import SiteIndex
    from firmware_sim.runtime import Simulator

SiteOpt = Annotated[
    Path | None,
    typer.Option("--site", "--config", help="Site file. Default: $CAREHUB_SITE_FILE."),
]
STATUS_EVERY_S = 0.5


def default_start(index: SiteIndex, now: datetime) -> datetime:
    """The night the home is in, or the coming one: its start, so the simulated night is
    a whole, realistic one (at 03:00 that is last night's 22:00; at 10:00 tonight's)."""
    label = index.night_of(now)
    if label is None:
        label = now.astimezone(index.tz).date()
        if index.night_bounds(label)[0] < now:  # an evening window already over (odd sites)
            label += timedelta(days=1)
    return index.night_bounds(label)[0]


def parse_start(text: str | None, index: SiteIndex, now: datetime) -> datetime:
    """--start: a date (that night's start, local time) or an ISO time; ValueError if neither."""
    if text is None:
        return default_start(index, now)
    try:
        if len(text) == 10:
            return index.night_bounds(date.fromisoformat(text))[0]
        when = datetime.fromisoformat(text)
    except ValueError:
        msg = f"--start {text!r}: give a date (2026-11-22) or a time (2026-11-22T21:30:00+01:00)"
        raise ValueError(msg) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=index.tz)
    return when.astimezone(UTC)


def parse_speed(text: str) -> float | None:
    """--speed: simulated seconds per real second, or 'max' (None)."""
    if text.strip().lower() == "max":
        return None
    try:
        rate = float(text)
    except ValueError:
        msg = f"--speed {text!r}: a number (60 = an hour a minute) or 'max'"
        raise ValueError(msg) from None
    if not rate > 0 or rate == float("inf"):
        msg = f"--speed {text!r}: must be a positive number or 'max'"
        raise ValueError(msg)
    return rate


def sim(
    site: SiteOpt = None,
    broker: Annotated[
        str | None, typer.Option(help="mqtt://user:pass@host:port. Default: $CAREHUB_MQTT_URL.")
    ] = None,
    speed: Annotated[
        str, typer.Option(help="Simulated seconds per real second (60: an hour a minute), or max.")
    ] = "60",
    nights: Annotated[int, typer.Option(help="Nights to simulate; 0 = until stopped.")] = 1,
    hours: Annotated[
        float | None, typer.Option(help="Simulate this many hours instead of whole nights.")
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(help="First night (a date) or a start time. Default: the current night."),
    ] = None,
    seed: Annotated[int, typer.Option(help="The same seed gives the same home.")] = 1,
    faults: Annotated[
        str | None,
        typer.Option(
            help="e.g. silent=0.05,flaky=0.1,duplicate=0.02,reorder=0.02,late=0.01,"
            "malformed=0.01,clock_skew=0.05"
        ),
    ] = None,
    protocol: Annotated[str, typer.Option(help="MQTT protocol: 5 or 3.1.1.")] = "5",
    credentials: Annotated[
        Path | None,
        typer.Option(help="credentials.json from `carehub broker-config`: one login per device."),
    ] = None,
    webhook: Annotated[
        str | None, typer.Option(help="Hub URL for vendor-cloud devices, e.g. http://hub:8080.")
    ] = None,
) -> None:
    """Simulated devices of a care home publishing over MQTT (Ctrl-C stops)."""
    from carehub.clock import ScaledClock
    from carehub.errors import ConfigError
    from carehub.settings import MqttTarget, get_settings
    from carehub.site import SiteIndex, load_site
    from firmware_sim.faults import Faults
    from firmware_sim.runtime import Simulator, load_credentials

    site_path = resolve_site_path(site)
    settings = get_settings()
    try:
        parsed = load_site(site_path)
        index = SiteIndex(parsed)
        fault_rates = Faults.parse(faults)
        rate = parse_speed(speed)
        target = MqttTarget.parse(broker) if broker else settings.mqtt_target()
        begin = parse_start(start, index, datetime.now(UTC))
        logins = load_credentials(credentials)
    except (ConfigError, ValueError, OSError) as err:
        fail(str(err))
    if target is None:
        fail("no broker: pass --broker mqtt://host:port or set CAREHUB_MQTT_URL")
    if protocol not in ("5", "3.1.1"):
        fail(f"--protocol {protocol!r}: use 5 or 3.1.1")
    if nights < 0:
        fail("--nights must be 0 (until stopped) or more")
    if hours is not None and not hours > 0:
        fail("--hours must be positive")
    until: datetime | None = None
    if hours is not None:
        until = begin + timedelta(hours=hours)
    elif nights:
        first = index.night_of(begin) or begin.astimezone(index.tz).date()
        until = index.night_bounds(first + timedelta(days=nights - 1))[1]
    token = settings.webhook_token
    simulator = Simulator(
        parsed,
        target,
        clock=ScaledClock(begin, rate or 1.0),
        seed=seed,
        faults=fault_rates,
        prefix=settings.mqtt_prefix,
        protocol="5" if protocol == "5" else "3.1.1",
        start=begin,
        until=until,
        fastest=rate is None,
        credentials=logins,
        webhook_url=f"{webhook.rstrip('/')}/api/webhooks/medcloud" if webhook else None,
        webhook_token=token.get_secret_value() if token else None,
        ca_file=str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None,
    )
    stop = Stop()
    local = begin.astimezone(index.tz)
    typer.echo(
        f"simulating {parsed.name}: {len(simulator.devices)} devices on {target.url()}, "
        f"from {local:%Y-%m-%d %H:%M %Z}, speed {speed}, seed {seed}, faults {fault_rates}",
        err=True,
    )
    simulator.start()
    try:
        while not stop.event.wait(STATUS_EVERY_S) and not simulator.done.is_set():
            _status(simulator, index)
        _status(simulator, index, final=True)
    finally:
        simulator.stop()


def _status(simulator: Simulator, index: SiteIndex, final: bool = False) -> None:
    """The live one-line status on stderr (a plain line at the end, or when not a terminal)."""
    s = simulator.stats()
    when = s.sim_time.astimezone(index.tz).strftime("%Y-%m-%d %H:%M") if s.sim_time else "—"
    line = (
        f"{s.online}/{s.devices} devices online · {s.sent} sent · {s.queued} queued · "
        f"{s.webhook_posts} webhook · simulated {when}"
    )
    if sys.stderr.isatty() and not final:
        sys.stderr.write("\r" + line.ljust(100))
        sys.stderr.flush()
    elif final:
        sys.stderr.write(("\n" if sys.stderr.isatty() else "") + line + "\n")


def backfill_cmd(
    site: SiteOpt = None,
    days: Annotated[int, typer.Option(help="Days of history to write.")] = 30,
    end: Annotated[
        str | None,
        typer.Option(help="Last day (YYYY-MM-DD): history ends at its noon. Default: now."),
    ] = None,
    seed: Annotated[int, typer.Option(help="The same seed gives the same history.")] = 1,
    db: Annotated[Path | None, typer.Option(help="SQLite file. Default: $CAREHUB_DB.")] = None,
) -> None:
    """Write N days of simulated history through the gateway and rules, for the reports."""
    from app.backfill import backfill
    from carehub.errors import ConfigError
    from carehub.settings import get_settings
    from carehub.site import SiteIndex, load_site

    if days <= 0:
        fail("--days must be at least 1")
    try:
        parsed = load_site(resolve_site_path(site))
    except ConfigError as err:
        fail(str(err))
    end_at = None
    if end is not None:
        try:
            day = date.fromisoformat(end)
        except ValueError:
            fail(f"--end {end!r}: a date, YYYY-MM-DD")
        noon = datetime.combine(day, datetime.min.time().replace(hour=12))
        end_at = noon.replace(tzinfo=SiteIndex(parsed).tz)
    path = db or get_settings().db
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        fail(f"--db {path}: {err}")
    started = time.perf_counter()
    with typer.progressbar(length=days, label=f"backfilling {days} days", file=sys.stderr) as bar:
        lock = threading.Lock()
        done = [0.0]

        def progress(d: float) -> None:
            with lock:
                before = int(done[0])
                done[0] += d
                bar.update(int(done[0]) - before)

        report = backfill(
            parsed,
            path,
            days=days,
            end=end_at,
            seed=seed,
            prefix=get_settings().mqtt_prefix,
            progress=progress,
        )
    elapsed = time.perf_counter() - started
    rejected = f" ({report.rejected_reasons})" if report.rejected else ""
    typer.echo(
        f"{path}: {report.emissions} messages ({report.accepted} stored, {report.rejected} "
        f"rejected{rejected}), {report.alarms} alarms, {report.staff_actions} staff actions, "
        f"{report.digital_checks} digital checks "
        f"in {elapsed:.1f} s ({days / elapsed:.2f} days/s)"
    )


def register(app: typer.Typer) -> None:
    """Add `carehub sim` and `carehub backfill`."""
    app.command("sim")(sim)
    app.command("backfill")(backfill_cmd)
