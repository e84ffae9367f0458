"""`carehub` commands of the firmware_sim package; heavy imports stay inside the command bodies."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this package's commands to the `carehub` app."""
