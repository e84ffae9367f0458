"""A real web app over a real SQLite file, served by uvicorn on a free port."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.broker import LocalBroker
from app.hub import Hub, HubOptions
from carehub.clock import FakeClock
from carehub.mqtt import Protocol
from carehub.settings import Settings
from carehub.site import Site, SiteIndex
from services.web.app import create_app
from services.web.context import HubContext
from services.web.users import Role, UserStore
from tests.support.mqttprobe import unique_client_prefix
from tests.support.server import ServerThread

PASSWORD = "correct-horse-battery"
USERS = {"sofie": Role.STAFF, "mads": Role.MANAGER, "ida": Role.ADMIN}


@pytest.fixture
def users(tmp_path: Path) -> Iterator[UserStore]:
    store = UserStore(tmp_path / "hub.db")
    for name, role in USERS.items():
        store.upsert(name, PASSWORD, role)
    yield store
    store.close()


@pytest.fixture
def web_ctx(tmp_path: Path, users: UserStore, test_index: SiteIndex) -> HubContext:
    settings = Settings(db=tmp_path / "hub.db", _env_file=None)  # type: ignore[call-arg]
    return HubContext(
        settings=settings,
        site=test_index,
        users=users,
        secret_key="test-secret-key-not-for-production",
        health=lambda: {"broker": "ok", "store": "ok"},
        metrics=lambda: {"carehub_messages_in_total": 3},
    )


@pytest.fixture
def server(web_ctx: HubContext) -> Iterator[ServerThread]:
    s = ServerThread(create_app(web_ctx)).start()
    yield s
    s.stop()


def token_for(base: str, username: str) -> str:
    r = httpx.post(f"{base}/api/token", data={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["token_type"] == "bearer"
    return str(body["access_token"])


def bearer(base: str, username: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_for(base, username)}"}


@pytest.fixture
def live_hub(
    tmp_path: Path, broker: LocalBroker, mqtt_protocol: Protocol, test_site: Site
) -> Iterator[tuple[Hub, ServerThread]]:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        db=tmp_path / "hub.db",
        mqtt_url=f"mqtt://{broker.host}:{broker.port}",
        secret_key="s" * 40,
    )
    users = UserStore(settings.db)
    for name, role in USERS.items():
        users.upsert(name, PASSWORD, role)
    users.close()
    hub = Hub(
        settings,
        test_site,
        ("gateway", "rules"),
        options=HubOptions(protocol=mqtt_protocol, client_id_prefix=unique_client_prefix()),
    )
    hub.start()
    assert hub.wait_ready()
    server = ServerThread(create_app(hub.api_context())).start()
    yield hub, server
    server.stop()
    hub.stop()


HISTORY_END = datetime(2026, 11, 20, 11, 0, tzinfo=UTC)
HISTORY_FIRST, HISTORY_LAST = "2026-11-11", "2026-11-19"
"""The nights a `history_server` holds in full: ten days of the test site up to 20 Nov."""


@pytest.fixture(scope="module")
def history_server(
    tmp_path_factory: pytest.TempPathFactory, test_site: Site
) -> Iterator[ServerThread]:
    """The web app over ten days of the test site written by `carehub backfill` (the real
    gateway, rules engine and simulated staff into a real SQLite file), for the reports."""
    from app.backfill import backfill
    from gateway.store.sqlite import SqliteEventStore
    from services.alarms.store import AlarmStore
    from services.reports.service import StoreReportSource

    db = tmp_path_factory.mktemp("history") / "hub.db"
    site = test_site
    backfill(site, db, days=10, end=HISTORY_END, parallel=False)
    users = UserStore(db)
    for name, role in USERS.items():
        users.upsert(name, PASSWORD, role)
    events, alarms = SqliteEventStore(db), AlarmStore(db)
    ctx = HubContext(
        settings=Settings(db=db, _env_file=None),  # type: ignore[call-arg]
        site=SiteIndex(site),
        users=users,
        secret_key="test-secret-key-not-for-production",
        clock=FakeClock(HISTORY_END),
        reports=StoreReportSource(site.site, events, alarms.raised_between),
    )
    s = ServerThread(create_app(ctx)).start()
    yield s
    s.stop()
    events.close()
    alarms.close()
    users.close()
