"""`carehub import`: history into the stores through the gateway's own code.

Heavy imports stay inside the command bodies so `carehub --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cliutil import fail, resolve_site_path

MAX_BAD_LINES_SHOWN = 20


def import_cmd(
    file: Annotated[
        Path,
        typer.Argument(help="JSON Lines file, or a .csv visit log (import format, docs/cli.md)."),
    ],
    site: Annotated[
        Path | None,
        typer.Option("--site", "--config", help="Site file. Default: $CAREHUB_SITE_FILE."),
    ] = None,
) -> None:
    """Load history from an earlier system or another hub, so its nights can be reported.

    Exit 0 when every line was imported; 1 when some were not (each named, and written to
    FILE.rejected.jsonl), so a script notices that the history is incomplete; 2 when nothing
    could be imported at all (docs/cli.md).
    """
    from app.importer import ImportReport, import_history, read_lines, write_rejected
    from app.visits_import import import_visit_csv
    from carehub.errors import ConfigError
    from carehub.settings import get_settings
    from carehub.site import SiteIndex, load_site
    from gateway.pipeline import Ingestor
    from gateway.store import open_store
    from gateway.store.visits import VisitStore
    from services.alarms.store import AlarmStore

    if not file.is_file():
        fail(f"{file}: no such file")
    settings = get_settings()
    try:
        index = SiteIndex(load_site(resolve_site_path(site)))
        settings.db.parent.mkdir(parents=True, exist_ok=True)
        ingestor = Ingestor(index, open_store(settings), settings.mqtt_prefix)
    except ConfigError as err:
        fail(str(err))
    alarms = AlarmStore(settings.db)
    visits = VisitStore(settings.db, index.site.site)
    try:
        with typer.progressbar(length=max(1, file.stat().st_size), label="importing") as bar:
            if file.suffix.lower() == ".csv":  # a visit log (docs/freed-hours.md)
                report = import_visit_csv(read_lines(file), index, visits, ImportReport())
            else:
                report = import_history(
                    read_lines(file), ingestor, alarms, index.site.site, visits=visits
                )
            bar.update(file.stat().st_size)
    finally:
        ingestor.close()
        alarms.close()
        visits.close()
    for bad in report.bad_lines[:MAX_BAD_LINES_SHOWN]:
        typer.echo(f"{file}:{bad.line}: not imported: {bad.reason}", err=True)
    if len(report.bad_lines) > MAX_BAD_LINES_SHOWN:
        typer.echo(f"... and {len(report.bad_lines) - MAX_BAD_LINES_SHOWN} more", err=True)
    rejected = write_rejected(file, report)
    typer.echo(f"{file}: {report.summary()}")
    if rejected is None:
        return
    typer.echo(f"{len(report.bad_lines)} lines not imported: see {rejected}", err=True)
    if not report.imported:
        typer.echo("error: nothing in the file could be imported", err=True)
        raise typer.Exit(2)
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `carehub import`."""
    app.command("import")(import_cmd)
