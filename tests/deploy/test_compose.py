"""The deployment files: the compose file against the Compose specification, and every
service, volume, file, command and variable it names exists."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from check_jsonschema.builtin_schemas import get_builtin_schema

from app.cli import app
from carehub.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
CAREHUB_SERVICES = ("gateway", "rules", "api", "sim")
COMPOSE_FILES = [ROOT / "docker-compose.yml", ROOT / "deploy" / "central" / "docker-compose.yml"]
"""A care home's stack, and the municipality's central one (docs/multisite.md)."""
each_file = pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: str(p.relative_to(ROOT)))


def compose(path: Path = COMPOSE_FILES[0]) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    return data


def generated(source: Path) -> bool:
    """Written by `carehub broker-config` or bridge.py where CareHub runs; never committed."""
    return source.name == "generated" and (source.parent / ".gitignore").exists()


def services() -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose()["services"]
    return result


def carehub_commands() -> set[str]:
    import typer.main

    return set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def env_example(path: Path = COMPOSE_FILES[0]) -> dict[str, str]:
    text = (path.parent / ".env.example").read_text()
    return dict(re.findall(r"^([A-Z0-9_]+)=(.*)$", text, re.M))


@each_file
def test_compose_file_is_valid_against_the_compose_spec(path: Path) -> None:
    schema = get_builtin_schema("vendor.compose-spec")
    jsonschema.validate(compose(path), schema)


@each_file
def test_every_volume_and_file_exists_and_every_named_volume_is_used(path: Path) -> None:
    c = compose(path)
    declared = set(c["volumes"])
    used: set[str] = set()
    for name, service in c["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                host = (path.parent / source).resolve()
                assert host.exists() or generated(host), f"{name}: {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} not declared"
                used.add(source)
    assert declared == used, f"declared but unused: {declared - used}"


def test_the_mosquitto_config_the_broker_runs_is_mounted() -> None:
    broker = services()["mosquitto"]
    config = broker["command"][broker["command"].index("-c") + 1]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in broker["volumes"]}
    assert mounts[config] == "./deploy/mosquitto/mosquitto.conf"
    conf = (ROOT / "deploy/mosquitto/mosquitto.conf").read_text()
    for path in re.findall(r"^(?:password_file|acl_file|include_dir)\s+(\S+)", conf, re.M):
        assert any(path.startswith(target) for target in mounts), f"{path} is not mounted"
    assert broker["user"].startswith("${CAREHUB_UID")  # owns the 0600 generated files


def test_carehub_services_run_existing_commands_and_parts() -> None:
    from app.hub import PARTS

    commands = carehub_commands()
    for name in CAREHUB_SERVICES:
        service = services()[name]
        assert service["image"].startswith("carehub:"), name
        command = service["command"]
        assert command[0] in commands, f"{name}: no `carehub {command[0]}`"
        if command[0] == "run":
            assert command[1] in PARTS, f"{name}: `carehub run` has no part {command[1]}"
        check = service.get("healthcheck", {})
        if name == "sim":
            assert check == {"disable": True}  # no web server: the image's check would fail
            assert service["profiles"] == ["sim"]
            continue
        assert service["restart"] == "unless-stopped"
        test = check["test"]
        if test[:2] == ["CMD", "carehub"]:
            assert test[2] in commands
            assert test[3] == command[1]
        else:
            assert "/healthz" in " ".join(test)
    assert [services()[p]["command"][1] for p in PARTS] == list(PARTS)  # one container each


def test_services_share_one_state_volume_and_name_only_real_settings() -> None:
    known = {f"CAREHUB_{name.upper()}" for name in Settings.model_fields}
    for name in CAREHUB_SERVICES:
        env = services()[name]["environment"]
        unknown = {k for k in env if k.startswith("CAREHUB_")} - known
        assert not unknown, f"{name}: {unknown} are not settings (carehub/settings.py)"
        if name != "sim":
            assert "carehub-state:/var/lib/carehub" in services()[name]["volumes"]
            assert env["CAREHUB_DB"].startswith("/var/lib/carehub/")
        for mapping in services()[name].get("ports", []):
            assert mapping.rsplit(":", 1)[1] == env["CAREHUB_HTTP_PORT"], name
            assert env["CAREHUB_HTTP_HOST"] == "0.0.0.0"


def test_each_service_logs_in_with_its_own_broker_credential() -> None:
    from app.brokerconfig import SERVICES

    for name in CAREHUB_SERVICES:
        url = services()[name]["environment"]["CAREHUB_MQTT_URL"]
        user = re.match(r"mqtt://([^:]+):", url)
        assert user is not None
        assert user.group(1) == f"carehub-{name}"
        assert user.group(1) in SERVICES


@each_file
def test_depends_on_names_services_with_the_health_they_wait_for(path: Path) -> None:
    all_services = compose(path)["services"]
    for name, service in all_services.items():
        for dep, rule in service.get("depends_on", {}).items():
            assert dep in all_services, f"{name} depends on unknown {dep}"
            if rule.get("condition") == "service_healthy":
                assert "test" in all_services[dep].get("healthcheck", {}), dep


@each_file
def test_every_variable_has_an_example_and_no_secret_is_committed(path: Path) -> None:
    text = path.read_text()
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    example = env_example(path)
    assert used - {"CAREHUB_VERSION"} <= set(example), used - set(example)
    assert set(example) <= used, f"examples nothing uses: {set(example) - used}"
    for key, value in example.items():
        if any(s in key for s in ("PASSWORD", "TOKEN", "SECRET")):
            assert value == "", f"a secret has a value in .env.example: {key}"
    ignored = (ROOT / ".gitignore").read_text().split() + (
        ROOT / ".dockerignore"
    ).read_text().split()
    assert ".env" in ignored
    assert "generated/" in (ROOT / "deploy/mosquitto/.gitignore").read_text()


def test_influxdb_is_initialised_from_env_with_a_retention() -> None:
    env = services()["influxdb"]["environment"]
    assert env["DOCKER_INFLUXDB_INIT_MODE"] == "setup"
    for key in ("ORG", "BUCKET", "RETENTION", "ADMIN_TOKEN", "PASSWORD", "USERNAME"):
        assert env[f"DOCKER_INFLUXDB_INIT_{key}"].startswith("${"), key
    assert services()["influxdb"]["image"] == "influxdb:2"  # `latest` is InfluxDB 3
    # one knob: the bucket forgets points when the hub forgets raw events
    days = Settings.model_fields["retention_days"].default
    assert env["DOCKER_INFLUXDB_INIT_RETENTION"] == f"${{CAREHUB_RETENTION_DAYS:-{days}}}d"
    for name in ("gateway", "rules", "api"):
        assert services()[name]["environment"]["CAREHUB_RETENTION_DAYS"] == (
            f"${{CAREHUB_RETENTION_DAYS:-{days}}}"
        )


def test_grafana_provisioning_matches_the_mounts_and_the_dashboards() -> None:
    grafana = services()["grafana"]
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/carehub.yaml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    assert "./dashboards:/var/lib/grafana/dashboards:ro" in grafana["volumes"]
    datasource_file = ROOT / "deploy/grafana/provisioning/datasources/influxdb.yaml"
    for var in re.findall(r"\$\{([A-Z_]+)\}", datasource_file.read_text()):
        assert var in grafana["environment"], f"Grafana's environment lacks {var}"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (ROOT / "dashboards" / Path(home).name).exists()
    assert sorted((ROOT / "dashboards").glob("*.json")), "no dashboards"


def test_the_central_stack_serves_the_same_dashboards_and_datasource() -> None:
    central = compose(COMPOSE_FILES[1])["services"]
    here = COMPOSE_FILES[1].parent

    def mounts(service: dict[str, Any], base: Path) -> dict[str, Path]:
        out = {}
        for volume in service["volumes"]:
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                out[target] = (base / source).resolve()
        return out

    assert mounts(central["grafana"], here) == mounts(services()["grafana"], ROOT)
    assert central["grafana"]["environment"] == services()["grafana"]["environment"]
    assert central["influxdb"] == services()["influxdb"]
    assert set(central) == {"mosquitto", "influxdb", "grafana", "ingest"}
    broker = central["mosquitto"]
    config = broker["command"][broker["command"].index("-c") + 1]
    assert config == "/mosquitto/generated/mosquitto.conf"  # bridge.py central writes it
    assert broker["ports"] == ["${MQTTS_PORT:-8883}:8883"]  # TLS only from outside


def test_the_central_ingest_runs_the_hub_image_as_carehub_central() -> None:
    """`carehub run central` from the same image and with the same InfluxDB settings as a care
    home's hub, logged in as bridge.py's reader, no site file, and a health check of its own."""
    from app.hub import CENTRAL, RUN_PARTS
    from deploy.mosquitto.bridge import CENTRAL_READER

    ingest = compose(COMPOSE_FILES[1])["services"]["ingest"]
    hub = services()["gateway"]
    assert ingest["image"] == hub["image"]
    assert (COMPOSE_FILES[1].parent / ingest["build"]).resolve() == ROOT
    assert ingest["command"] == ["run", CENTRAL]
    assert CENTRAL in RUN_PARTS
    assert ingest["restart"] == "unless-stopped"
    assert ingest["healthcheck"]["test"] == ["CMD", "carehub", "health", CENTRAL]
    assert ingest["depends_on"]["influxdb"] == {"condition": "service_healthy"}
    env = ingest["environment"]
    known = {f"CAREHUB_{name.upper()}" for name in Settings.model_fields}
    assert set(env) <= known, set(env) - known
    assert "CAREHUB_SITE_FILE" not in env  # it serves every site
    for key in ("URL", "ORG", "BUCKET", "TOKEN"):
        assert env[f"CAREHUB_INFLUX_{key}"] == hub["environment"][f"CAREHUB_INFLUX_{key}"], key
    user = re.match(r"mqtt://([^:]+):\$\{([A-Z_]+):\?", env["CAREHUB_MQTT_URL"])
    assert user is not None
    assert user.group(1) == CENTRAL_READER
    assert env["CAREHUB_MQTT_URL"].endswith("@mosquitto:1883")  # inside; 8883 is for the homes
    assert env["CAREHUB_DB"].startswith("/var/lib/carehub/")  # the heartbeat lives beside it
    assert "central-state:/var/lib/carehub" in ingest["volumes"]


@pytest.mark.parametrize(
    "rule",
    [
        r"^FROM python:3\.11-slim\S* AS build$",
        r"^FROM python:3\.11-slim\S*$",
        r"uv sync --locked --no-dev",
        r"^USER 10001:10001$",
        r'^ENTRYPOINT \["carehub"\]$',
    ],
)
def test_dockerfile_is_slim_locked_and_non_root(rule: str) -> None:
    assert re.search(rule, (ROOT / "Dockerfile").read_text(), re.M), rule


def test_dockerfile_copies_only_what_exists() -> None:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), source


def test_dashboard_files_are_json() -> None:
    for dashboard in (ROOT / "dashboards").glob("*.json"):
        json.loads(dashboard.read_text())


def test_no_credential_reaches_the_docker_build() -> None:
    """The build context is sent to the builder: the generated credentials stay out."""
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in ("deploy/mosquitto/generated", "deploy/central/generated", ".env"):
        assert path in ignored, path
