"""The production recipes run as written: README's one-process hub and docs/deployment.md's
three parts, on the broker config `carehub broker-config` generates, with a real Mosquitto.

A device publishes a fall under its own generated login; the alarm must be stored and
published, and no part may throw another off the broker (one login per part).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from app.broker import find_mosquitto, free_port, reachable
from tests.support.procs import Proc, carehub_env

pytestmark = [pytest.mark.broker, pytest.mark.mosquitto_only]

ROOT = Path(__file__).resolve().parents[2]
SITE = "testhjem"
BIN = str(Path(sys.executable).parent)


def readme_recipe() -> str:
    """The shell block of README.md's production recipe."""
    text = (ROOT / "README.md").read_text()
    after = text.split("A production hub needs", 1)[1]
    match = re.search(r"```sh\n(.*?)```", after, re.S)
    assert match is not None
    return match.group(1)


@dataclass
class Recipe:
    """Where a recipe runs: its folders, the broker's port and the processes it started."""

    tmp: Path
    port: int = field(default_factory=free_port)
    procs: list[subprocess.Popen[bytes] | Proc] = field(default_factory=list)

    @property
    def broker_dir(self) -> Path:
        return self.tmp / "etc" / "broker"

    @property
    def db(self) -> Path:
        return self.tmp / "var" / "carehub.db"

    def creds(self) -> dict[str, str]:
        return dict(json.loads((self.broker_dir / "credentials.json").read_text()))

    def alarms(self) -> list[dict[str, Any]]:
        import sqlite3

        try:
            with sqlite3.connect(self.db, timeout=30) as conn:
                rows = conn.execute("SELECT body FROM alarms").fetchall()
        except sqlite3.OperationalError:
            return []
        return [json.loads(body) for (body,) in rows]

    def beat(self, part: str) -> dict[str, Any]:
        try:
            return dict(json.loads((self.db.parent / "heartbeats" / f"{part}.json").read_text()))
        except (OSError, ValueError):
            return {}


@pytest.fixture
def recipe(tmp_path: Path) -> Iterator[Recipe]:
    if find_mosquitto() is None:
        pytest.skip("Mosquitto is not installed (apt-get install mosquitto)")
    r = Recipe(tmp_path)
    yield r
    for proc in reversed(r.procs):
        if isinstance(proc, Proc):
            if proc.alive:
                proc.stop()
        elif proc.poll() is None:
            proc.terminate()
            proc.wait(20)
    pid = r.tmp / "mosquitto.pid"
    if pid.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid.read_text()), signal.SIGTERM)


