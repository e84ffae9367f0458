"""`python -m bench --quick` runs end to end and emits every figure (issue 9).

A smoke test, not a benchmark: it checks that each benchmark runs and reports, never the
figures themselves (other suites share this machine). It needs Mosquitto and mosquitto_pub
(Debian: mosquitto-clients, which CI installs).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from bench.commands import register

pytestmark = [pytest.mark.broker, pytest.mark.mosquitto_only]

ROOT = Path(__file__).resolve().parent.parent
KEYS = {
    "broker_limit_msgs_per_s": (),
    "ingest_msgs_per_s": (),
    "ingest_ratio": (),
    "fall_to_alarm_ms": ("p50", "p99", "max"),
    "fall_to_screen_ms": ("p50", "p99", "max"),
    "fall_to_phone_ms": ("p50", "p99", "max"),
    "backfill_days_per_s": (),
    "peak_rss_mb": (),
}


@pytest.mark.timeout(500)
def test_quick_bench_emits_every_figure(tmp_path: Path) -> None:
    if shutil.which("mosquitto_pub") is None:
        pytest.fail(
            "mosquitto_pub is not installed, and the broker benchmark needs it: "
            "apt-get install mosquitto-clients (CI installs it)"
        )
    out = tmp_path / "figures.json"
    # its own process group: on a time-out the brokers and hubs it started go too, rather
    # than loading the machine for the rest of the suite
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=480)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    assert proc.returncode == 0, f"exit {proc.returncode}\n{stdout[-3000:]}\n{stderr[-3000:]}"
    figures: dict[str, Any] = json.loads(stdout)
    assert figures == json.loads(out.read_text())
    assert figures["errors"] == {}
    for key, parts in KEYS.items():
        value = figures[key]
        if parts:
            assert set(parts) <= set(value), key
            assert all(isinstance(value[p], float) for p in parts), (key, value)
        else:
            assert isinstance(value, int | float), (key, value)
    for site in ("demo", "residents_500"):
        for report in ("freed_hours", "utilisation"):
            assert figures["report_s"][site][report] > 0, (site, report)
            assert figures["report_s"][site]["cold"][report] > 0, (site, report)
        assert figures["report_s"][site]["cache_s"] > 0, site
        assert figures["report_s"][site]["warm_nights"] >= figures["report_s"][site]["nights"]
    assert figures["broker_limit_msgs_per_s"] > 0
    assert 0 <= figures["ingest_ratio"] <= 2
    assert figures["fall_samples"]["falls"] > 0
    assert {"nproc", "cpu", "python", "loadavg_start"} <= set(figures["machine"])
    assert set(figures["targets"]) >= {"ingest_ratio", "peak_rss_mb"}


def test_carehub_bench_command_is_registered() -> None:
    app = typer.Typer()
    app.command("noop")(lambda: None)
    register(app)
    result = CliRunner().invoke(app, ["bench", "--help"])
    assert result.exit_code == 0, result.output
    assert "--quick" in result.output


def test_bad_only_is_usage_error() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "bench", "--only", "kitchen"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 2
    assert "choose from" in r.stderr
