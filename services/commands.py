"""`carehub` commands of the services package; heavy imports stay inside the command bodies."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this package's commands to the `carehub` app."""
