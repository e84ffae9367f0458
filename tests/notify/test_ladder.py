"""The ladder on the fake clock: first to the ward's phones, reminders, escalation to every
phone, fallback to the leader, and the first acknowledgement (a phone, the board, the API)
stopping it everywhere with a short "taken by" to the phones that were told
(docs/notifications.md)."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from carehub.clock import FakeClock
from services.alarms.service import AlarmService
from services.notify.channel import Notice, Step, Urgency
from services.notify.ladder import Ladder, Send
from services.notify.service import Notifier
from services.rules.engine import RulesEngine
from tests.notify.conftest import PUBLIC, TOKEN, notify_site
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


def test_a_new_alarms_first_notice_goes_before_sends_already_queued_for_older_alarms(
    engine: RulesEngine,
    make_event: MakeEvent,
    site: Any,
    db: Any,
    clock: FakeClock,
    ntfy: NtfyStandIn,
) -> None:
    """On a bad night tens of alarms nobody has taken escalate to every phone and are
    reminded: hundreds of sends queued on one channel. A new fall's first notice to its ward
    goes before them, not after (docs/notifications.md, "The outbox")."""
    from tests.notify.conftest import make_notifier

    notifier = make_notifier(site, db, clock)  # its workers start only once all is queued
    try:
        older = engine.handle(make_event("fall-a1", "fall", NIGHT, confidence=0.9))[0].alarm_id
        notifier.tick()
        clock.advance(120)  # reminded at 1.5 min, escalated to every phone at 2
        engine.tick()
        notifier.tick()
        later = {Step.ESCALATED, Step.REMINDER}
        waiting = [r for r in notifier.outbox.pending() if r.alarm_id == older and r.step in later]
        assert {r.step for r in waiting} == later
        event = make_event("fall-b1", "fall", clock.now(), confidence=0.9)
        new = next(c.alarm_id for c in engine.handle(event) if c.alarm["rule"] == "fall")
        notifier.tick()  # queued after all of the older alarm's sends
        notifier.start()
        assert notifier.wait_idle(10)
    finally:
        notifier.stop()
    # one worker per channel: the stand-in receives in the order of sending
    about = [m["click"].rsplit("=", 1)[-1] for m in ntfy.messages()]
    lines = [m["message"].splitlines()[-1] for m in ntfy.messages()]
    later_of_older = [
        i
        for i, (a, line) in enumerate(zip(about, lines, strict=True))
        if a == older and line in {"Still not taken", "Escalated: nobody has taken it"}
    ]
    assert len(later_of_older) == len(waiting)
    assert about.index(new) < min(later_of_older), list(zip(about, lines, strict=True))


def test_the_outbox_hands_out_pending_sends_most_urgent_first_then_oldest(
    db: Any, clock: FakeClock
) -> None:
    """The order a full worker queue is refilled in, and every step has a place in it (a step
    added without one would stop its channel's worker)."""
    from services.alarms.store import AlarmStore
    from services.notify.outbox import SEND_ORDER, Outbox

    assert set(SEND_ORDER) == set(Step)
    store = AlarmStore(db)
    try:
        outbox = Outbox(store)
        steps = [
            Step.TAKEN,
            Step.REMINDER,
            Step.ESCALATED,
            Step.FIRST,
            Step.FALLBACK,
            Step.FIRST,
            Step.TECHNICAL,
        ]
        with store.transaction():
            for i, s in enumerate(steps):
                notice = Notice(alarm_id=f"a{i}", step=s, urgency=Urgency.HIGH, title="t", body="b")
                outbox.add(f"a{i}", "phone-a", "ntfy", "topic", notice, clock.now())
        order = [(r.step, r.alarm_id) for r in outbox.pending()]
    finally:
        store.close()
    assert order == [
        (Step.FIRST, "a3"),
        (Step.FIRST, "a5"),
        (Step.TECHNICAL, "a6"),
        (Step.ESCALATED, "a2"),
        (Step.FALLBACK, "a4"),
        (Step.REMINDER, "a1"),
        (Step.TAKEN, "a0"),
    ]


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
    # taken, and the worker leaves: it is stopping
    worker.queue.put((service._CHECK_RANK, -1, service._Check()))
    worker.thread.join(5)
    assert not worker.thread.is_alive()
    # a tick that was under way queues once more (the ladder's own last tick may have
    # filled it already)
    with contextlib.suppress(queue.Full):
        worker.put_check()
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


# --- the ladder's decisions and texts on their own (mutation testing, docs/testing.md) -------


@dataclass(frozen=True)
class Browser:
    """A phone that comes and goes (a Web Push subscription), as the ladder sees it."""

    id: str
    name: str
    wards: tuple[str, ...]


def ladder(locale: str = "en", browsers: Sequence[Browser] | None = None) -> Ladder:
    """The test site's ladder: phone-a (ward a), phone-b (ward b), leader (both wards, the
    fallback phone at 5 min); no channel is started."""
    site = notify_site("http://127.0.0.1:9").model_copy(update={"locale": locale})
    return Ladder(site, None if browsers is None else (lambda: browsers))


def alarm(**fields: Any) -> dict[str, Any]:
    base = {
        "alarm_id": "a1",
        "rule": "fall",
        "room": "a-1",
        "device_id": "fall-a1",
        "priority": "high",
        "state": "raised",
    }
    return {**base, **fields}


def change(kind: str, reason: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "reason": reason, "alarm": alarm(**fields)}


def sends(plan: list[Send]) -> list[tuple[str, Step]]:
    return [(s.phone_id, s.step) for s in plan]


def test_who_is_told_at_each_change() -> None:
    """Raised: the ward's phones (every phone, as `technical`, for a notification alarm with
    no room); a reminder: the phones told so far, else the ward's; escalated: every phone;
    the acknowledgement, or an end without one: `taken` to the phones told; nothing else."""
    ld, told = ladder(), ["phone-a", "leader"]
    assert sends(ld.plan(change("new", "raised"), [])) == [
        ("phone-a", Step.FIRST),
        ("leader", Step.FIRST),
    ]
    hub = change("new", "raised", rule="notify_failing", room=None, device_id=None)
    assert sends(ld.plan(hub, [])) == [
        ("phone-a", Step.TECHNICAL),
        ("phone-b", Step.TECHNICAL),
        ("leader", Step.TECHNICAL),
    ]
    assert sends(ld.plan(change("update", "reminder", room="b-1"), [])) == [
        ("phone-b", Step.REMINDER),
        ("leader", Step.REMINDER),
    ]
    assert sends(ld.plan(change("update", "reminder"), ["leader"])) == [("leader", Step.REMINDER)]
    reminded_late = change("update", "reminder", state="acknowledged")
    assert ld.plan(reminded_late, told) == []
    assert [p for p, _ in sends(ld.plan(change("update", "escalated"), told))] == [
        "phone-a",
        "phone-b",
        "leader",
    ]
    acknowledged = {"state": "acknowledged", "acknowledged_at": "2026-11-22T23:01:00Z"}
    assert sends(ld.plan(change("update", "acknowledged", **acknowledged), told)) == [
        ("phone-a", Step.TAKEN),
        ("leader", Step.TAKEN),
    ]
    closed_unacknowledged = change("end", "resolved", state="resolved")
    assert sends(ld.plan(closed_unacknowledged, told)) == [
        ("phone-a", Step.TAKEN),
        ("leader", Step.TAKEN),
    ]
    assert ld.plan(change("end", "resolved", **{**acknowledged, "state": "resolved"}), told) == []
    assert ld.plan(change("update", "repeat"), told) == []


def test_the_fallback_goes_to_the_fallback_phones_while_nobody_has_taken_it() -> None:
    ld = ladder()
    for state in ("raised", "escalated"):
        assert sends(ld.fallback(alarm(state=state), ["phone-a"])) == [("leader", Step.FALLBACK)]
    assert ld.fallback(alarm(state="acknowledged"), ["phone-a"]) == []


def test_subscribed_browsers_are_phones_of_their_wards_but_never_the_fallback() -> None:
    """A browser with a static phone's id does not replace it."""
    anna = Browser("push-anna", "Anna's phone", ("b",))
    ld = ladder(browsers=[anna, Browser("phone-a", "Impostor", ("b",))])
    assert list(ld.phones) == ["phone-a", "phone-b", "leader", "push-anna"]
    assert ld.phones["phone-a"].name == "Phone A"
    assert ld.ward_phones(alarm(room="b-1")) == ["phone-b", "leader", "push-anna"]
    assert ld.all_phones() == ["phone-a", "phone-b", "leader", "push-anna"]
    assert ld.fallback_phones() == ["leader"]


def test_a_title_names_the_rule_and_the_room_or_device_never_the_resident() -> None:
    en, da = ladder(), ladder("da")
    assert en.title(alarm()) == "Fall – room a-1"
    assert da.title(alarm()) == "Fald – stue a-1"
    assert en.title(alarm(rule="mystery")) == "mystery – room a-1"
    assert en.title(alarm(rule="sensor_silent", room=None)) == "Sensor silent – fall-a1"
    assert en.title(alarm(rule="self_test", room=None, device_id=None)) == "Self-test"
    assert da.ack_label() == "Jeg tager den"
    assert en.ack_label() == "I'm on it"


def test_each_rung_reads_as_documented() -> None:
    """Priority and ward first; then what the rung adds. `taken` is low, carries no
    acknowledge link and says who took it, or who (the sensor) closed it."""
    ld = ladder()

    def notice(step: Step, **fields: Any) -> Notice:
        return ld.notice(Send("a1", "phone-a", step, alarm(**fields)), click_url="C", ack_url="K")

    assert notice(Step.FIRST) == Notice(
        alarm_id="a1",
        step=Step.FIRST,
        urgency=Urgency.HIGH,
        title="Fall – room a-1",
        body="High priority · Ward A",
        click_url="C",
        ack_url="K",
        tags=("rotating_light",),
    )
    assert notice(Step.FIRST, priority="medium", room=None).body == "Medium priority"
    assert notice(Step.REMINDER).body == "High priority · Ward A\nStill not taken"
    assert notice(Step.ESCALATED).body == "High priority · Ward A\nEscalated: nobody has taken it"
    assert notice(Step.FALLBACK).body == "High priority · Ward A\nNobody has taken it for 5 min"
    assert notice(Step.TAKEN, acknowledged_by="Phone B", resolved_by="x") == Notice(
        alarm_id="a1",
        step=Step.TAKEN,
        urgency=Urgency.LOW,
        title="Taken: Fall – room a-1",
        body="Taken by Phone B",
        click_url="C",
        tags=("white_check_mark",),
    )
    assert notice(Step.TAKEN, resolved_by="nurse.anna").body == "Closed by nurse.anna"
    assert notice(Step.TAKEN, resolved_by="sensor").body == "Closed by the sensor"
    assert notice(Step.TAKEN).body == "Closed by ?"
