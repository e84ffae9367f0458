"""The ladder on a real broker at fractions of a minute (docs/notifications.md, "The
ladder"): the real `Hub` (every part, one process) on the test Mosquitto, the ntfy stand-in as
the phones' server, a site whose reminders come every 3 s, escalation at 6 s and the fallback
at 9 s. A fall reaches the ward's phone within a second, is sent again, escalates to every
phone, falls back to the shift leader; the ward phone's ntfy button stops it everywhere and
the others hear who took it."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from app.broker import LocalBroker, MosquittoBroker, free_port
from app.hub import Hub, HubOptions
from carehub.mqtt import Protocol
from carehub.settings import Settings
from services.alarms.store import AlarmStore
from services.notify.outbox import Outbox
from tests.notify.conftest import PUBLIC, TOKEN, notify_site
from tests.support.mqttprobe import MqttProbe, unique_client_prefix
from tests.support.ntfy_server import NtfyStandIn
from tests.support.procs import Proc, carehub_env
from tests.web.test_board_live import fall

pytestmark = [pytest.mark.broker]

ROOT = Path(__file__).resolve().parents[2]

A, B, LEADER = "testhjem-a-5c1f", "testhjem-b-90de", "testhjem-leader-e7a2"


@pytest.fixture
def hub(
    tmp_path: Path, broker: LocalBroker, mqtt_protocol: Protocol, ntfy: NtfyStandIn
) -> Iterator[Hub]:
    site = notify_site(
        ntfy.url,
        high_minutes=0.1,
        reminder_high_minutes=0.05,
        fallback_minutes=0.15,
        fallback_phones=["leader"],
    )
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        db=tmp_path / "hub.db",
        mqtt_url=f"mqtt://{broker.host}:{broker.port}",
        secret_key="s" * 40,
    )
    options = HubOptions(
        protocol=mqtt_protocol,
        client_id_prefix=unique_client_prefix(),
        http_host="127.0.0.1",
        http_port=0,
    )
    with Hub(settings, site, options=options) as running:
        assert running.wait_ready()
        yield running


def quiet_port() -> int:
    """A free port below Linux's ephemeral range (32768+), so no outgoing connection of the
    hub (to the broker, to ntfy) takes it between this choice and the hub's listen."""
    for port in random.sample(range(20_000, 32_000), 200):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    return free_port()


def bodies(ntfy: NtfyStandIn, topic: str) -> list[str]:
    return [str(m["message"]) for m in ntfy.messages(topic)]


def wait_until(what: str, check: Callable[[], bool], timeout: float) -> float:
    """Seconds until `check()` is true; fails after `timeout`."""
    began = time.monotonic()
    while not check():
        assert time.monotonic() - began < timeout, f"{what}: not within {timeout} s"
        time.sleep(0.02)
    return time.monotonic() - began


def test_the_ladder_climbs_on_a_real_broker_and_stops_at_the_phones_button(
    hub: Hub, broker: LocalBroker, mqtt_protocol: Protocol, ntfy: NtfyStandIn
) -> None:
    probe = MqttProbe(broker.host, broker.port, protocol=mqtt_protocol)
    try:
        sent = time.monotonic()
        fall(probe, "fall-a1", 1)
        assert ntfy.wait_for(1, timeout=1.0, topic=A), "the ward's phone heard nothing in 1 s"
        first_after = time.monotonic() - sent
    finally:
        probe.close()
    assert first_after < 1.0
    assert ntfy.messages(A)[0]["priority"] == 5
    assert not ntfy.messages(B)  # ward b's phone is not told at first
    # a reminder to the phones told (every 3 s, the engine's timers 2 s late at most)
    wait_until("a reminder", lambda: any("Still not taken" in b for b in bodies(ntfy, A)), 10)
    # escalation at 6 s: every phone, ward b's too
    wait_until("escalation", lambda: any("Escalated" in b for b in bodies(ntfy, B)), 10)
    # the fallback at 9 s: the shift leader
    wait_until(
        "the fallback", lambda: any("Nobody has taken" in b for b in bodies(ntfy, LEADER)), 10
    )

    # Phone A presses its button, as the ntfy app does
    action = ntfy.messages(A)[0]["actions"][0]
    assert hub.url is not None
    pressed = httpx.request(
        action.get("method", "POST"),
        action["url"].replace(PUBLIC, hub.url),  # the site's public URL is this hub
        headers=action.get("headers", {}),
        content=action.get("body", ""),
    )
    assert pressed.status_code == 200, pressed.text
    assert pressed.json()["acknowledged_by"] == "Phone A"
    for topic in (B, LEADER):
        wait_until(f"taken to {topic}", lambda t=topic: "Taken by Phone A" in bodies(ntfy, t), 3)
    # it stops everywhere: past the next reminder, nothing more but the "taken" notices
    count = len(ntfy.messages())
    time.sleep(5.5)
    later = ntfy.messages()[count:]
    assert all(m["message"] == "Taken by Phone A" for m in later), later
    assert hub.notifier is not None
    assert hub.notifier.outbox.repeats() == 0
    (alarm,) = [a for a in hub.notifier.store.list_alarms(active_only=False) if a.rule == "fall"]
    rows = hub.notifier.outbox.for_alarm(alarm.alarm_id)
    steps = {r.step.value for r in rows}
    assert {"first", "reminder", "escalated", "fallback", "taken"} <= steps
    assert {r.status for r in rows} <= {"sent", "cancelled"}


