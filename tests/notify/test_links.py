"""Acknowledge links over a real web app and a real SQLite file: the ntfy action button
acknowledges exactly once, as the phone app would press it; a second use is 409 even after a
restart; a forged, altered, misdirected or expired link is refused; a GET only asks
(docs/notifications.md)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from carehub.clock import FakeClock
from carehub.settings import Settings
from carehub.site import Site, SiteIndex
from services.alarms.service import AlarmService
from services.notify.desk import NotifyDesk
from services.notify.service import Notifier
from services.rules.engine import RulesEngine
from services.web.app import create_app
from services.web.context import HubContext
from services.web.users import Role, UserStore
from tests.notify.conftest import SECRET, make_notifier
from tests.services.conftest import NIGHT, MakeEvent
from tests.support.ntfy_server import NtfyStandIn
from tests.support.server import ServerThread, free_port

A, LEADER = "testhjem-a-5c1f", "testhjem-leader-e7a2"


class Web:
    """The web app over the file, restartable (a new app, desk and store each time)."""

    def __init__(self, db: Path, site: Site, clock: FakeClock) -> None:
        self.db, self.site, self.clock = db, site, clock
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.users = UserStore(db)
        self.users.upsert("sofie", "correct-horse-battery", Role.STAFF)
        self._parts: list[Any] = []
        self.server: ServerThread | None = None

    def start(self) -> None:
        alarms = AlarmService.open(self.db, self.clock)
        desk = NotifyDesk(self.db, self.site, self.clock, SECRET, alarms.wake)
        ctx = HubContext(
            settings=Settings(db=self.db, _env_file=None),  # type: ignore[call-arg]
            site=SiteIndex(self.site),
            users=self.users,
            secret_key=SECRET,
            clock=self.clock,
            alarms=alarms,
            notify=desk,
        )
        self.server = ServerThread(create_app(ctx), self.port).start()
        self._parts = [alarms, desk]

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        for part in self._parts:
            part.close()

    def bearer(self) -> dict[str, str]:
        r = httpx.post(
            f"{self.url}/api/token",
            data={"username": "sofie", "password": "correct-horse-battery"},
        )
        return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def web(db: Path, site: Site, clock: FakeClock, engine: RulesEngine) -> Iterator[Web]:
    del engine  # schema first
    w = Web(db, site, clock)
    w.start()
    yield w
    w.stop()
    w.users.close()


@pytest.fixture
def linked(site: Site, db: Path, clock: FakeClock, web: Web) -> Iterator[Notifier]:
    n = make_notifier(site, db, clock, public_url=web.url).start()
    yield n
    n.stop()


def press(action: dict[str, Any]) -> httpx.Response:
    """What the ntfy app does on a tap: the action's method and URL, its headers and body."""
    assert action["action"] == "http"
    return httpx.request(
        action.get("method", "POST"),
        action["url"],
        headers=action.get("headers", {}),
        content=action.get("body", ""),
    )


def raise_fall(engine: RulesEngine, make_event: MakeEvent, notifier: Notifier) -> str:
    alarm_id = engine.handle(make_event("fall-a1", "fall", NIGHT, confidence=0.9))[0].alarm_id
    notifier.tick()
    assert notifier.wait_idle()
    return alarm_id


def test_the_action_button_acknowledges_exactly_once(
    engine: RulesEngine,
    make_event: MakeEvent,
    linked: Notifier,
    ntfy: NtfyStandIn,
    web: Web,
    clock: FakeClock,
) -> None:
    alarm_id = raise_fall(engine, make_event, linked)
    (message,) = ntfy.messages(A)
    assert message["click"] == f"{web.url}/?alarm={alarm_id}"
    (action,) = message["actions"]
    assert action["method"] == "POST"
    assert action["url"].startswith(f"{web.url}/ack/{alarm_id}/")
    assert "Authorization" not in action.get("headers", {})  # no credential in a notice
    shown = {k: v for k, v in message.items() if k != "_authorization"}  # what the phone gets
    assert "tk_test" not in str(shown)
    first = press(action)
    assert first.status_code == 200, first.text
    assert first.json()["acknowledged_by"] == "Phone A"
    assert first.json()["state"] == "acknowledged"
    assert press(action).status_code == 409  # the same button again
    assert press(ntfy.messages(LEADER)[0]["actions"][0]).status_code == 409  # taken already
    audit = [e for e in engine.store.audit_log(alarm_id) if e.action == "acknowledge"]
    assert len(audit) == 1
    assert audit[0].actor == "Phone A"
    assert audit[0].detail == {"from": "raised", "via": "phone", "phone": "phone-a"}
    # the others hear who took it; the delivery records say so too
    clock.advance(1)
    linked.tick()
    assert linked.wait_idle()
    assert ntfy.messages(LEADER)[-1]["message"] == "Taken by Phone A"
    r = httpx.get(f"{web.url}/api/alarms/{alarm_id}", headers=web.bearer())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["acknowledged_by"] == "Phone A"
    rows = [(d["phone"], d["channel"], d["step"], d["status"]) for d in body["deliveries"]]
    assert sorted(rows) == sorted(
        [("phone-a", "ntfy", "first", "sent"), ("leader", "ntfy", "first", "sent"),
         ("phone-a", "ntfy", "taken", "sent"), ("leader", "ntfy", "taken", "sent")]
    )  # fmt: skip
    # a restart forgets nothing: the link stays used
    web.stop()
    web.start()
    assert press(action).status_code == 409


def test_a_get_only_asks_and_bad_links_are_refused(
    engine: RulesEngine,
    make_event: MakeEvent,
    linked: Notifier,
    ntfy: NtfyStandIn,
    web: Web,
    clock: FakeClock,
) -> None:
    alarm_id = raise_fall(engine, make_event, linked)
    url = ntfy.messages(A)[0]["actions"][0]["url"]
    token = url.rsplit("/", 1)[1]
    page = httpx.get(url, headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert 'method="post"' in page.text
    assert "Phone A" in page.text
    assert engine.store.get(alarm_id).state.value == "raised"  # type: ignore[union-attr]
    payload, sig = token.split(".")
    forged = f"{payload}.{'A' * len(sig)}"
    assert httpx.post(f"{web.url}/ack/{alarm_id}/{forged}").status_code == 403
    assert httpx.post(f"{web.url}/ack/{alarm_id}/{payload[:-2]}xx.{sig}").status_code == 403
    assert httpx.post(f"{web.url}/ack/{alarm_id}/garbage").status_code == 403
    other = "00000000-0000-0000-0000-000000000000"
    assert httpx.post(f"{web.url}/ack/{other}/{token}").status_code == 403  # another alarm
    clock.advance(timedelta(hours=13))
    assert httpx.post(url).status_code == 410  # expired
    assert engine.store.get(alarm_id).state.value != "acknowledged"  # type: ignore[union-attr]


def test_a_link_of_another_hub_key_is_refused(
    engine: RulesEngine, make_event: MakeEvent, web: Web, db: Path, clock: FakeClock
) -> None:
    alarm_id = engine.handle(make_event("fall-a1", "fall", NIGHT, confidence=0.9))[0].alarm_id
    other = NotifyDesk(db, web.site, clock, "another-hub-key-of-at-least-32-chars!")
    token = other.links.token(alarm_id, "phone-a")
    other.close()
    assert httpx.post(f"{web.url}/ack/{alarm_id}/{token}").status_code == 403
