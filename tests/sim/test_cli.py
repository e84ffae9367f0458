"""`carehub sim` and `carehub backfill` as users run them: bad input is exit 2 with a message
that says what to fix; a good run publishes, shows its status and stops cleanly on a signal."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.broker import LocalBroker
from app.cli import app
from app.commands.sim import default_start, parse_speed
from carehub.mqtt import Protocol
from carehub.settings import get_settings
from carehub.site import SiteIndex
from tests.support.mqttprobe import MqttProbe

ROOT = Path(__file__).resolve().parents[2]
SITE = str(ROOT / "sites" / "test.yaml")
CAREHUB = [sys.executable, "-m", "app"]


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """A CliRunner with no CAREHUB_* settings from the environment, and the signal handlers
    `carehub sim` installs put back afterwards."""
    for key in list(os.environ):
        if key.startswith("CAREHUB_"):
            monkeypatch.delenv(key)
    get_settings.cache_clear()
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield CliRunner()
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    get_settings.cache_clear()


BROKER = "mqtt://127.0.0.1:1"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["sim", "--broker", BROKER], "no site file"),
        (["sim", "--site", "nope.yaml", "--broker", BROKER], "nope.yaml"),
        (["sim", "--site", SITE], "no broker"),
        (["sim", "--site", SITE, "--broker", "http://x"], "mqtt://"),
        (["sim", "--site", SITE, "--broker", BROKER, "--speed", "fast"], "--speed"),
        (["sim", "--site", SITE, "--broker", BROKER, "--speed", "-3"], "positive"),
        (["sim", "--site", SITE, "--broker", BROKER, "--faults", "gremlins=1"], "unknown fault"),
        (["sim", "--site", SITE, "--broker", BROKER, "--faults", "late=5"], "between 0 and 1"),
        (["sim", "--site", SITE, "--broker", BROKER, "--start", "tuesday"], "--start"),
        (["sim", "--site", SITE, "--broker", BROKER, "--nights", "-1"], "--nights"),
        (["sim", "--site", SITE, "--broker", BROKER, "--hours", "0"], "--hours"),
        (["sim", "--site", SITE, "--broker", BROKER, "--protocol", "4"], "--protocol"),
        (["sim", "--site", SITE, "--broker", BROKER, "--credentials", "no.json"], "no.json"),
        (["sim", "--site", SITE, "--nights", "x"], "nights"),
        (["backfill", "--site", SITE, "--days", "0"], "--days"),
        (["backfill", "--site", SITE, "--days", "1", "--end", "soon"], "--end"),
        (["backfill", "--days", "1"], "no site file"),
    ],
)
def test_bad_input_exits_2_saying_what_to_fix(
    runner: CliRunner, args: list[str], says: str
) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert says in result.output


def test_a_bad_site_file_names_the_problem(runner: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path(SITE).read_text().replace("kind: fall", "kind: tumble", 1))
    result = runner.invoke(app, ["sim", "--site", str(bad), "--broker", BROKER])
    assert result.exit_code == 2
    assert "devices[0].kind" in result.output


def test_speed_and_start_defaults(test_index: SiteIndex) -> None:
    assert parse_speed("max") is None
    assert parse_speed("120") == 120
    evening = datetime(2026, 11, 22, 12, tzinfo=UTC)  # 13:00 in Copenhagen: tonight, 22:00
    assert default_start(test_index, evening) == datetime(2026, 11, 22, 21, tzinfo=UTC)
    small_hours = datetime(2026, 11, 23, 2, tzinfo=UTC)  # 03:00: the night that is on
    assert default_start(test_index, small_hours) == datetime(2026, 11, 22, 21, tzinfo=UTC)


def test_sim_at_full_speed_publishes_and_reports(
    runner: CliRunner, broker: LocalBroker, mqtt_protocol: Protocol
) -> None:
    probe = MqttProbe(broker.host, broker.port, protocol=mqtt_protocol)
    probe.subscribe("carehub/testhjem/devices/fall-a1/up")
    url = f"mqtt://{broker.host}:{broker.port}"
    args = ["sim", "--site", SITE, "--broker", url, "--speed", "max", "--hours", "1"]
    args += ["--start", "2026-11-22", "--seed", "3", "--protocol", mqtt_protocol]
    try:
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        probe.wait_for("carehub/testhjem/devices/fall-a1/up", count=55)
    finally:
        probe.close()
    assert "simulating Testhjemmet" in result.stderr
    assert "devices online" in result.stderr
    assert "simulated 2026-11-22 22:59" in result.stderr  # the last message's local time


def test_backfill_writes_and_reports_its_speed(runner: CliRunner, tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    args = ["backfill", "--site", SITE, "--days", "1", "--db", str(db), "--end", "2026-11-23"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "days/s" in result.stdout
    assert "0 rejected" in result.stdout
    assert db.exists()


def test_sim_stops_cleanly_on_sigterm(broker: LocalBroker, mqtt_protocol: Protocol) -> None:
    probe = MqttProbe(broker.host, broker.port, protocol=mqtt_protocol)
    probe.subscribe("carehub/testhjem/devices/+/status")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREHUB_")}
    env["CAREHUB_MQTT_URL"] = f"mqtt://{broker.host}:{broker.port}"
    proc = subprocess.Popen(
        [*CAREHUB, "sim", "--site", SITE, "--speed", "60", "--protocol", mqtt_protocol],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        probe.wait_for("carehub/testhjem/devices/+/status", lambda m: m.payload == b"online", 7)
        time.sleep(0.5)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "devices online" in err
    offline = probe.wait_for(
        "carehub/testhjem/devices/+/status", lambda m: m.payload == b"offline", 10
    )
    assert len({m.topic for m in offline}) == 10
    probe.close()
