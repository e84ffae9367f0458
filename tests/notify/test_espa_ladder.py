"""A fall reaches a DECT handset through the ladder: the site file's `notify.espa` block and a
phone's `espa_address` become an `EspaChannel` (as app/hub.py builds it), the notifier sends
the first step to the ward's handset, the simulated paging system takes the call, and the
ladder keeps going, since ESPA's ACK is not a person's (docs/espa.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from carehub.clock import FakeClock
from carehub.site import EspaLink, Notify, Phone, Site, SiteIndex, load_site
from services.alarms.store import AlarmStore
from services.notify.espa import EspaChannel, EspaSettings
from services.notify.service import Notifier
from services.rules.engine import RulesEngine
from tests.notify.conftest import PUBLIC, SECRET
from tests.services.conftest import NIGHT, make_event_factory
from tests.support.espa_pager import EspaPager

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def pager() -> Iterator[EspaPager]:
    server = EspaPager().start_tcp()
    yield server
    server.stop()


def espa_site(pager: EspaPager) -> Site:
    site = load_site(ROOT / "sites" / "test.yaml")
    return site.model_copy(
        update={
            "notify": Notify(public_url=PUBLIC, espa=EspaLink(target=pager.url, step_timeout=2)),
            "phones": [
                Phone(id="dect-a", name="DECT A", wards=["a"], espa_address="301"),
                Phone(id="dect-b", name="DECT B", wards=["b"], espa_address="302"),
            ],
        }
    )


def test_a_fall_rings_the_wards_handset_and_the_ladder_goes_on(
    pager: EspaPager, tmp_path: Path
) -> None:
    site = espa_site(pager)
    assert site.notify.espa is not None
    db = tmp_path / "carehub.db"
    clock = FakeClock(NIGHT)
    store = AlarmStore(db)
    engine = RulesEngine(SiteIndex(site), store, clock)
    channel = EspaChannel(EspaSettings(**site.notify.espa.model_dump()))
    notifier = Notifier(db, site, [channel], clock, secret_key=SECRET, poll_s=3600).start()
    try:
        engine.handle(make_event_factory(SiteIndex(site))("fall-a1", "fall", NIGHT, confidence=0.9))
        notifier.tick()
        assert notifier.wait_idle()
        assert [c.address for c in pager.calls] == ["301"]  # ward a's handset, not ward b's
        call = pager.calls[0]
        assert "a-1" in call.text  # the room, never a resident's name
        fall = next(a for a in store.list_alarms(active_only=True) if a.rule == "fall")
        rows = notifier.outbox.for_alarm(fall.alarm_id)
        assert [(r.phone_id, r.channel, r.status) for r in rows] == [("dect-a", "espa", "sent")]
        assert fall.acknowledged_at is None  # the paging system took it; nobody has yet
        clock.advance(60 * 60)  # unacknowledged: reminders and escalation keep calling
        engine.tick()
        notifier.tick()
        assert notifier.wait_idle()
        assert len(pager.calls) > 1
        assert "302" in {c.address for c in pager.calls}  # escalated: every handset
    finally:
        notifier.stop()
        store.close()
