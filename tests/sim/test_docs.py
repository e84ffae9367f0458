"""docs/simulator.md states every fault and every option of the commands: checked, not hoped."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import typer.main

from app.cli import app
from firmware_sim.faults import Faults

DOC = (Path(__file__).resolve().parents[2] / "docs" / "simulator.md").read_text()


def test_every_fault_is_documented() -> None:
    documented = set(re.findall(r"^\| `([a-z_]+)` \| (?:device|message) \|", DOC, re.M))
    assert documented == {f.name for f in dataclasses.fields(Faults)}


def test_every_option_of_sim_and_backfill_is_documented() -> None:
    commands: dict[str, Any] = getattr(typer.main.get_command(app), "commands")  # noqa: B009
    for name in ("sim", "backfill"):
        for param in commands[name].params:
            flag = param.opts[0]
            if flag.startswith("--"):
                assert f"`{flag}" in DOC, f"carehub {name} {flag} is not in docs/simulator.md"
