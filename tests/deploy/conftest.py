"""Fixtures of the deploy tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from carehub.clock import FakeClock
from carehub.site import SiteIndex
from services.alarms.service import AlarmService
from services.alarms.store import AlarmStore
from services.rules.engine import RulesEngine
from tests.services.conftest import NIGHT, QUIET, make_event_factory


@pytest.fixture
def alarm_world(tmp_path: Path, test_index: SiteIndex) -> Iterator[tuple[RulesEngine, Any]]:
    """A rules engine and an AlarmService over one SQLite file, with a fake clock at night."""
    store = AlarmStore(tmp_path / "carehub.db")
    clock = FakeClock(NIGHT)
    engine = RulesEngine(test_index, store, clock, QUIET)
    service = AlarmService(store, clock, poll_s=0.02)
    yield engine, (service, clock, make_event_factory(test_index))
    service.close()
    store.close()
