"""Shared by the deploy tests: fakes of influxdb-client's write API and writers that use it,
and Mosquitto processes run from the deployment's own config files."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.broker import find_mosquitto, reachable
from gateway.store import influx_schema as s
from services.central import CentralIngest
from services.timeseries import TimeseriesWriter
from tests.deploy.lineprotocol import Line, lines_of


class FakeWrites:
    """Stands in for influxdb-client's synchronous write API: fails `failures` times, then
    keeps what it is given."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls = 0
        self.points: list[Any] = []

    def write(self, bucket: str, org: str, record: list[Any]) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionRefusedError("influxdb is away")
        self.points.extend(record)

    def close(self) -> None:
        return

    def lines(self) -> list[Line]:
        return lines_of(self.points)


def offline_writer(fake: FakeWrites) -> TimeseriesWriter:
    """A writer whose client points nowhere (port 9) and whose writes go to `fake`."""
    return TimeseriesWriter(
        "http://127.0.0.1:9", "t", "org", "bucket", retry_delays_s=(), write_api=fake
    )


def assert_in_schema(line: Line) -> None:
    """Measurement, tags and fields of the line are the schema's, and no tag is empty."""
    assert line.measurement in s.ALL_MEASUREMENTS
    assert set(line.tags) <= set(s.TAGS_BY_MEASUREMENT[line.measurement]), line
    assert set(line.fields) <= set(s.FIELDS_BY_MEASUREMENT[line.measurement]), line
    assert all(line.tags.values())


def central(fake: FakeWrites) -> CentralIngest:
    """An ingest whose event store and writer both write into `fake`."""
    from gateway.store.influx import InfluxEventStore

    store = InfluxEventStore("http://127.0.0.1:9", "t", "o", "b", retry_delays_s=(), timeout_ms=300)
    store._write = fake  # type: ignore[assignment]
    return CentralIngest(store, offline_writer(fake))


@dataclass
class Broker:
    """A Mosquitto process of this test."""

    port: int
    conf: Path
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(default_factory=Path)

    def start(self) -> None:
        self.log = self.conf.with_suffix(".log")
        with self.log.open("ab") as log:
            binary = find_mosquitto()
            assert binary is not None
            self.proc = subprocess.Popen(
                [binary, "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 10
        while not reachable("127.0.0.1", self.port, 0.2):
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, "mosquitto did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        self.proc = None


def runnable(conf: str, port: int, listener_port: int) -> str:
    """Bind to loopback, and stay this user (Mosquitto drops root to `mosquitto`)."""
    me = pwd.getpwuid(os.getuid()).pw_name
    conf = conf.replace(f"listener {listener_port}\n", f"listener {port} 127.0.0.1\n")
    return f"user {me}\n" + conf
