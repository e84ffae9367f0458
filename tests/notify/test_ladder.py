"""The ladder on the fake clock: first to the ward's phones, reminders, escalation to every
phone, fallback to the leader, and the first acknowledgement (a phone, the board, the API)
stopping it everywhere with a short "taken by" to the phones that were told
(docs/notifications.md)."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from carehub.clock import FakeClock
from services.alarms.service import AlarmService
from services.notify.service import Notifier
from services.rules.engine import RulesEngine
from tests.notify.conftest import PUBLIC, TOKEN
from tests.services.conftest import NIGHT, MakeEvent
from tests.support.ntfy_server import NtfyStandIn

A, B, LEADER = "testhjem-a-5c1f", "testhjem-b-90de", "testhjem-leader-e7a2"


def step(engine: RulesEngine, notifier: Notifier, clock: FakeClock, seconds: float) -> None:
    clock.advance(seconds)
    engine.tick()
    notifier.tick()
    assert notifier.wait_idle()


def of(ntfy: NtfyStandIn, alarm_id: str) -> list[dict[str, Any]]:
    """The publishes about one alarm (the fall sensor also goes silent on the way)."""
    return [m for m in ntfy.messages() if m["click"].endswith(f"?alarm={alarm_id}")]


def seen(ntfy: NtfyStandIn, alarm_id: str) -> list[tuple[str, str]]:
    """(topic, last body line or title) of every publish about one alarm, in order."""
    out = []
    for m in of(ntfy, alarm_id):
        lines = m["message"].splitlines()
        out.append((m["topic"], lines[-1] if len(lines) > 1 else m["title"]))
    return out


def fall(engine: RulesEngine, make_event: MakeEvent, notifier: Notifier) -> str:
    changes = engine.handle(make_event("fall-a1", "fall", NIGHT, confidence=0.9))
    notifier.tick()
    assert notifier.wait_idle()
    return changes[0].alarm_id


def press(action: dict[str, str]) -> httpx.Response:
    """What the ntfy app does when the button is tapped: the action's method, URL, headers."""
    assert action["action"] == "http"
    return httpx.request(
        action.get("method", "POST"),
        action["url"],
        headers=action.get("headers", {}),
        content=action.get("body", ""),
    )


def test_first_reminders_escalation_fallback_on_the_clock(
    engine: RulesEngine,
    notifier: Notifier,
    make_event: MakeEvent,
    clock: FakeClock,
    ntfy: NtfyStandIn,
) -> None:
    alarm_id = fall(engine, make_event, notifier)
    first = ntfy.messages()
    assert sorted(m["topic"] for m in first) == sorted([A, LEADER])  # ward a's phones, at once
    assert first[0]["priority"] == 5
    assert first[0]["_authorization"] == f"Bearer {TOKEN}"
    step(engine, notifier, clock, 60)
    assert len(of(ntfy, alarm_id)) == 2  # reminders every 1.5 min
    step(engine, notifier, clock, 30)
    assert sorted(seen(ntfy, alarm_id)[2:]) == [(A, "Still not taken"), (LEADER, "Still not taken")]
    step(engine, notifier, clock, 30)  # 2 min: escalated to every phone
    assert sorted(seen(ntfy, alarm_id)[4:]) == sorted(
        [(A, "Escalated: nobody has taken it"), (B, "Escalated: nobody has taken it"),
         (LEADER, "Escalated: nobody has taken it")]
    )  # fmt: skip
    step(engine, notifier, clock, 60)  # 3 min: reminded, now to everyone told
    assert sorted(t for t, _ in seen(ntfy, alarm_id)[7:]) == sorted([A, B, LEADER])
    step(engine, notifier, clock, 90)  # 4.5 min: reminded again
    assert len(of(ntfy, alarm_id)) == 13
    step(engine, notifier, clock, 30)  # 5 min: the fallback, to the leader
    assert seen(ntfy, alarm_id)[13:] == [(LEADER, "Nobody has taken it for 5 min")]
    deliveries = notifier.outbox.for_alarm(alarm_id)
    assert [d.status for d in deliveries] == ["sent"] * 14
    steps = [d.step.value for d in deliveries]
    assert steps == ["first"] * 2 + ["reminder"] * 2 + ["escalated"] * 3 + ["reminder"] * 6 + [
        "fallback"
    ]


