"""Docs that state contracts are checked against the code, so they cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

from carehub.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_configuration_doc_lists_every_setting() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"`(CAREHUB_[A-Z_]+)`", text))
    assert documented == {f"CAREHUB_{name.upper()}" for name in Settings.model_fields}


def test_readme_has_exactly_two_setup_commands() -> None:
    text = (ROOT / "README.md").read_text()
    block = text.split("## Set-up", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands == ["./carehub.sh demo", "./carehub.sh test"]


def test_every_command_the_readme_names_exists() -> None:
    import typer.main

    from app.cli import app

    cli = typer.main.get_command(app)
    text = (ROOT / "README.md").read_text()
    named = set(re.findall(r"^\| `carehub ([a-z-]+)", text, re.M))
    assert {"run", "sim", "backfill", "report", "import", "demo"} <= named
    assert named <= set(cli.commands), named - set(cli.commands)  # type: ignore[attr-defined]
