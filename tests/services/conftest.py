"""Fixtures of the rules and alarm tests: a store in tmp_path, a FakeClock at night, an
engine over the test site, and a factory of canonical events as the gateway would emit them."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import pytest

from carehub.clock import FakeClock
from carehub.events import CanonicalEvent, EventType, event_id_for
from carehub.site import Escalation, Site, SiteIndex
from services.alarms.service import AlarmService
from services.alarms.store import AlarmStore
from services.rules.engine import EngineConfig, RulesEngine

SITE = "testhjem"
NIGHT = datetime(2026, 11, 22, 22, 0, tzinfo=UTC)
"""23:00 in Copenhagen: inside the night window."""
DAY = datetime(2026, 11, 23, 11, 0, tzinfo=UTC)
"""12:00 in Copenhagen: outside it."""

_seq = itertools.count(1)


class MakeEvent(Protocol):
    """Builds a canonical event of a test-site device."""

    def __call__(
        self,
        device_id: str,
        type_: EventType | str,
        ts: datetime,
        *,
        received_at: datetime | None = None,
        seq: int | None = None,
        **data: Any,
    ) -> CanonicalEvent: ...


def make_event_factory(index: SiteIndex) -> MakeEvent:
    """Events with the binding the gateway would add (resident only if the room has one)."""

    def make(
        device_id: str,
        type_: EventType | str,
        ts: datetime,
        *,
        received_at: datetime | None = None,
        seq: int | None = None,
        **data: Any,
    ) -> CanonicalEvent:
        binding = index.binding_at(device_id, ts)
        assert binding is not None, device_id
        residents = index.residents_of(binding)
        n = next(_seq) if seq is None else seq
        return CanonicalEvent(
            event_id=event_id_for(SITE, device_id, n),
            site=SITE,
            device_id=device_id,
            kind=binding.kind,
            type=EventType(type_),
            ts=ts,
            received_at=received_at or ts,
            resident_id=residents[0] if len(residents) == 1 else None,
            room=index.room_of(binding),
            data=data,
            seq=n,
        )

    return make


def with_changes(site: Site, **changes: Any) -> SiteIndex:
    """The test site with top-level fields replaced (escalation, rules, ...)."""
    return SiteIndex(site.model_copy(update=changes))


QUIET = EngineConfig(timer_grace=timedelta(0), supervise_unheard_devices=False)
"""No grace, no supervision of devices never heard from: each test arms what it tests."""


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A fresh SQLite file."""
    return tmp_path / "carehub.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[AlarmStore]:
    """An alarm store, closed after the test."""
    s = AlarmStore(db_path)
    yield s
    s.close()


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock at 23:00 local time."""
    return FakeClock(NIGHT)


@pytest.fixture
def engine(test_index: SiteIndex, store: AlarmStore, clock: FakeClock) -> RulesEngine:
    """An engine over the test site."""
    return RulesEngine(test_index, store, clock, QUIET)


@pytest.fixture
def make_event(test_index: SiteIndex) -> MakeEvent:
    """Canonical events of test-site devices."""
    return make_event_factory(test_index)


@pytest.fixture
def alarms(store: AlarmStore, clock: FakeClock) -> Iterator[AlarmService]:
    """The web app's view of the same store."""
    service = AlarmService(store, clock, poll_s=0.02)
    yield service
    service.close()


EngineFactory = Callable[..., RulesEngine]


@pytest.fixture
def escalation_site(test_site: Site) -> Callable[..., SiteIndex]:
    """The test site with other escalation settings."""

    def build(**fields: Any) -> SiteIndex:
        return with_changes(test_site, escalation=Escalation(**fields))

    return build
