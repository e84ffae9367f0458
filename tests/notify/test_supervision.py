"""Supervision on the fake clock: a channel that refuses (the ntfy stand-in answering 500)
raises `notify_failing` naming channel and phone within 30 s, a ward with no reachable phone
raises a high `notify_unreachable`, the technical alarm goes out where the channel still
works, and both clear when it works again (docs/notifications.md)."""

from __future__ import annotations

from datetime import timedelta

from carehub.clock import FakeClock
from services.alarms.model import Alarm
from services.notify.channel import ChannelError, Notice, Target
from services.notify.service import Notifier
from services.rules.engine import RulesEngine
from tests.services.conftest import NIGHT, MakeEvent
from tests.support.ntfy_server import NtfyStandIn


def open_technical(engine: RulesEngine) -> dict[str, Alarm]:
    alarms = engine.store.list_alarms(active_only=True)
    return {f"{a.rule}/{a.device_id}": a for a in alarms if a.rule.startswith("notify_")}


def test_a_refusing_server_raises_notify_failing_within_30_s(
    engine: RulesEngine,
    notifier: Notifier,
    make_event: MakeEvent,
    clock: FakeClock,
    ntfy: NtfyStandIn,
) -> None:
    ntfy.status = 500
    started = clock.now()
    engine.handle(make_event("fall-a1", "fall", NIGHT, confidence=0.9))
    notifier.tick()
    assert notifier.wait_idle()
    technical = open_technical(engine)
    assert {"notify_failing/ntfy:phone-a", "notify_failing/ntfy:leader"} <= set(technical)
    assert all(a.raised_at - started <= timedelta(seconds=30) for a in technical.values())
    assert notifier.outbox.pending() == []  # failures are recorded, not retried forever
    fall = next(a for a in engine.store.list_alarms(active_only=True) if a.rule == "fall")
    rows = notifier.outbox.for_alarm(fall.alarm_id)
    assert {r.status for r in rows} == {"failed"}
    assert all("HTTP 500" in (r.error or "") for r in rows)
    assert notifier.health()["ntfy:phone-a"] == "failing"


def test_a_silent_channel_is_found_by_the_link_check_and_clears(
    engine: RulesEngine, notifier: Notifier, clock: FakeClock, ntfy: NtfyStandIn
) -> None:
    notifier.tick()
    assert notifier.wait_idle()
    assert open_technical(engine) == {}
    ntfy.healthy = False  # no alarm is being sent: only the periodic check can notice
    clock.advance(20)
    notifier.tick()
    assert notifier.wait_idle()
    technical = open_technical(engine)
    assert set(technical) == {
        "notify_failing/ntfy:phone-a",
        "notify_failing/ntfy:phone-b",
        "notify_failing/ntfy:leader",
        "notify_unreachable/ward:a",
        "notify_unreachable/ward:b",
    }
    assert technical["notify_unreachable/ward:a"].priority.value == "high"
    assert technical["notify_failing/ntfy:phone-a"].raised_at == clock.now()
    ntfy.healthy = True
    clock.advance(20)
    notifier.tick()
    assert notifier.wait_idle()
    left = open_technical(engine)
    # medium ones resolve as their sensor; a high one nobody acknowledged says it cleared
    assert set(left) == {"notify_unreachable/ward:a", "notify_unreachable/ward:b"}
    assert all(a.cleared_at is not None for a in left.values())


def test_one_failing_phone_is_told_about_through_the_others(
    engine: RulesEngine, notifier: Notifier, make_event: MakeEvent, ntfy: NtfyStandIn
) -> None:
    real_send = notifier.channels["ntfy"].send

    def send(target: Target, notice: Notice) -> None:
        if target.phone_id == "phone-b":
            raise ChannelError("phone-b's topic refused")
        real_send(target, notice)

    notifier.channels["ntfy"].send = send  # type: ignore[method-assign]
    notifier._workers["ntfy"].channel = notifier.channels["ntfy"]
    engine.handle(make_event("diaper-r003", "saturation", NIGHT, level=90))
    notifier.tick()
    assert notifier.wait_idle()
    notifier.tick()  # the technical alarm's own change
    assert notifier.wait_idle()
    technical = open_technical(engine)
    assert set(technical) == {"notify_failing/ntfy:phone-b"}  # the leader still hears ward b
    told = {m["topic"] for m in ntfy.messages() if "channel failing" in m["title"]}
    assert told == {"testhjem-a-5c1f", "testhjem-leader-e7a2"}  # not phone-b itself