def _connect(port: int, user: str, password: str) -> paho.Client:
    """A client logged in as `user` (client id = username, as the broker forces anyway)."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=paho.MQTTv5)
    client.username_pw_set(user, password)
    up = threading.Event()
    client.on_connect = lambda *_a: up.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    assert up.wait(10), f"{user} could not connect"
    return client


def _close(client: paho.Client) -> None:
    client.disconnect()
    client.loop_stop()


def fall_to_alarm(r: Recipe, parts: list[str]) -> None:
    """A device's fall under its own login → a stored alarm, published on the broker; every
    part up and never thrown off."""
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if all(r.beat(p).get("state") == "ok" for p in ("gateway", "rules")):
            break
        time.sleep(0.1)
    assert all(r.beat(p).get("state") == "ok" for p in ("gateway", "rules")), r.beat("gateway")
    device = _connect(r.port, "fall-a1", r.creds()["fall-a1"])
    ts = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    body = {"v": 1, "ts": ts, "seq": 1, "type": "fall", "confidence": 0.9}
    device.publish(f"carehub/{SITE}/devices/fall-a1/up", json.dumps(body), 1).wait_for_publish(10)
    _close(device)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not r.alarms():
        time.sleep(0.1)
    stored = [a for a in r.alarms() if a["rule"] == "fall"]
    assert [a["device_id"] for a in stored] == ["fall-a1"]
    time.sleep(1.5)  # a heartbeat after the alarm: the parts' counters of the run
    metrics = r.beat("gateway").get("metrics", {})
    assert metrics.get("carehub_gateway_mqtt_disconnects_total") == 0, metrics
    assert metrics.get("carehub_gateway_mqtt_connects_total") == 1, metrics
    # the alarm is retained while active: the api's login reads it once the hub is stopped
    for proc in reversed(r.procs):
        if isinstance(proc, Proc):
            assert proc.alive, proc.output()
            assert proc.stop() == 0, proc.output()
            log = proc.output()
            assert "thrown off" not in log, log
            assert "Traceback" not in log, log
    api = _connect(r.port, "carehub-api", r.creds()["carehub-api"])
    got: list[dict[str, Any]] = []
    api.on_message = lambda _c, _u, m: got.append(json.loads(m.payload)) if m.payload else None
    api.subscribe(f"carehub/{SITE}/alarms/#", 1)
    deadline = time.monotonic() + 10
    while not got and time.monotonic() < deadline:
        time.sleep(0.05)
    _close(api)
    assert [(a["rule"], a["device_id"], a["alarm_id"]) for a in got] == [
        ("fall", "fall-a1", stored[0]["alarm_id"])
    ]
    broker_log = (r.tmp / "mosquitto.log").read_text()
    assert "already connected" not in broker_log, broker_log


@pytest.mark.timeout(180)
def test_readme_one_process_recipe_runs_as_written(recipe: Recipe) -> None:
    """README's block, run by bash with only its paths made local: the site file, /etc and
    /var become the test's folders, the broker gets a free port, it runs in the foreground
    here (its pid kept), and `carehub run all` serves on a free HTTP port."""
    script = readme_recipe()
    etc, var = recipe.tmp / "etc", recipe.tmp / "var"
    script = (
        script.replace("sites/solhaven.yaml", str(ROOT / "sites" / "test.yaml"))
        .replace("/etc/carehub", str(etc))
        .replace("/var/lib/carehub", str(var))
        .replace(f"--out {etc}/broker", f"--out {etc}/broker --port {recipe.port}")
        .replace(
            f"mosquitto -c {etc}/broker/mosquitto.conf -d",
            f"mosquitto -c {etc}/broker/mosquitto.conf >{recipe.tmp}/mosquitto.log 2>&1 &"
            f" echo $! >{recipe.tmp}/mosquitto.pid",
        )
        .replace("carehub run all", "exec carehub run all")
    )
    assert "exec carehub run all" in script
    assert f"--port {recipe.port}" in script
    assert "mosquitto.pid" in script
    env = carehub_env(
        PATH=f"{BIN}:/usr/sbin:/usr/local/sbin:{os.environ.get('PATH', '')}",
        CAREHUB_HTTP_PORT="0",
        CAREHUB_LOG_LEVEL="INFO",
    )
    log = recipe.tmp / "all.log"
    with log.open("wb") as out:
        shell = subprocess.Popen(
            ["bash", "-euc", script],
            env=env,
            stdin=subprocess.PIPE,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    assert shell.stdin is not None
    shell.stdin.write(secrets.token_urlsafe(16).encode() + b"\n")  # sofie's password
    shell.stdin.close()
    recipe.procs.append(shell)
    deadline = time.monotonic() + 20
    while not reachable("127.0.0.1", recipe.port, 0.2):
        assert shell.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "mosquitto did not start"
        time.sleep(0.05)

    class Shell(Proc):
        def __init__(self) -> None:
            self.args, self.log, self.p = ["run", "all"], log, shell

    recipe.procs[-1] = Shell()
    fall_to_alarm(recipe, ["all"])


@pytest.mark.timeout(180)
def test_three_parts_each_with_its_own_login(recipe: Recipe) -> None:
    """docs/deployment.md's three parts: one process each, `CAREHUB_MQTT_URL` with its own
    generated login, one SQLite file."""
    subprocess.run(
        [
            f"{BIN}/carehub",
            "broker-config",
            "--site",
            str(ROOT / "sites" / "test.yaml"),
            "--out",
            str(recipe.broker_dir),
            "--port",
            str(recipe.port),
        ],
        check=True,
        capture_output=True,
        env=carehub_env(),
        timeout=60,
    )
    with (recipe.tmp / "mosquitto.log").open("wb") as out:
        broker = subprocess.Popen(
            [str(find_mosquitto()), "-c", str(recipe.broker_dir / "mosquitto.conf")],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    recipe.procs.append(broker)
    deadline = time.monotonic() + 20
    while not reachable("127.0.0.1", recipe.port, 0.2):
        assert time.monotonic() < deadline, "mosquitto did not start"
        time.sleep(0.05)
    creds = recipe.creds()
    for part in ("gateway", "rules", "api"):
        env = carehub_env(
            CAREHUB_SITE_FILE=str(ROOT / "sites" / "test.yaml"),
            CAREHUB_DB=str(recipe.db),
            CAREHUB_MQTT_URL=f"mqtt://carehub-{part}:{creds[f'carehub-{part}']}@localhost:{recipe.port}",
            CAREHUB_SECRET_KEY=secrets.token_urlsafe(32),
            CAREHUB_HTTP_PORT="0",
        )
        recipe.procs.append(Proc(["run", part], env, recipe.tmp / f"{part}.log"))
    fall_to_alarm(recipe, ["gateway", "rules", "api"])


def test_run_all_refuses_one_login_for_every_part(tmp_path: Path) -> None:
    """The old recipe (one CAREHUB_MQTT_URL for `run all`) is refused before it connects,
    naming what to set."""
    env = carehub_env(
        CAREHUB_SITE_FILE=str(ROOT / "sites" / "test.yaml"),
        CAREHUB_DB=str(tmp_path / "carehub.db"),
        CAREHUB_MQTT_URL="mqtt://carehub-gateway:pw@127.0.0.1:1",
        CAREHUB_SECRET_KEY=secrets.token_urlsafe(32),
    )
    r = subprocess.run(
        [f"{BIN}/carehub", "run", "all"], env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode != 0
    said = " ".join((r.stdout + r.stderr).split())
    assert "'carehub-gateway'" in said, said
    assert "CAREHUB_MQTT_RULES_URL" in said, said
