"""The simulator's `long` runs (the visit logs' thousand-run coverage) are skipped unless `-m`
asks for them, as in tests/gateway (docs/testing.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gateway.conftest import asks_for_long


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """`long` runs only when asked for with `-m` (see `asks_for_long`)."""
    skip = pytest.mark.skip(reason="long run; select it with -m long")
    here = Path(__file__).parent
    markexpr = config.option.markexpr or ""
    for item in items:
        if "long" not in item.keywords or here not in item.path.parents:
            continue
        if not asks_for_long(markexpr, item.iter_markers()):
            item.add_marker(skip)
