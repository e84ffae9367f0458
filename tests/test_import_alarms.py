"""`carehub import` keeps every alarm the freed-hours method counts (docs/freed-hours.md,
"Imported history"; docs/cli.md): resolved, acknowledged and never resolved, never
acknowledged. Lines that cannot be imported are named, written to `FILE.rejected.jsonl` and
the rest imported, exit 1; a second import changes nothing. An alarm the earlier system never
resolved is stored `closed`: the freed-hours report counts its assumed minutes, and no board,
phone, round or rules engine of a hub started on the file treats it as open.

Real processes and a real SQLite file; the hub test runs on the session's Mosquitto.
"""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.broker import LocalBroker
from app.hub import Hub, HubOptions
from carehub.mqtt import Protocol
from carehub.settings import Settings
from carehub.site import Site
from services.alarms.store import AlarmStore
from services.web.app import create_app
from services.web.users import Role, UserStore
from tests.support.mqttprobe import MqttProbe, unique_client_prefix
from tests.support.server import ServerThread
from tests.test_import_report import NIGHT, carehub, ts, uplink

R001_DEVICES = ("fall-a1", "diaper-r001", "med-r001", "bed-r001")
"""Every device that serves r-001 (its room's fall sensor and its own three)."""
PASSWORD = "correct-horse-battery"


def alarm(alarm_id: str, rule: str, kind: str, priority: str, **fields: Any) -> dict[str, Any]:
    """An alarm record of r-001 on the night of 10 Nov; `fields` are minutes after 22:00
    local for the `*_at` keys, else taken as they are."""
    body: dict[str, Any] = {
        "record": "alarm",
        "alarm_id": alarm_id,
        "site": "testhjem",
        "rule": rule,
        "kind": kind,
        "priority": priority,
        "resident_id": "r-001",
        "room": "a-1",
    }
    for key, value in fields.items():
        body[key] = ts(NIGHT + timedelta(minutes=value)) if key.endswith("_at") else value
    return body


RESOLVED = alarm(
    "imp-resolved", "diaper_change", "diaper", "medium", state="resolved", raised_at=1,
    acknowledged_at=5, acknowledged_by="anna", resolved_at=17, resolved_by="anna",
    outcome="changed",
)  # fmt: skip
"""Acknowledged at 22:05, resolved at 22:17: 12 min + o (2) = 14 min."""
ACKED_NEVER_RESOLVED = alarm(
    "imp-acked", "fall", "fall", "high", state="acknowledged", raised_at=60,
    acknowledged_at=62, acknowledged_by="anna",
)  # fmt: skip
"""No resolution time: d_fall (15) + o (2) = 17 min."""
NEVER_ACKNOWLEDGED = alarm(
    "imp-escalated", "dose_missed", "medication", "medium", state="escalated", raised_at=240,
    escalated_at=250,
)  # fmt: skip
"""Nobody acknowledged it, nobody resolved it, no sensor cleared it: d_medication (3) + o (2)
= 5 min."""
SENSOR_RESOLVED = alarm(
    "imp-sensor", "diaper_change", "diaper", "medium", state="resolved", raised_at=360,
    resolved_at=390, resolved_by="sensor",
)  # fmt: skip
"""Never acknowledged, closed by a fresh diaper reading: costs nothing."""
ALARM_MINUTES = 14 + 17 + 5 + 0
FREED_R001_MIN = 1.0 * (2 * 4 + 1 * 10 + 1 * 3) - ALARM_MINUTES
"""κ = 1 (every device of r-001 beats all night); baseline C_b·m_c + D_b·m_d + M_b·m_m."""


