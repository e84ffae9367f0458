"""Fixtures of the notification tests: the test site with the ntfy stand-in as its server, a
store in tmp_path, a FakeClock at night, the rules engine and a notifier over them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from carehub.clock import FakeClock
from carehub.site import Escalation, Notify, NtfyServer, Site, SiteIndex, load_site
from services.alarms.store import AlarmStore
from services.notify.ntfy import NtfyChannel
from services.notify.service import Notifier
from services.rules.engine import EngineConfig, RulesEngine
from tests.services.conftest import NIGHT, MakeEvent, make_event_factory
from tests.support.ntfy_server import NtfyStandIn

ROOT = Path(__file__).resolve().parents[2]
SECRET = "test-secret-key-of-at-least-32-characters"
TOKEN = "tk_test_token_never_in_a_notice"
PUBLIC = "https://carehub.test"


def notify_site(ntfy_url: str, **escalation: Any) -> Site:
    """The test site, its phones published to `ntfy_url`; escalation high 2 min, reminders
    every 1.5 min, fallback at 5 min to the leader (overridable)."""
    site = load_site(ROOT / "sites" / "test.yaml")
    esc = {
        "high_minutes": 2,
        "reminder_high_minutes": 1.5,
        "fallback_minutes": 5,
        "fallback_phones": ["leader"],
        **escalation,
    }
    return site.model_copy(
        update={
            "escalation": Escalation.model_validate(esc),
            "notify": Notify(
                public_url=PUBLIC, ntfy=NtfyServer(url=ntfy_url, token_env="CAREHUB_NTFY_TOKEN")
            ),
        }
    )


@pytest.fixture
def ntfy(monkeypatch: pytest.MonkeyPatch) -> Iterator[NtfyStandIn]:
    monkeypatch.setenv("CAREHUB_NTFY_TOKEN", TOKEN)
    server = NtfyStandIn(token=TOKEN).start()
    yield server
    server.stop()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NIGHT)


@pytest.fixture
def site(ntfy: NtfyStandIn) -> Site:
    return notify_site(ntfy.url)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "carehub.db"


@pytest.fixture
def engine(site: Site, db: Path, clock: FakeClock) -> Iterator[RulesEngine]:
    store = AlarmStore(db)
    yield RulesEngine(SiteIndex(site), store, clock, EngineConfig(timer_grace=timedelta(0)))
    store.close()


@pytest.fixture
def make_event(site: Site) -> MakeEvent:
    return make_event_factory(SiteIndex(site))


def make_notifier(site: Site, db: Path, clock: FakeClock, **kw: Any) -> Notifier:
    assert site.notify.ntfy is not None
    channel = NtfyChannel(site.notify.ntfy.url, site.notify.ntfy.token_env, timeout_s=2.0)
    return Notifier(db, site, [channel], clock, secret_key=SECRET, poll_s=3600, **kw)


@pytest.fixture
def notifier(site: Site, db: Path, clock: FakeClock, engine: RulesEngine) -> Iterator[Notifier]:
    del engine  # the engine's store made the schema first
    n = make_notifier(site, db, clock).start()
    yield n
    n.stop()