@pytest.mark.parametrize("by", ["phone", "board"])
def test_first_acknowledgement_stops_the_ladder_and_tells_who_took_it(
    by: str,
    engine: RulesEngine,
    notifier: Notifier,
    make_event: MakeEvent,
    clock: FakeClock,
    ntfy: NtfyStandIn,
    db: object,
) -> None:
    alarm_id = fall(engine, make_event, notifier)
    step(engine, notifier, clock, 120)  # escalated: all three told
    told = len(of(ntfy, alarm_id))
    assert told == 7  # first 2, a reminder 2, escalated 3
    if by == "phone":
        # the phone's button: its link, checked and redeemed by the hub's own code path
        action = ntfy.messages(B)[-1]["actions"][0]
        assert action["url"].startswith(f"{PUBLIC}/ack/{alarm_id}/")
        token = action["url"].rsplit("/", 1)[1]
        alarm = notifier.links.redeem(alarm_id, token, "Phone B")
        who = "Phone B"
    else:
        service = AlarmService(engine.store, clock)
        alarm = service.acknowledge(alarm_id, "nurse.anna")  # type: ignore[assignment]
        who = "nurse.anna"
    del alarm
    step(engine, notifier, clock, 1)
    taken = of(ntfy, alarm_id)[told:]
    assert sorted(m["topic"] for m in taken) == sorted([A, B, LEADER])
    assert {m["message"] for m in taken} == {f"Taken by {who}"}
    assert all("actions" not in m and m["priority"] == 3 for m in taken)
    for _ in range(10):  # no reminder, no fallback any more
        step(engine, notifier, clock, 60)
    assert len(of(ntfy, alarm_id)) == told + 3
    if by == "phone":
        audit = [e for e in engine.store.audit_log(alarm_id) if e.action == "acknowledge"]
        assert audit[0].detail == {"from": "escalated", "via": "phone", "phone": "phone-b"}


def test_a_medium_alarm_in_ward_b_goes_to_ward_b_first(
    engine: RulesEngine, notifier: Notifier, make_event: MakeEvent, ntfy: NtfyStandIn
) -> None:
    engine.handle(make_event("diaper-r003", "saturation", NIGHT, level=90))
    notifier.tick()
    assert notifier.wait_idle()
    assert sorted(m["topic"] for m in ntfy.messages()) == sorted([B, LEADER])
    m = ntfy.messages(B)[0]
    assert m["priority"] == 4
    assert "r-003" not in str(m)  # no resident on a phone
    assert "Test Person" not in str(m)


def test_stopping_with_a_full_worker_queue_returns(
    site: Any, db: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo at 300x hung in `stop` for ever: its worker had already left (stopping, it
    takes no further send), the ladder's last tick had filled the queue again, and a blocking
    put of the stop sentinel waited for a consumer that was gone."""
    from services.notify import service
    from tests.notify.conftest import make_notifier

    monkeypatch.setattr(service, "QUEUE_SIZE", 1)
    notifier = make_notifier(site, db, clock).start()
    worker = next(iter(notifier._workers.values()))
    notifier._stopping.set()
    worker.queue.put(service._Check())  # taken, and the worker leaves: it is stopping
    worker.thread.join(5)
    assert not worker.thread.is_alive()
    worker.queue.put_nowait(service._Check())  # a tick that was under way queues once more
    assert worker.queue.full()
    stopping = threading.Thread(target=notifier.stop, kwargs={"timeout": 2.0}, daemon=True)
    stopping.start()
    stopping.join(15)
    assert not stopping.is_alive()


def test_stopping_with_sends_queued_leaves_them_in_the_outbox(
    engine: RulesEngine,
    make_event: MakeEvent,
    ntfy: NtfyStandIn,
    site: Any,
    db: Any,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A hub stopping while its channel is slow and sends wait: the workers take no further
    send, nothing fails against a closed store, and a new start sends what was left."""
    from tests.notify.conftest import make_notifier

    ntfy.delay_s = 0.5
    first = make_notifier(site, db, clock).start()
    for device in ("fall-a1", "fall-b1"):
        engine.handle(make_event(device, "fall", NIGHT, confidence=0.9))
    first.tick()  # every ward phone of both falls queued on the one slow ntfy worker
    first.stop(timeout=5.0)
    assert not [r for r in caplog.records if "notify worker" in r.getMessage()]
    sent_before = len(ntfy.messages())
    ntfy.delay_s = 0.0
    second = make_notifier(site, db, clock).start()
    try:
        second.tick()
        assert second.wait_idle()
    finally:
        second.stop()
    assert len(ntfy.messages()) > sent_before  # the rest went out after the restart