def test_kill_9_of_the_real_hub_mid_ladder_loses_no_step_and_counts_repeats(
    tmp_path: Path, mosquitto: MosquittoBroker, ntfy: NtfyStandIn
) -> None:
    """`carehub run all` on its own Mosquitto, killed with SIGKILL while a send is in flight
    (the ntfy server answers slowly), then started again: every rung is still sent, a send
    is repeated at most once, and the repeat is counted in /metrics."""
    text = (ROOT / "sites" / "test.yaml").read_text(encoding="utf-8")
    old = 'notify:\n  public_url: "http://carehub.test"\n'
    assert old in text
    site_file = tmp_path / "site.yaml"
    site_file.write_text(
        text.replace(
            old,
            f'notify:\n  public_url: "{PUBLIC}"\n'
            f"  ntfy: {{url: {ntfy.url!r}, token_env: CAREHUB_NTFY_TOKEN}}\n"
            "escalation: {high_minutes: 0.1, reminder_high_minutes: 0.05,"
            " fallback_minutes: 0.15, fallback_phones: [leader]}\n",
        ),
        encoding="utf-8",
    )
    port = quiet_port()
    db = tmp_path / "hub.db"
    env = carehub_env(
        CAREHUB_SITE_FILE=str(site_file),
        CAREHUB_DB=str(db),
        CAREHUB_MQTT_URL=f"mqtt://{mosquitto.host}:{mosquitto.port}",
        CAREHUB_HTTP_HOST="127.0.0.1",
        CAREHUB_HTTP_PORT=str(port),
        CAREHUB_SECRET_KEY="k" * 40,
        CAREHUB_NTFY_TOKEN=TOKEN,
    )
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    ntfy.delay_s = 0.3  # each publish is in flight for a while: the kill lands in one
    hub = Proc(["run", "all"], env, tmp_path / "hub.log")
    try:
        wait_until("the hub healthy", healthy, 60)  # a loaded CI machine starts slowly
        probe = MqttProbe(mosquitto.host, mosquitto.port)
        try:
            fall(probe, "fall-a1", 1)
        finally:
            probe.close()
        assert ntfy.wait_for(3, timeout=15), hub.output()[-2000:]  # first ×2, a reminder
        time.sleep(0.15)  # mid-send of the next
        hub.kill9()
        hub.restart()
        wait_until("the hub healthy again", healthy, 60)
        fallback = "Nobody has taken"
        wait_until("the fallback", lambda: any(fallback in b for b in bodies(ntfy, LEADER)), 30)
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
    finally:
        hub.stop()
    store = AlarmStore(db)
    try:
        outbox = Outbox(store)
        (alarm,) = [a for a in store.list_alarms(active_only=False) if a.rule == "fall"]
        rows = outbox.for_alarm(alarm.alarm_id)
        changes = [c.reason for c in store.changes_after(0) if c.alarm_id == alarm.alarm_id]
        steps = [r.step.value for r in rows]
        assert steps.count("first") == 2  # Phone A and the leader (ward a)
        assert changes.count("escalated") == 1
        assert steps.count("escalated") == 3  # every phone
        assert steps.count("fallback") == 1
        assert steps.count("reminder") >= 2 * min(1, changes.count("reminder"))
        assert {r.status for r in rows if r.step.value != "reminder"} == {"sent"}
        assert max(r.attempts for r in rows) <= 2  # at most once again per crash
        repeats = outbox.repeats()
        assert repeats <= 1
        assert f"carehub_notify_repeats_total {repeats}" in metrics
        assert len(ntfy.messages()) <= len([r for r in rows if r.status == "sent"]) + repeats
    finally:
        store.close()
