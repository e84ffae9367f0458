"""The `carehub` command as a user runs it: real processes, exit codes, signals."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.broker import reachable

ROOT = Path(__file__).resolve().parent.parent
CAREHUB = [sys.executable, "-m", "app"]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CAREHUB, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
        check=False,
    )


def test_check_config_ok_and_summarises() -> None:
    r = run("check-config", "sites/demo.yaml")
    assert r.returncode == 0, r.stderr
    assert "24 residents" in r.stdout


def test_check_config_bad_file_exits_2_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    text = (
        (ROOT / "sites" / "test.yaml")
        .read_text()
        .replace("kind: diaper, model: wetsense", "kind: nappy, model: wetsense")
    )
    bad.write_text(text)
    r = run("check-config", str(bad))
    assert r.returncode == 2
    assert re.search(
        r"line \d+: devices\[4\]\.kind: Input should be 'fall', 'diaper', 'medication', 'bed'"
        r" or 'presence'",
        r.stderr,
    ), r.stderr


def test_check_config_on_a_yaml_bomb_is_a_short_line_numbered_error(tmp_path: Path) -> None:
    lines = ["site: x", 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{n}: &a{n} [{','.join([f'*a{n - 1}'] * 9)}]" for n in range(1, 10)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    r = run("check-config", str(bomb))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert re.search(r"line 3: \(top level\): aliases", r.stderr), r.stderr


def test_unknown_command_is_bad_usage() -> None:
    assert run("no-such-command").returncode == 2


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_demo_starts_a_broker_and_stops_it_on_signal(sig: signal.Signals, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREHUB_")}
    env["CAREHUB_DB"] = str(tmp_path / "demo.db")
    proc = subprocess.Popen(
        [*CAREHUB, "demo", "--port", "0", "--history-days", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert proc.stdout is not None
    port = None
    deadline = time.monotonic() + 30
    lines = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        m = re.search(r"broker\s+mqtt://127\.0\.0\.1:(\d+)", line)
        if m:
            port = int(m.group(1))
        if "Ctrl-C" in line:
            break
    assert port is not None, "".join(lines)
    assert reachable("127.0.0.1", port)
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "stopped." in out
    assert not reachable("127.0.0.1", port, timeout=0.2)