def history() -> tuple[list[str], dict[int, str]]:
    """The file's lines, and the reason (a part of it) of each line that must be rejected,
    by line number."""
    records: list[dict[str, Any]] = []
    for device in R001_DEVICES:
        for i in range(9 * 60):  # 22:00 … 06:59, a message a minute: κ = 1
            at = NIGHT + timedelta(minutes=i)
            records.append(uplink(device, i + 1, at, type="heartbeat", battery=80, rssi=-60))
    lines = [json.dumps(r) for r in records]
    lines += [json.dumps(a) for a in (RESOLVED, ACKED_NEVER_RESOLVED, NEVER_ACKNOWLEDGED)]
    lines.append("")  # an empty line is no record and no error
    lines.append(json.dumps(SENSOR_RESOLVED))
    bad = {
        "{not json": "Expecting property name",
        json.dumps({"record": "telegram"}): "unknown record 'telegram'",
        json.dumps({**RESOLVED, "alarm_id": "x-site", "site": "andethjem"}): "of site 'andethjem'",
        json.dumps({**ACKED_NEVER_RESOLVED, "alarm_id": "x-time", "acknowledged_at": ts(NIGHT)}): (
            "acknowledged_at (2026-11-10T21:00:00.000000Z) is before raised_at"
        ),
        json.dumps({**RESOLVED, "alarm_id": "x-open", "state": "raised"}): "with a resolution",
        json.dumps({**RESOLVED, "alarm_id": "x-half", "resolved_by": None}): "needs resolved_at",
        json.dumps(uplink("fall-a1", 10_000, NIGHT, type="fall", confidence=7)): (
            "refused by the gateway: "
        ),
    }
    reasons: dict[int, str] = {}
    for i, line in enumerate(bad):
        lines.insert(3 + i * 300, line)  # spread through the file, between good lines
    for number, line in enumerate(lines, start=1):
        if line in bad:
            reasons[number] = bad[line]
    return lines, reasons


@pytest.fixture(scope="module")
def imported(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path, list[str], dict[int, str]]:
    """The history imported once into a fresh file: (db, source, lines, expected reasons)."""
    folder = tmp_path_factory.mktemp("import")
    lines, reasons = history()
    src = folder / "history.jsonl"
    src.write_text("\n".join(lines) + "\n")
    db = folder / "hub.db"
    first = carehub(db, "import", str(src))
    assert first.returncode == 1, first.stderr
    return db, src, lines, reasons


def snapshot(db: Path) -> dict[str, Any]:
    """Everything an import writes: alarms with their bodies, events, the change log."""
    with sqlite3.connect(db) as conn:
        return {
            "alarms": conn.execute(
                "SELECT alarm_id, state, subject, raised_us, updated_us, imported, body"
                " FROM alarms ORDER BY alarm_id"
            ).fetchall(),
            "events": conn.execute("SELECT count(*) FROM events").fetchone()[0],
            "changes": conn.execute("SELECT count(*) FROM alarm_changes").fetchone()[0],
            "timers": conn.execute("SELECT count(*) FROM rule_timers").fetchone()[0],
        }


def test_every_alarm_is_kept_and_lines_that_cannot_be_imported_are_written_out(
    imported: tuple[Path, Path, list[str], dict[int, str]],
) -> None:
    """Each alarm is stored whatever state it ended in (never resolved: `closed`, its times
    kept); each bad line is named on stderr and written with its number, reason and original
    text to FILE.rejected.jsonl; exit 1; a second import changes nothing and says the same."""
    db, src, lines, reasons = imported
    rejected = src.with_name("history.jsonl.rejected.jsonl")
    written = [json.loads(x) for x in rejected.read_text(encoding="utf-8").splitlines()]
    assert [w["line"] for w in written] == sorted(reasons)
    for w in written:
        assert w["original"] == lines[w["line"] - 1]
        assert reasons[w["line"]] in w["reason"], w
    assert rejected.stat().st_mode & 0o077 == 0  # residents' data: the hub user's alone

    store = AlarmStore(db)
    try:
        kept = {
            a: store.get(a) for a in ("imp-resolved", "imp-acked", "imp-escalated", "imp-sensor")
        }
    finally:
        store.close()
    states = {a: k.state.value for a, k in kept.items() if k is not None}
    assert states == {
        "imp-resolved": "resolved",
        "imp-acked": "closed",
        "imp-escalated": "closed",
        "imp-sensor": "resolved",
    }
    acked = kept["imp-acked"]
    assert acked is not None
    assert acked.acknowledged_by == "anna"
    assert acked.acknowledged_at == NIGHT + timedelta(minutes=62)
    assert acked.resolved_at is None
    assert acked.outcome is None
    before = snapshot(db)
    assert before["changes"] == 0  # history: nothing for a publisher or a phone to follow
    assert before["timers"] == 0  # nor for the rules engine to escalate

    again = carehub(db, "import", str(src))
    assert again.returncode == 1, again.stderr
    for number in reasons:
        assert f"{src}:{number}: not imported: " in again.stderr
    assert "alarms 0 added, 4 already there" in again.stdout
    assert f"{len(reasons)} lines not imported" in again.stdout
    assert snapshot(db) == before
    assert [json.loads(x) for x in rejected.read_text(encoding="utf-8").splitlines()] == written


