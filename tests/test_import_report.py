"""`carehub import` and `carehub report` as a user runs them: real processes, real SQLite.

History from another system goes through the gateway's own decoding and storage, lines that
cannot be imported are named and the rest imported (exit 1), a second import changes nothing,
and the freed-hours report over that history comes out as a table, JSON and CSV — each read
written to the audit log.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.alarms.store import AlarmStore

ROOT = Path(__file__).resolve().parent.parent
CAREHUB = [sys.executable, "-m", "app"]
NIGHT = datetime(2026, 11, 10, 21, 0, tzinfo=UTC)  # 22:00 Copenhagen: the night of 10 Nov


def carehub(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAREHUB_")}
    env |= {"CAREHUB_DB": str(db), "CAREHUB_SITE_FILE": str(ROOT / "sites" / "test.yaml")}
    return subprocess.run(
        [*CAREHUB, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def ts(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def uplink(device: str, seq: int, at: datetime, **fields: Any) -> dict[str, Any]:
    return {
        "record": "uplink",
        "topic": f"carehub/testhjem/devices/{device}/up",
        "received_at": ts(at + timedelta(milliseconds=200)),
        "payload": {"v": 1, "seq": seq, "ts": ts(at), **fields},
    }


def history() -> list[str]:
    """One night of r-001's four sensors (two fall silent at 02:30), a zigbee sensor, alarms;
    1,621 good uplinks, one with a wrong value, five bad lines."""
    lines: list[dict[str, Any]] = []
    for i in range(9 * 60):  # a heartbeat a minute through the night, written newest first
        at = NIGHT + timedelta(minutes=i)
        lines.append(uplink("fall-a1", i + 1, at, type="heartbeat", battery=80, rssi=-60))
        lines.append(uplink("bed-r001", i + 1, at, type="heartbeat", battery=85, rssi=-55))
    lines.reverse()
    lines.append(uplink("diaper-r001", 1, NIGHT, type="saturation", level=75))
    for i in range(270):  # r-001's diaper and dispenser speak through the first half only
        at = NIGHT + timedelta(minutes=i)
        if i:
            lines.append(uplink("diaper-r001", i + 1, at, type="heartbeat", battery=70, rssi=-70))
        lines.append(uplink("med-r001", i + 1, at, type="heartbeat", battery=95, rssi=-50))
    lines.append(
        {
            "record": "uplink",
            "topic": "zigbee2mqtt/bed-b1-window",
            "received_at": ts(NIGHT + timedelta(hours=2)),
            "payload": {"water_leak": False, "battery": 90, "linkquality": 60, "voltage": 3000},
        }
    )
    alarm = {
        "record": "alarm",
        "alarm_id": "imported-1",
        "site": "testhjem",
        "rule": "diaper_change",
        "kind": "diaper",
        "priority": "medium",
        "state": "resolved",
        "resident_id": "r-001",
        "room": "a-1",
        "device_id": "diaper-r001",
        "raised_at": ts(NIGHT + timedelta(minutes=1)),
        "acknowledged_at": ts(NIGHT + timedelta(minutes=5)),
        "acknowledged_by": "anna",
        "escalated_at": None,
        "resolved_at": ts(NIGHT + timedelta(minutes=17)),
        "resolved_by": "anna",
        "outcome": "changed",
        "trigger_event_id": None,
        "count": 1,
    }
    out = [json.dumps(x) for x in lines]
    out.insert(3, "{not json")  # line 4
    out.append(json.dumps({"record": "telegram", "x": 1}))
    out.append(json.dumps(alarm))
    out.append(json.dumps({**alarm, "alarm_id": "open-1", "state": "raised"}))
    out.append(json.dumps({**alarm, "alarm_id": "bad-1", "priority": "urgent"}))
    out.append(json.dumps(uplink("fall-a1", 10_000, NIGHT, type="fall", confidence=7)))
    return out


@pytest.fixture
def imported(tmp_path: Path) -> tuple[Path, subprocess.CompletedProcess[str]]:
    src = tmp_path / "history.jsonl"
    src.write_text("\n".join(history()) + "\n")
    db = tmp_path / "hub.db"
    return db, carehub(db, "import", str(src))


def event_count(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])


def test_import_stores_through_the_gateway_names_bad_lines_and_is_idempotent(
    imported: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    db, r = imported
    assert r.returncode == 1, r.stderr  # some lines were not imported
    assert ":4: not imported" in r.stderr  # the broken JSON line, by number
    assert "unknown record 'telegram'" in r.stderr
    assert "state raised with a resolution" in r.stderr
    assert "priority" in r.stderr
    assert "refused by the gateway" in r.stderr
    assert "1621 stored" in r.stdout
    assert "1 rejected" in r.stdout
    assert "alarms 1 added" in r.stdout
    assert event_count(db) == 1621
    again = carehub(db, "import", str(tmp_path / "history.jsonl"))
    assert again.returncode == 1, again.stderr
    assert "0 stored" in again.stdout
    assert "1621 already there" in again.stdout
    assert "alarms 0 added, 1 already there" in again.stdout
    assert event_count(db) == 1621


def test_import_of_a_missing_file_or_site_exits_2(tmp_path: Path) -> None:
    r = carehub(tmp_path / "hub.db", "import", str(tmp_path / "nope.jsonl"))
    assert r.returncode == 2
    assert "no such file" in r.stderr


def test_freed_hours_report_in_every_format_over_imported_history(
    imported: tuple[Path, subprocess.CompletedProcess[str]],
) -> None:
    db, r = imported
    assert r.returncode == 1, r.stderr
    period = ("--from", "2026-11-10", "--to", "2026-11-10")
    js = carehub(db, "report", "freed-hours", *period, "--format", "json")
    assert js.returncode == 0, js.stderr
    report = json.loads(js.stdout)
    assert report["nights"] == 1
    # all of r-001's devices online until 3 heartbeats after minute 269 of a 540-minute night
    r001 = report["by_resident"]["r-001"]
    assert r001["coverage_mean"] == pytest.approx(272 / 540, abs=0.005)
    # the imported alarm counts its measured minutes (12) plus the walking overhead (2)
    assert r001["alarm_minutes"] == pytest.approx(14)
    assert report["assumptions"]["parameters"]["check_minutes"]["value"] == 4
    table = carehub(db, "report", "freed-hours", *period)
    assert table.returncode == 0, table.stderr
    assert "Freed night-shift hours" in table.stdout
    assert "Assumptions" in table.stdout
    assert "95 % CI" in table.stdout
    rows = list(
        csv.reader(
            io.StringIO(carehub(db, "report", "freed-hours", *period, "--format", "csv").stdout)
        )
    )
    assert rows[0][0] == "section"
    assert rows[[r[0] for r in rows].index("night")][:2] == ["night", "2026-11-10"]
    store = AlarmStore(db)
    try:
        reads = [e for e in store.audit_log() if e.action == "report_read"]
    finally:
        store.close()
    assert len(reads) == 3
    assert all(e.actor.startswith("cli:") for e in reads)


def test_report_refuses_bad_periods_and_unknown_wards(
    imported: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    db, _ = imported
    r = carehub(db, "report", "freed-hours", "--from", "2026-11-12", "--to", "2026-11-10")
    assert r.returncode == 2
    assert "before" in r.stderr
    r = carehub(
        db, "report", "freed-hours", "--from", "2026-11-10", "--to", "2026-11-10", "--ward", "z"
    )
    assert r.returncode == 2
    assert "unknown ward 'z'" in r.stderr
    r = carehub(tmp_path / "empty" / "none.db", "report", "freed-hours")
    assert r.returncode == 2
    assert "no history" in r.stderr
