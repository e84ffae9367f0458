"""`carehub run` as a care home runs it: real processes, a real Mosquitto, a real HTTP server.

One process with every part, and the three-container layout (gateway, rules, api as separate
processes sharing the SQLite file), each taking a fall from MQTT to the alarm API; the api's
/healthz notices within 10 s when another part stops.
"""

from __future__ import annotations

import signal
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.broker import MosquittoBroker, free_port
from tests.support.mqttprobe import MqttProbe
from tests.support.procs import CAREHUB, Proc, carehub_env

pytestmark = [pytest.mark.broker, pytest.mark.mosquitto_only]

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "sites" / "test.yaml"


def hub_env(tmp_path: Path, broker: MosquittoBroker, http_port: int) -> dict[str, str]:
    return carehub_env(
        CAREHUB_SITE_FILE=str(SITE),
        CAREHUB_DB=str(tmp_path / "state" / "carehub.db"),
        CAREHUB_MQTT_URL=f"mqtt://{broker.host}:{broker.port}",
        CAREHUB_HTTP_PORT=str(http_port),
        CAREHUB_SECRET_KEY="k" * 40,
        CAREHUB_LOG_LEVEL="INFO",
    )


def password_of(name: str) -> str:
    """Long enough, not common, and without the login name (docs/security.md)."""
    return f"pass-2026-{name[::-1]}!"


def add_user(env: dict[str, str], name: str, role: str) -> None:
    subprocess.run(
        [*CAREHUB, "user", "add", name, "--role", role],
        input=f"{password_of(name)}\n",
        text=True,
        env=env,
        check=True,
        capture_output=True,
    )


def wait_http(url: str, procs: list[Proc], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for proc in procs:
            if proc.p.poll() is not None:
                pytest.fail(f"carehub exited early:\n{proc.output()}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    pytest.fail(f"{url} did not answer:\n" + "\n".join(p.output() for p in procs))


def token(base: str, name: str) -> dict[str, str]:
    r = httpx.post(f"{base}/api/token", data={"username": name, "password": password_of(name)})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def fall(probe: MqttProbe, seq: int) -> None:
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    probe.publish(
        "carehub/testhjem/devices/fall-a1/up",
        {"v": 1, "seq": seq, "ts": now, "type": "fall", "confidence": 0.95},
    )


def test_run_all_takes_a_fall_to_the_alarm_api_and_stops_on_sigterm(
    tmp_path: Path, mosquitto: MosquittoBroker
) -> None:
    port = free_port()
    env = hub_env(tmp_path, mosquitto, port)
    add_user(env, "nina", "staff")
    hub = Proc(["run", "all"], env, tmp_path / "hub.log")
    base = f"http://127.0.0.1:{port}"
    probe = MqttProbe(mosquitto.host, mosquitto.port)
    try:
        wait_http(f"{base}/healthz", [hub])
        health = wait_for(
            lambda: (r := httpx.get(f"{base}/healthz")).status_code == 200 and r.json(),
            20,
            "a healthy hub",
        )
        assert set(health["components"]) == {"broker", "store", "gateway", "rules"}
        probe.subscribe("carehub/testhjem/alarms/#")
        fall(probe, 1)
        alarm_msg = probe.wait_for("carehub/testhjem/alarms/#", timeout=10)[0].json()
        assert alarm_msg["rule"] == "fall"
        assert alarm_msg["room"] == "a-1"
        headers = token(base, "nina")
        alarms = httpx.get(f"{base}/api/alarms?state=active", headers=headers).json()
        assert [(a["rule"], a["device_id"]) for a in alarms] == [("fall", "fall-a1")]
        metrics = httpx.get(f"{base}/metrics").text
        assert "carehub_gateway_messages_in_total 1" in metrics
        assert "carehub_gateway_events_published_total 1" in metrics
        # one process: the gateway wakes the rules engine itself, which so takes no second
        # MQTT stream of every canonical event (docs/handover.md)
        assert "carehub_rules_mqtt_hints_total 0" in metrics
    finally:
        probe.close()
        code = hub.stop()
    assert code == 0, hub.output()
    assert not (tmp_path / "state" / "heartbeats" / "gateway.json").exists()


def test_three_part_layout_shares_the_database_and_health_sees_a_part_stop(
    tmp_path: Path, mosquitto: MosquittoBroker
) -> None:
    port = free_port()
    env = hub_env(tmp_path, mosquitto, port)
    add_user(env, "nina", "staff")
    env_gw = {**env, "CAREHUB_HTTP_PORT": str(free_port())}  # the gateway's webhook server
    env_gw["CAREHUB_WEBHOOK_TOKEN"] = "w" * 32
    procs = [
        Proc(["run", "gateway"], env_gw, tmp_path / "gw.log"),
        Proc(["run", "rules"], env, tmp_path / "rules.log"),
        Proc(["run", "api"], env, tmp_path / "api.log"),
    ]
    base = f"http://127.0.0.1:{port}"
    probe = MqttProbe(mosquitto.host, mosquitto.port)
    try:
        wait_http(f"{base}/healthz", procs)
        wait_for(lambda: httpx.get(f"{base}/healthz").status_code == 200, 20, "healthy parts")
        fall(probe, 7)
        headers = token(base, "nina")
        alarms = wait_for(
            lambda: httpx.get(f"{base}/api/alarms?state=active", headers=headers).json(),
            10,
            "the alarm in the api process",
        )
        assert alarms[0]["rule"] == "fall"
        metrics = httpx.get(f"{base}/metrics").text
        assert 'carehub_part_up{part="gateway"} 1' in metrics
        # the gateway's webhook server answers without a token: 401, not 404
        r = httpx.post(f"http://127.0.0.1:{env_gw['CAREHUB_HTTP_PORT']}/api/webhooks/medcloud")
        assert r.status_code == 401
        stopped_at = time.monotonic()
        procs[0].stop(signal.SIGKILL)
        body = wait_for(
            lambda: (r := httpx.get(f"{base}/healthz")).status_code == 503 and r.json(),
            15,
            "/healthz to notice the gateway stopped",
        )
        assert time.monotonic() - stopped_at <= 10
        assert body["components"]["gateway"] != "ok"
        assert body["components"]["rules"] == "ok"
    finally:
        probe.close()
        codes = [p.stop() for p in procs]
    assert codes[1:] == [0, 0], "\n".join(p.output() for p in procs)


def test_run_refuses_to_start_the_web_app_without_a_session_key(
    tmp_path: Path, mosquitto: MosquittoBroker
) -> None:
    env = hub_env(tmp_path, mosquitto, free_port())
    del env["CAREHUB_SECRET_KEY"]
    r = subprocess.run(
        [*CAREHUB, "run", "api"], env=env, capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 2
    assert "CAREHUB_SECRET_KEY is not set" in r.stderr
    # a rules part alone signs the acknowledge links of its phones' notices, which the api
    # part must check: with Web Push as the only channel too, a random key would not do
    site = yaml.safe_load(SITE.read_text())
    site["notify"] = {"public_url": "https://carehub.test"}
    push_only = tmp_path / "push-only.yaml"
    push_only.write_text(yaml.safe_dump(site))
    r = subprocess.run(
        [*CAREHUB, "run", "rules"],
        env={**env, "CAREHUB_SITE_FILE": str(push_only)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2, r.stderr
    assert "CAREHUB_SECRET_KEY is not set" in r.stderr
    r = subprocess.run(
        [*CAREHUB, "run", "kitchen"], env=env, capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 2
    assert "unknown part" in r.stderr
