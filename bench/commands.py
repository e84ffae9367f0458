"""`carehub bench`: the same as `python -m bench`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def bench(
    quick: Annotated[bool, typer.Option(help="Small sizes: under a minute on 2 cores.")] = False,
    only: Annotated[
        str, typer.Option(help="Comma list of broker, ingest, latency, reports, rss.")
    ] = "broker,ingest,latency,reports,rss",
    profile: Annotated[
        Path | None, typer.Option(help="Write profiles (hot spots) into this folder.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the JSON to this file.")] = None,
) -> None:
    """Measure throughput, alarm latency, report time and memory; print one JSON object."""
    from bench.run import run_cli

    code = run_cli(quick, only, profile, out)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add `carehub bench`."""
    app.command("bench")(bench)
