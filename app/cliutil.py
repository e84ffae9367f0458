"""What every `carehub` command shares: the --site option, errors that say what to fix, the
site-file lookup, logging set-up and a signal-driven stop."""

from __future__ import annotations

import logging
import os
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Annotated, NoReturn

import typer

from carehub.settings import get_settings

SiteOption = Annotated[
    Path | None,
    typer.Option(
        "--site",
        "--config",
        help="Site file (YAML). Default: $CAREHUB_SITE_FILE.",
        show_default=False,
    ),
]


def fail(message: str) -> NoReturn:
    """Print what to fix and exit with status 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def resolve_site_path(site: Path | None) -> Path:
    """The site file from --site or CAREHUB_SITE_FILE."""
    path = site or get_settings().site_file
    if path is None:
        fail("no site file: pass --site FILE or set CAREHUB_SITE_FILE")
    return path


def setup_logging(quiet: bool = False) -> None:
    """`quiet` (the demo): warnings only, unless CAREHUB_LOG_LEVEL says otherwise, so the
    terminal shows the URL, the logins and a status line rather than every alarm."""
    level = get_settings().log_level.upper()
    if quiet and "CAREHUB_LOG_LEVEL" not in os.environ:
        level = "WARNING"
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


class Stop:
    """Turns SIGINT and SIGTERM into one event the main thread waits on."""

    def __init__(self) -> None:
        self.event = threading.Event()
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        logging.getLogger(__name__).info("signal %s: stopping", signal.Signals(signum).name)
        self.event.set()

    def wait(self) -> None:
        """Sleep until a signal arrives."""
        while not self.event.wait(0.5):
            pass
