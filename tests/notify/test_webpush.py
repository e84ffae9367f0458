"""Web Push against a local push service stand-in (docs/notifications.md, "Web Push"): the
payload arrives encrypted (aes128gcm) and is decrypted with the subscription's own keys, the
VAPID header is a JWT signed with the hub's key for the push service's origin, TTL is never
0 and `Urgency: high` marks a high alarm; a subscription is a phone of its wards on the
ladder, and one the push service calls gone (410) is dropped and raises `notify_failing`."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from carehub.clock import FakeClock
from carehub.site import Site
from services.notify.channel import ChannelError, Notice, Step, Target, Urgency
from services.notify.ntfy import NtfyChannel
from services.notify.service import Notifier
from services.notify.subscriptions import PushSubscriptions
from services.notify.vapid import VapidKeys, load_or_create, vapid_path
from services.notify.webpush import WebPushChannel
from services.rules.engine import RulesEngine
from tests.notify.conftest import PUBLIC, SECRET
from tests.notify.test_supervision import open_technical
from tests.services.conftest import NIGHT, MakeEvent
from tests.support.ntfy_server import NtfyStandIn
from tests.support.push_service import PushServiceStandIn


@pytest.fixture
def push() -> Iterator[PushServiceStandIn]:
    server = PushServiceStandIn().start()
    yield server
    server.stop()


@pytest.fixture
def keys(db: Path) -> VapidKeys:
    return load_or_create(vapid_path(db))


def notice(urgency: Urgency = Urgency.HIGH) -> Notice:
    return Notice(
        alarm_id="al-1",
        step=Step.FIRST,
        urgency=urgency,
        title="Fall – room a-1",
        body="High priority · Ward A",
        click_url=f"{PUBLIC}/?alarm=al-1",
        ack_url=f"{PUBLIC}/ack/al-1/tok.sig",
    )


def target(subscription: dict[str, object]) -> Target:
    return Target("push-x", "sofie (web)", json.dumps(subscription))


def test_the_vapid_key_is_made_once_beside_the_database_0600(db: Path) -> None:
    first = load_or_create(vapid_path(db))
    assert first.path == db.parent / "vapid.pem"
    assert stat.S_IMODE(first.path.stat().st_mode) == 0o600
    again = load_or_create(vapid_path(db))
    assert again.public_key == first.public_key
    assert len(first.public_key) == 87  # 65 bytes, base64url: what applicationServerKey takes


def test_a_high_alarm_arrives_encrypted_signed_urgent_with_a_ttl(
    push: PushServiceStandIn, keys: VapidKeys
) -> None:
    channel = WebPushChannel(keys, "https://carehub.test")
    try:
        channel.send(target(push.subscribe()), notice())
        channel.send(target(push.subscribe()), notice(Urgency.LOW))
    finally:
        channel.close()
    assert push.rejected == []
    high, low = push.received(count=2)
    assert high.payload == {
        "ack_label": "Acknowledge",
        "alarm_id": "al-1",
        "step": "first",
        "urgency": "high",
        "title": "Fall – room a-1",
        "body": "High priority · Ward A",
        "ack_url": f"{PUBLIC}/ack/al-1/tok.sig",
        "click_url": f"{PUBLIC}/?alarm=al-1",
    }
    assert (high.ttl, high.urgency) == (300, "high")
    assert (low.ttl, low.urgency) == (3600, "normal")
    assert high.vapid_key == keys.public_key  # signed with the key the board subscribed with
    assert high.claims["aud"] == push.url
    assert high.claims["sub"] == "https://carehub.test"


def test_gone_and_refused_are_channel_errors(push: PushServiceStandIn, keys: VapidKeys) -> None:
    channel = WebPushChannel(keys, "https://carehub.test", timeout_s=2.0)
    sub = push.subscribe()
    push.gone.add(sub["endpoint"].rsplit("/", 1)[1])  # type: ignore[union-attr]
    with pytest.raises(ChannelError) as gone:
        channel.send(target(sub), notice())
    assert gone.value.gone
    push.status = 500
    with pytest.raises(ChannelError) as refused:
        channel.send(target(push.subscribe()), notice())
    assert not refused.value.gone
    unreachable = {**push.subscribe(), "endpoint": "http://127.0.0.1:9/push/x"}
    with pytest.raises(ChannelError) as down:
        channel.send(target(unreachable), notice())
    assert not down.value.gone
    channel.check()  # nothing to check without sending: it never raises
    channel.close()


@pytest.fixture
def notifier_with_push(
    site: Site, db: Path, clock: FakeClock, engine: RulesEngine, keys: VapidKeys
) -> Iterator[Notifier]:
    del engine
    assert site.notify.ntfy is not None
    channels = [
        NtfyChannel(site.notify.ntfy.url, site.notify.ntfy.token_env, timeout_s=2.0),
        WebPushChannel(keys, PUBLIC, timeout_s=2.0),
    ]
    n = Notifier(db, site, channels, clock, secret_key=SECRET, poll_s=3600).start()
    yield n
    n.stop()


def test_a_subscription_is_a_phone_of_its_wards_and_dropped_when_gone(
    engine: RulesEngine,
    notifier_with_push: Notifier,
    make_event: MakeEvent,
    clock: FakeClock,
    push: PushServiceStandIn,
    ntfy: NtfyStandIn,
) -> None:
    notifier = notifier_with_push
    subs = PushSubscriptions(notifier.store)
    ward_a = subs.add("sofie", ["a"], push.subscribe(), clock.now())
    ward_b_sub = push.subscribe()
    ward_b = subs.add("mads", ["b"], ward_b_sub, clock.now())
    changes = engine.handle(make_event("fall-a1", "fall", NIGHT, confidence=0.9))
    alarm_id = changes[0].alarm_id
    notifier.tick()
    assert notifier.wait_idle()
    (first,) = push.received()
    assert first.payload["alarm_id"] == alarm_id
    assert first.payload["title"] == "Fall – room a-1"
    assert "Test Person One" not in str(first.payload)  # never a resident's name
    claim = notifier.links.verify(alarm_id, first.payload["ack_url"].rsplit("/", 1)[1])
    assert claim.phone_id == ward_a.id  # the link is bound to this browser
    assert {d.phone_id for d in notifier.outbox.for_alarm(alarm_id)} >= {ward_a.id}
    assert ward_b.id not in {d.phone_id for d in notifier.outbox.for_alarm(alarm_id)}

    push.gone.add(ward_b_sub["endpoint"].rsplit("/", 1)[1])  # mads's browser unsubscribed
    clock.advance(120)  # high_minutes: escalated to every phone, the ward b browser too
    engine.tick()
    notifier.tick()
    assert notifier.wait_idle()
    notifier.tick()
    assert notifier.wait_idle()
    assert subs.get(ward_b.id) is None  # dropped on 410
    assert subs.get(ward_a.id) is not None
    assert f"notify_failing/webpush:{ward_b.id}" in open_technical(engine)
    steps = [p.payload["step"] for p in push.received(count=3) if p.payload["alarm_id"] == alarm_id]
    assert "escalated" in steps
    assert ntfy.messages()  # the site file's phones still hear it beside the browsers
