"""`carehub demo` as a developer runs it: one command, a simulated home on a real broker, the
hub and the web app; logins printed; and nothing it writes or says names a resident."""

from __future__ import annotations

import re
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.mqttprobe import MqttProbe
from tests.support.procs import CAREHUB, carehub_env

pytestmark = pytest.mark.broker
ROOT = Path(__file__).resolve().parent.parent


def names_in_demo_site() -> list[str]:
    site = yaml.safe_load((ROOT / "sites" / "demo.yaml").read_text())
    return [r["name"] for r in site["residents"] if r.get("name")]


@pytest.mark.timeout(300)
def test_demo_runs_a_home_shows_it_and_keeps_names_to_the_staff_screens(tmp_path: Path) -> None:
    env = carehub_env(CAREHUB_DB=str(tmp_path / "var" / "carehub.db"), CAREHUB_LOG_LEVEL="DEBUG")
    proc = subprocess.Popen(
        [*CAREHUB, "demo", "--port", "0", "--speed", "300", "--history-days", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert proc.stdout is not None
    output: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            if "Ctrl-C" in line:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    probe: MqttProbe | None = None
    try:
        assert ready.wait(180), "".join(output)
        text = "".join(output)
        url = re.search(r"web app\s+(http://\S+)", text)
        broker = re.search(r"broker\s+mqtt://127\.0\.0\.1:(\d+)", text)
        logins = dict(re.findall(r"^\s+(nattevagt|leder|admin)\s+(\S+)\s+\w+$", text, re.M))
        assert url is not None, text
        assert broker is not None, text
        assert set(logins) == {"nattevagt", "leder", "admin"}, text
        assert f"phones   {url.group(1)}/phones" in text  # the phones of sites/demo.yaml
        base = url.group(1)
        probe = MqttProbe("127.0.0.1", int(broker.group(1)))
        probe.subscribe("#")

        def token(name: str) -> dict[str, str]:
            r = httpx.post(f"{base}/api/token", data={"username": name, "password": logins[name]})
            assert r.status_code == 200, r.text
            return {"Authorization": f"Bearer {r.json()['access_token']}"}

        staff = token("nattevagt")
        deadline = time.monotonic() + 30
        online: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            devices = httpx.get(f"{base}/api/devices", headers=staff).json()
            online = [d for d in devices if d["online"]]
            if len(online) >= 0.9 * len(devices):
                break
            time.sleep(0.5)
        assert len(online) >= 40, online  # the simulated home is talking to the hub
        board = httpx.get(f"{base}/login")
        assert board.status_code == 200
        report = httpx.get(f"{base}/api/reports/freed-hours", headers=token("leder")).json()
        assert report["resident_nights"] > 0  # the history gave the reports nights to show
        deadline = time.monotonic() + 15
        while (health := httpx.get(f"{base}/healthz").json())["status"] != "ok":
            assert time.monotonic() < deadline, health
            time.sleep(0.5)
        time.sleep(3)  # a few more simulated minutes of traffic for the scan below
        mqtt_payloads = b"\n".join(m.payload for m in probe.messages)
        assert len(probe.messages) > 100
    finally:
        if probe is not None:
            probe.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        reader.join(10)
        proc.stdout.close()
    assert proc.returncode == 0, "".join(output)
    assert "stopped." in "".join(output)
    # privacy: names only where staff need them — not on MQTT, in the stores or in the logs
    db = tmp_path / "var" / "demo" / "carehub.db"
    with sqlite3.connect(db) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        dump = "\n".join(
            str(row) for table in tables for row in conn.execute(f'SELECT * FROM "{table}"')
        )
    logs = "".join(output)
    for name in names_in_demo_site():
        assert name.encode() not in mqtt_payloads, name
        assert name not in dump, name
        assert name not in logs, name
