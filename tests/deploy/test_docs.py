"""docs/deployment.md and docs/multisite.md against the files and code they describe: every
command, service, variable, metric and path they name exists, so the pages cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main
import yaml

from app.cli import app
from carehub.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "docs" / "deployment.md", ROOT / "docs" / "multisite.md"]
SOURCES = ("app", "carehub", "gateway", "services")


def text(page: Path) -> str:
    return page.read_text(encoding="utf-8")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_carehub_command_exists(page: Path) -> None:
    commands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    named = set(re.findall(r"(?:carehub|carehub\.sh) ([a-z][a-z-]+)", text(page)))
    named -= {"run", "health"} & named  # parts checked below
    assert named <= commands, named - commands
    from app.hub import RUN_PARTS

    for part in re.findall(r"carehub (?:run|health) ([a-z]+)", text(page)):
        assert part in (*RUN_PARTS, "all"), part


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_compose_service_exists(page: Path) -> None:
    services = set(yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"])
    many = r"docker compose (?:restart|stop|start|up -d)((?: [a-z]+)+)"  # services, then EOL
    for found in re.findall(many + r"\s*(?:$|`)", text(page), re.M):
        for word in found.split():
            assert word in services, f"no service {word}"
    one = r"docker compose (?:exec|kill -s HUP|logs)(?: -T)? ([a-z]+)"  # one, then a command
    for found in re.findall(one, text(page)):
        assert found in services, f"no service {found}"
    for found in re.findall(r"docker compose run [^\n]*?--entrypoint \S+ ([a-z]+)", text(page)):
        assert found in services, found


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_variable_is_a_setting_or_has_an_example(page: Path) -> None:
    known = {f"CAREHUB_{name.upper()}" for name in Settings.model_fields}
    for example in (ROOT / ".env.example", ROOT / "deploy/central/.env.example"):
        known |= set(re.findall(r"^([A-Z0-9_]+)=", example.read_text(), re.M))
    known |= set(
        re.findall(r"(DOCKER_INFLUXDB_INIT_[A-Z_]+)", (ROOT / "docker-compose.yml").read_text())
    )
    known |= {"CAREHUB_BRIDGE_PASSWORD"}  # read by deploy/mosquitto/bridge.py
    named = set(
        re.findall(r"\b((?:CAREHUB|INFLUXDB|GRAFANA|MQTTS?|DOCKER)_[A-Z0-9_]+)", text(page))
    )
    assert named <= known, named - known


def test_every_metric_the_deployment_page_names_is_made_by_the_code() -> None:
    code = "\n".join(
        p.read_text(encoding="utf-8") for d in SOURCES for p in (ROOT / d).rglob("*.py")
    )
    named = set(re.findall(r"`(carehub_[a-z_]+)\{?", text(PAGES[0])))
    assert named, "no metric named"
    for metric in named:
        assert metric in code, f"{metric} is made nowhere"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_path_exists_or_is_generated(page: Path) -> None:
    for path in re.findall(r"`((?:deploy|dashboards|docs|sites|tests)/[\w./*-]+)`", text(page)):
        if "generated" in path or "<" in path or "*" in path:
            continue
        if path.endswith("conf.d/tls.conf") or path.endswith("conf.d/bridge.conf"):
            continue  # written by the operator from the .example / bridge.py
        assert (ROOT / path).exists(), path
