"""Fakes shared by the deploy tests: influxdb-client's write API, writers that use it."""

from __future__ import annotations

from typing import Any

from gateway.store import influx_schema as s
from services.timeseries import CentralIngest, TimeseriesWriter
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