def test_a_clean_import_exits_0_and_removes_an_old_rejected_file(tmp_path: Path) -> None:
    """Once every line imports, FILE.rejected.jsonl of an earlier run goes: the file always
    describes the last import."""
    src = tmp_path / "fixed.jsonl"
    src.write_text(json.dumps(RESOLVED) + "\n")
    old = tmp_path / "fixed.jsonl.rejected.jsonl"
    old.write_text('{"line": 1, "reason": "earlier", "original": "x"}\n')
    r = carehub(tmp_path / "hub.db", "import", str(src))
    assert r.returncode == 0, r.stderr
    assert "alarms 1 added" in r.stdout
    assert not old.exists()


def test_a_file_of_which_nothing_can_be_imported_exits_2(tmp_path: Path) -> None:
    """Bad input that prevents any import is exit 2 (bad usage or input), still with the
    rejected file."""
    src = tmp_path / "wrong.jsonl"
    src.write_text("{not json\n" + json.dumps({"record": "telegram"}) + "\n")
    r = carehub(tmp_path / "hub.db", "import", str(src))
    assert r.returncode == 2, r.stderr
    assert "nothing in the file could be imported" in r.stderr
    assert len((tmp_path / "wrong.jsonl.rejected.jsonl").read_text().splitlines()) == 2


