"""Grafana dashboards: provisionable JSON, and Flux that asks only for measurements, tags and
fields in the schema (gateway/store/influx_schema.py) and that the writers really write (the
gateway's InfluxDB store, services/timeseries' alarm-change and freed-hours points), so a
renamed or dropped field breaks this test, not a care home's dashboard."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml

from carehub.alarmkinds import RULE_KIND
from carehub.events import EventKind, EventType
from carehub.site import SiteIndex
from gateway.store import influx_schema as s
from services.alarms.model import AlarmState, Outcome
from services.alarms.store import ChangeReason
from services.rules.engine import RulesEngine
from services.timeseries import envelope_point, freed_hours_points
from tests.deploy.lineprotocol import lines_of
from tests.deploy.test_timeseries import LABEL, _fall_acked_resolved, gateway_lines, report

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "dashboards").glob("*.json"))
FLUX_COLUMNS = {"_measurement", "_field", "_value", "_time", "_start", "_stop"}
TAG_VALUES: dict[str, set[str]] = {
    "kind": {k.value for k in EventKind} | set(RULE_KIND.values()),
    "type": {t.value for t in EventType},
    "rule": set(RULE_KIND),
    "state": {st.value for st in AlarmState},
    "outcome": {o.value for o in Outcome},
    "change": {"new", "update", "end"},
    "reason": set(get_args(ChangeReason)),
    "priority": {"high", "medium", "low"},
    "scope": set(s.FREED_HOURS_SCOPES),
}
"""Values a query may compare a tag with: what the hub writes there."""


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, those inside rows too; rows themselves left out."""
    out = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            out += panel.get("panels", [])
        else:
            out.append(panel)
    return out


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, Flux) of every panel target and every query variable."""
    out = [
        (f"{dashboard['uid']}/{p['title']}/{t['refId']}", t["query"])
        for p in panels(dashboard)
        for t in p["targets"]
    ]
    out += [
        (f"{dashboard['uid']}/${v['name']}", v["query"])
        for v in dashboard["templating"]["list"]
        if v["type"] == "query"
    ]
    return out


ALL = [(path.name, where, flux) for path in DASHBOARDS for where, flux in queries(load(path))]


def provisioned_datasource_uid() -> str:
    text = (ROOT / "deploy/grafana/provisioning/datasources/influxdb.yaml").read_text()
    (source,) = yaml.safe_load(text)["datasources"]
    assert source["type"] == "influxdb"
    assert source["jsonData"]["version"] == "Flux"
    return str(source["uid"])


def test_the_three_dashboards_are_there() -> None:
    uids = [load(p)["uid"] for p in DASHBOARDS]
    assert sorted(uids) == ["carehub-device-health", "carehub-freed-hours", "carehub-live"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_has_grafanas_shape(path: Path) -> None:
    d = load(path)
    assert isinstance(d["uid"], str)
    assert 0 < len(d["uid"]) <= 40
    assert d["title"].strip()
    assert isinstance(d["schemaVersion"], int)
    assert d["schemaVersion"] >= 36
    assert "id" not in d or d["id"] is None  # provisioned dashboards get their id from Grafana
    uid = provisioned_datasource_uid()
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    assert panels(d), "no panels"
    for panel in panels(d):
        assert panel["title"].strip()
        assert panel["datasource"] == {"type": "influxdb", "uid": uid}, panel["title"]
        assert panel["targets"], f"{panel['title']}: no targets"
        for target in panel["targets"]:
            assert target["refId"]
            assert target["query"].strip()
            assert target.get("datasource", panel["datasource"]) == panel["datasource"]
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        assert pos["h"] > 0, panel["title"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_dashboard_can_show_one_site_or_several(path: Path) -> None:
    d = load(path)
    variables = {v["name"]: v for v in d["templating"]["list"]}
    site = variables["site"]
    assert site["type"] == "query"
    assert site["multi"]
    assert site["includeAll"]
    assert site["allValue"] == ".*"
    assert site["datasource"]["uid"] == provisioned_datasource_uid()
    for panel in panels(d):
        for target in panel["targets"]:
            assert "r.site =~ /^${site:regex}$/" in target["query"], panel["title"]


Columns = Mapping[str, Collection[str]]
"""Tags (or fields) by measurement."""


@pytest.mark.parametrize(("name", "where", "flux"), ALL, ids=[w for _, w, _ in ALL])
def test_flux_asks_only_for_measurements_tags_and_fields_the_hub_writes(
    name: str, where: str, flux: str
) -> None:
    check_flux(where, flux, s.TAGS_BY_MEASUREMENT, s.FIELDS_BY_MEASUREMENT)


def test_every_query_asks_for_what_the_writers_actually_write(
    alarm_world: tuple[RulesEngine, Any], test_index: SiteIndex
) -> None:
    """The schema module could name a field no writer fills (an empty panel): each query is
    checked against the points the writers make from a night's data (an event, a dead letter,
    device and seq states; a fall raised, acknowledged and resolved; a freed-hours report by
    site and ward)."""
    engine, world = alarm_world
    _fall_acked_resolved(engine, world)
    lines = [
        *gateway_lines(),
        *lines_of([envelope_point(e) for e in world[0].changes_since(0)]),
        *lines_of(freed_hours_points(report(test_index, LABEL, LABEL))),
    ]
    tags: dict[str, set[str]] = {}
    fields: dict[str, set[str]] = {}
    for line in lines:
        tags.setdefault(line.measurement, set()).update(line.tags)
        fields.setdefault(line.measurement, set()).update(line.fields)
    assert set(tags) == set(s.ALL_MEASUREMENTS)
    for _name, where, flux in ALL:
        check_flux(where, flux, tags, fields)


def check_flux(where: str, flux: str, tags_by: Columns, fields_by: Columns) -> None:
    """Every measurement, tag, field and column `flux` names is one of `tags_by` and
    `fields_by`, and every constant it compares a tag with is a value the hub writes."""
    measurements = set(re.findall(r'_measurement\s*==\s*"([^"]+)"', flux))
    assert measurements <= set(tags_by), f"{where}: unknown {measurements - set(tags_by)}"
    tags = {t for m in measurements for t in tags_by[m]}
    fields = {f for m in measurements for f in fields_by[m]}
    named_fields = set(re.findall(r'_field\s*==\s*"([^"]+)"', flux))
    assert named_fields <= fields, f"{where}: unknown fields {named_fields - fields}"
    if named_fields or re.search(r"\br\.[a-z]", flux):
        assert measurements, f"{where}: filters rows without naming a measurement"
    # every `r.x` is a tag or (after a pivot) a field of those measurements, or a column the
    # query makes itself (`{r with x: ...}`)
    made = set(re.findall(r"\bwith\s+([A-Za-z_]\w*)\s*:", flux))
    columns = set(re.findall(r"\br\.([A-Za-z_]\w*)", flux))
    unknown = columns - tags - fields - FLUX_COLUMNS - made
    assert not unknown, f"{where}: no tag or field {unknown}"
    named_columns = re.findall(r'(?:column|valueColumn):\s*"([^"]+)"', flux)
    for listed in re.findall(r"(?:columns|rowKey|columnKey):\s*\[([^\]]*)\]", flux):
        named_columns += re.findall(r'"([^"]+)"', listed)
    for column in named_columns:
        assert column in tags | fields | FLUX_COLUMNS | made, f"{where}: no column {column}"
    # a tag compared with a constant: a value the hub writes there
    for tag, value in re.findall(r'\br\.([a-z_]+)\s*(?:==|!=)\s*"([^"]+)"', flux):
        if tag in TAG_VALUES:
            assert value in TAG_VALUES[tag], f"{where}: {tag} is never {value!r}"
    for tag in re.findall(r'tagValues\([^)]*tag:\s*"([^"]+)"', flux):
        assert tag in {t for ts in tags_by.values() for t in ts}, f"{where}: no tag {tag}"


def test_the_checker_catches_a_misspelt_field() -> None:
    """The check above is only worth something if it fails on a typo."""
    bad = (
        "from(bucket: v.defaultBucket) |> range(start: -1h) |> filter(fn: (r) =>"
        ' r._measurement == "carehub_event" and r._field == "battery_level")'
    )
    with pytest.raises(AssertionError, match="battery_level"):
        test_flux_asks_only_for_measurements_tags_and_fields_the_hub_writes("x", "bad", bad)
    bad_tag = bad.replace('r._field == "battery_level"', 'r.resident == "r-001"')
    with pytest.raises(AssertionError, match="resident"):
        test_flux_asks_only_for_measurements_tags_and_fields_the_hub_writes("x", "bad", bad_tag)


# --- against a real InfluxDB: every query parses and runs ----------------------------------


def _influx() -> dict[str, str] | None:
    import os

    keys = ("URL", "TOKEN", "ORG", "BUCKET")
    values = {k.lower(): os.environ.get(f"CAREHUB_TEST_INFLUX_{k}", "") for k in keys}
    return values if all(values.values()) else None


def grafana_to_flux(flux: str, bucket: str) -> str:
    """What Grafana sends: its macros and variables filled in."""
    return (
        flux.replace("v.defaultBucket", json.dumps(bucket))
        .replace("v.timeRangeStart", "-7d")
        .replace("v.timeRangeStop", "now()")
        .replace("v.windowPeriod", "5m")
        .replace("${site:regex}", ".*")
        .replace("${ward:regex}", ".*")
    )


@pytest.mark.influx
@pytest.mark.skipif(
    _influx() is None, reason="needs CAREHUB_TEST_INFLUX_URL, _TOKEN, _ORG and _BUCKET"
)
def test_every_query_runs_on_a_real_influxdb() -> None:
    from influxdb_client.client.influxdb_client import InfluxDBClient

    cfg = _influx()
    assert cfg is not None
    with InfluxDBClient(url=cfg["url"], token=cfg["token"], org=cfg["org"]) as client:
        api = client.query_api()
        for _name, where, flux in ALL:
            try:
                api.query(grafana_to_flux(flux, cfg["bucket"]), org=cfg["org"])
            except Exception as err:  # noqa: BLE001 - name the query that failed
                pytest.fail(f"{where}: {err}")
