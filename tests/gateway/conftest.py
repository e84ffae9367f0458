"""Fixtures of the gateway tests: a SQLite store in tmp_path, an Ingestor over the test site."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from carehub.site import SiteIndex
from gateway.pipeline import Ingestor
from gateway.store.sqlite import SqliteEventStore

SITE = "testhjem"
T0 = datetime(2026, 11, 22, 22, 0, tzinfo=UTC)


def up(device_id: str, prefix: str = "carehub") -> str:
    """The native uplink topic of a test-site device."""
    return f"{prefix}/{SITE}/devices/{device_id}/up"


def native(seq: int, type_: str, ts: datetime = T0, **fields: Any) -> bytes:
    """A carehub-v1 payload."""
    body = {"v": 1, "seq": seq, "ts": ts.isoformat().replace("+00:00", "Z"), "type": type_}
    return json.dumps({**body, **fields}).encode()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A fresh SQLite file."""
    return tmp_path / "carehub.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[SqliteEventStore]:
    """A SQLite store, closed after the test."""
    s = SqliteEventStore(db_path)
    yield s
    s.close()


@pytest.fixture
def ingestor(test_index: SiteIndex, store: SqliteEventStore) -> Ingestor:
    """An Ingestor over the test site, writing to `store`."""
    return Ingestor(test_index, store)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`long` runs only when asked for with `-m long` (pyproject: excluded by default)."""
    if "long" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="long property run; select it with -m long")
    here = Path(__file__).parent
    for item in items:
        if "long" in item.keywords and here in item.path.parents:
            item.add_marker(skip)