def test_freed_hours_count_the_assumed_minutes_of_alarms_never_resolved(
    imported: tuple[Path, Path, list[str], dict[int, str]],
) -> None:
    """r-001: κ = 1, baseline 21 min; alarms 14 (measured) + 17 (d_fall + o, acknowledged,
    never resolved) + 5 (d_medication + o, never acknowledged) + 0 (the sensor's) = 36 min:
    freed −15 min. The others have no message and no alarm: 0. Outcomes name `unresolved`."""
    db, _src, _lines, _reasons = imported
    r = carehub(db, "report", "freed-hours", "--from", "2026-11-10", "--to", "2026-11-10",
                "--format", "json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    r001 = report["by_resident"]["r-001"]
    assert r001["coverage_mean"] == pytest.approx(1.0)
    assert r001["alarm_minutes"] == pytest.approx(ALARM_MINUTES)
    assert r001["freed_hours_total"] == pytest.approx(FREED_R001_MIN / 60)
    assert report["freed_hours_total"] == pytest.approx(FREED_R001_MIN / 60)
    assert report["alarms"]["total"] == 4
    assert report["alarms"]["by_rule_outcome"] == {
        "diaper_change": {"changed": 1, "sensor": 1},
        "fall": {"unresolved": 1},
        "dose_missed": {"unresolved": 1},
    }
    # raised → acknowledged: 4 min and 2 min; acknowledged → resolved only where both exist
    assert report["acknowledge_minutes"] == {"median": 3.0, "p90": pytest.approx(3.8), "n": 2}
    assert report["response_minutes"]["n"] == 1


def _fall_now(broker: LocalBroker, protocol: Protocol) -> None:
    probe = MqttProbe(broker.host, broker.port, protocol=protocol)
    try:
        payload = {"v": 1, "seq": 50_000, "ts": datetime.now(UTC).isoformat(), "type": "fall",
                   "confidence": 0.9}  # fmt: skip
        probe.publish("carehub/testhjem/devices/fall-a1/up", payload)
    finally:
        probe.close()


@pytest.mark.broker
def test_a_hub_started_on_the_imported_file_treats_no_closed_alarm_as_open(
    imported: tuple[Path, Path, list[str], dict[int, str]],
    tmp_path: Path,
    broker: LocalBroker,
    mqtt_protocol: Protocol,
    test_site: Site,
) -> None:
    """A hub (gateway, rules with the notifier, the web app and its round) started on the
    imported file: the active alarm list is empty, the closed alarms are listed with all of
    them, cannot be acknowledged (409) and were told to no phone; the round counts no alarm
    for r-001. A new fall of r-001 then raises a new alarm, sent to phones and counted by the
    round: the closed ones took no subject and no place in the ladder."""
    db = tmp_path / "hub.db"
    src, dst = sqlite3.connect(imported[0]), sqlite3.connect(db)
    src.backup(dst)
    src.close()
    dst.close()
    users = UserStore(db)
    users.upsert("sofie", PASSWORD, Role.STAFF)
    users.close()
    settings = Settings(
        _env_file=None, db=db, mqtt_url=f"mqtt://{broker.host}:{broker.port}", secret_key="s" * 40
    )
    hub = Hub(
        settings,
        test_site,
        ("gateway", "rules"),
        # demo: the notifier runs with its recording channel, so the ladder is visible
        options=HubOptions(
            protocol=mqtt_protocol, demo=True, client_id_prefix=unique_client_prefix()
        ),
    )
    hub.start()
    server: ServerThread | None = None
    try:
        assert hub.wait_ready()
        assert hub.notifier is not None
        server = ServerThread(create_app(hub.api_context())).start()
        with httpx.Client(base_url=server.url, timeout=10) as web:
            token = web.post("/api/token", data={"username": "sofie", "password": PASSWORD})
            web.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            assert web.get("/api/alarms", params={"state": "active"}).json() == []
            every = {a["alarm_id"]: a["state"] for a in web.get("/api/alarms?state=all").json()}
            assert every["imp-acked"] == every["imp-escalated"] == "closed"
            assert web.post("/api/alarms/imp-escalated/ack").status_code == 409
            assert (
                web.post("/api/alarms/imp-acked/resolve", json={"outcome": "assisted"}).status_code
                == 409
            )

            def r001() -> dict[str, Any]:
                rows = web.get("/api/round", params={"ward": "a"}).json()["residents"]
                return next(r for r in rows if r["resident_id"] == "r-001")

            assert r001()["state"]["active_alarms"] == 0

            _fall_now(broker, mqtt_protocol)
            deadline = time.monotonic() + 15
            live: list[dict[str, Any]] = []
            while not live and time.monotonic() < deadline:
                live = web.get("/api/alarms", params={"state": "active"}).json()
                time.sleep(0.05)
            assert [(a["rule"], a["resident_id"], a["state"]) for a in live] == [
                ("fall", "r-001", "raised")
            ]
            sent: list[dict[str, Any]] = []
            while not sent and time.monotonic() < deadline:
                sent = web.get(f"/api/alarms/{live[0]['alarm_id']}").json()["deliveries"]
                time.sleep(0.05)
            assert {d["phone"] for d in sent} >= {"phone-a"}
            for closed in ("imp-acked", "imp-escalated"):
                assert web.get(f"/api/alarms/{closed}").json()["deliveries"] == []
            while r001()["state"]["active_alarms"] != 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert r001()["state"]["active_alarms"] == 1
    finally:
        if server is not None:
            server.stop()
        hub.stop()


def test_the_terminal_reports_say_what_was_not_measured_and_how_the_alarms_ended(
    imported: tuple[Path, Path, list[str], dict[int, str]],
) -> None:
    """The table over 9–10 Nov names the 9th as unmeasured (nothing was imported for it);
    the utilisation JSON's alarm quality counts the two alarms nobody acknowledged: one the
    sensor closed, one never resolved; one fall, not assisted."""
    db, _src, _lines, _reasons = imported
    table = carehub(db, "report", "freed-hours", "--from", "2026-11-09", "--to", "2026-11-10")
    assert table.returncode == 0, table.stderr
    assert "  nights                 1  (4 resident-nights)" in table.stdout
    assert "  unmeasured nights      1  (no device sent anything" in table.stdout
    use = carehub(db, "report", "utilisation", "--from", "2026-11-09", "--to", "2026-11-10")
    assert use.returncode == 0, use.stderr
    report = json.loads(use.stdout)
    assert report["unmeasured_nights"] == ["2026-11-09"]
    quality = report["alarm_quality"]
    assert quality["never_acknowledged"] == {
        "total": 2,
        "resolved_by_person": 0,
        "resolved_by_sensor": 1,
        "unresolved": 1,
        "open": 0,
    }
    assert quality["falls"] == {"total": 1, "assisted": 0}
    assert quality["alarms_per_resident_night"] == pytest.approx(4 / 4)
    assert quality["phones"]["alarms_notified"] == 0  # history: no phone was told
