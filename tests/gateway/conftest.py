"""Fixtures of the gateway tests: a SQLite store in tmp_path, an Ingestor over the test site."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from _pytest.mark import MarkMatcher
from _pytest.mark.expression import Expression

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


def asks_for_long(markexpr: str, marks: Iterable[pytest.Mark]) -> bool:
    """Whether `-m markexpr` selects a test with `marks` *because* it is `long`: the
    expression, evaluated as pytest does, matches its marks and no longer matches them
    without `long`. So `-m long` and `-m "long and not broker"` ask for it; no `-m`,
    `-m "not long"` or `-m "not broker"` do not."""
    if not markexpr:
        return False
    expr = Expression.compile(markexpr)
    marks = list(marks)
    shorter = [m for m in marks if m.name != "long"]
    return expr.evaluate(MarkMatcher.from_markers(marks)) and not expr.evaluate(
        MarkMatcher.from_markers(shorter)
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`long` runs only when asked for with `-m` (see `asks_for_long`); excluded by default."""
    skip = pytest.mark.skip(reason="long property run; select it with -m long")
    here = Path(__file__).parent
    markexpr = config.option.markexpr or ""
    for item in items:
        if "long" not in item.keywords or here not in item.path.parents:
            continue
        if not asks_for_long(markexpr, item.iter_markers()):
            item.add_marker(skip)
