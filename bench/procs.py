"""Processes a benchmark starts: Mosquitto, the load generator, a `carehub run` hub."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from app.broker import MosquittoBroker, free_port
from bench.loadgen import LoadConfig

REPO = Path(__file__).resolve().parent.parent
BROKER_CONFIG = "max_connections -1\n"
"""Beyond Mosquitto's own defaults (MosquittoBroker: nodelay, unlimited queues/inflight)."""


class BenchError(Exception):
    """A benchmark could not run (a tool missing, a part that would not start)."""


def child_env(**values: str) -> dict[str, str]:
    """Our environment without CAREHUB_*, with the repository importable, plus `values`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREHUB_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.update(values)
    return env


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's (and so its children's) open-file limit towards `wanted`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def start_broker(workdir: Path) -> MosquittoBroker:
    """A fresh Mosquitto for one benchmark."""
    return MosquittoBroker(workdir=workdir, extra_config=BROKER_CONFIG)


class LoadProcess:
    """`python -m bench.loadgen` running in the background."""

    def __init__(self, config: LoadConfig) -> None:
        self.config = config
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.loadgen", config.to_json()],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=child_env(),
            cwd=REPO,
        )

    def result(self, timeout: float | None = None, stop: bool = False) -> dict[str, Any]:
        """Its summary line (after SIGTERM when `stop`)."""
        if stop and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        wait = timeout if timeout is not None else self.config.duration + 60
        out, err = self.proc.communicate(timeout=wait)
        if self.proc.returncode != 0:
            msg = f"load generator failed ({self.proc.returncode}): {err.decode()[-2000:]}"
            raise BenchError(msg)
        summary: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        return summary

    def kill(self) -> None:
        """End it, if it still runs."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate(timeout=10)


class HubProcess:
    """`carehub run PART` as a care home runs it, configured by CAREHUB_* variables."""

    def __init__(
        self, part: str, site_file: Path, db: Path, broker: MosquittoBroker, log: Path
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.env = child_env(
            CAREHUB_SITE_FILE=str(site_file),
            CAREHUB_DB=str(db),
            CAREHUB_MQTT_URL=f"mqtt://{broker.host}:{broker.port}",
            CAREHUB_HTTP_PORT=str(self.port),
            CAREHUB_SECRET_KEY="bench-" + "k" * 40,
            CAREHUB_LOG_LEVEL="WARNING",
        )
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app", "run", part],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )

    @property
    def pid(self) -> int:
        """The hub's process id."""
        return self.proc.pid

    def output(self) -> str:
        """What it logged (for error messages)."""
        return self.log.read_text(errors="replace")[-3000:]

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Until /healthz answers 200 (broker, store, gateway and rules all ok)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                msg = f"carehub run exited with {self.proc.returncode}:\n{self.output()}"
                raise BenchError(msg)
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        msg = f"the hub did not become healthy within {timeout:.0f} s:\n{self.output()}"
        raise BenchError(msg)

    def metrics(self) -> dict[str, float]:
        """Its /metrics as name → value (labelled names kept whole)."""
        out: dict[str, float] = {}
        for line in httpx.get(f"{self.url}/metrics", timeout=5).text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                try:
                    out[name] = float(value)
                except ValueError:
                    continue
        return out

    def status(self) -> dict[str, int]:
        """VmHWM, VmRSS ... from /proc/<pid>/status, in kB."""
        out: dict[str, int] = {}
        text = Path(f"/proc/{self.pid}/status").read_text(encoding="ascii")
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key.startswith("Vm"):
                out[key] = int(value.split()[0])
        return out

    def stop(self) -> int:
        """SIGTERM and wait, as a service manager would."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode
