"""`carehub import` of visit logs (docs/cli.md) as a user runs it: a CSV of round sheets and
`visit` records in JSON Lines, real processes, a real SQLite file. Bad lines are named by
number and skipped, the rest imported; a second import changes nothing."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from app.importer import ImportReport
from app.visits_import import import_visit_csv, parse_time, visit_from_fields
from carehub.site import SiteIndex
from gateway.store.visits import VisitStore
from tests.test_import_report import carehub

SHEET = """\
room,resident_id,entered_at,left_at,staff,reason
a-1,,2026-11-22 23:00,2026-11-22 23:04,Sofie,round
,r-003,2026-11-23 02:00,2026-11-23 02:06,,round
b-1,,2026-11-23T01:10:00Z,2026-11-23T01:22:00Z,N-17,call
a-9,,2026-11-22 23:00,2026-11-22 23:04,,round
a-1,,2026-11-22 23:10,2026-11-22 23:05,,round
a-1,r-001,2026-11-22 23:10,2026-11-22 23:15,,round
a-1,,2026-11-22 23:10,2026-11-22 23:15,,nap
a-1,,2026-03-29 02:30,2026-03-29 02:40,,round
a-2,,2026-11-22 23:10,2026-11-22 23:15
a-2,,2026-11-22 23:10:30,2026-11-22 23:15,,
a-2,,2026-10-25 02:50,2026-10-25 02:10,,round
"""


def visits_in(db: Path) -> list[tuple[str, str, int, int, str, str | None]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT room, resident_id, entered_at_us, left_at_us, staff, reason FROM visits"
            " ORDER BY entered_at_us, room"
        ).fetchall()


def us(when: datetime) -> int:
    return int(when.timestamp() * 1_000_000)


def test_csv_visit_log_names_bad_lines_and_is_idempotent(tmp_path: Path) -> None:
    db, src = tmp_path / "hub.db", tmp_path / "runder.csv"
    src.write_text(SHEET)
    r = carehub(db, "import", str(src), "--site", str(Path("sites/test.yaml").resolve()))
    assert r.returncode == 1, r.stderr  # some lines not imported (docs/cli.md)
    err = r.stderr
    rejected = [json.loads(x) for x in Path(f"{src}.rejected.jsonl").read_text().splitlines()]
    assert [x["line"] for x in rejected] == [5, 6, 7, 8, 9, 10, 11]
    assert f"{src}:5: not imported: room 'a-9' is not a room of the site" in err
    assert f"{src}:6: not imported: left_at is before entered_at" in err
    assert f"{src}:7: not imported: give exactly one of room or resident_id" in err
    assert (
        f"{src}:8: not imported: reason 'nap' is not one of round, call, alarm, care, other" in err
    )
    assert f"{src}:9: not imported: '2026-03-29 02:30' does not exist" in err
    assert f"{src}:10: not imported: 4 cells, the header has 6" in err
    assert (
        f"{src}:11: not imported: entered_at '2026-11-22 23:10:30' has seconds but no offset" in err
    )
    for good in (2, 3, 4, 12):
        assert f"{src}:{good}:" not in err
    assert "visits 4 added, 0 already there" in r.stdout
    rows = visits_in(db)
    # local times are Copenhagen's: 23:00 CET is 22:00 UTC
    assert (
        "a-1",
        "",
        us(datetime(2026, 11, 22, 22, 0, tzinfo=UTC)),
        us(datetime(2026, 11, 22, 22, 4, tzinfo=UTC)),
        "Sofie",
        "round",
    ) in rows
    # 02:50 in the repeated hour (CEST, 00:50 UTC) to 02:10 (read as the CET one, 01:10 UTC)
    assert (
        "a-2",
        "",
        us(datetime(2026, 10, 25, 0, 50, tzinfo=UTC)),
        us(datetime(2026, 10, 25, 1, 10, tzinfo=UTC)),
        "",
        "round",
    ) in rows
    again = carehub(db, "import", str(src), "--site", str(Path("sites/test.yaml").resolve()))
    assert again.returncode == 1, again.stderr  # the same bad lines again
    assert "visits 0 added, 4 already there" in again.stdout
    assert visits_in(db) == rows


def test_jsonl_visit_records_with_uplinks_and_bad_lines(tmp_path: Path) -> None:
    db, src = tmp_path / "hub.db", tmp_path / "history.jsonl"
    lines = [
        {
            "record": "visit",
            "room": "b-1",
            "entered_at": "2026-11-22T23:00:00+01:00",
            "left_at": "2026-11-22T23:09:00+01:00",
            "staff": "N-17",
            "reason": "alarm",
        },
        {
            "record": "visit",
            "resident_id": "r-002",
            "entered_at": "2026-11-23 03:00",
            "left_at": "2026-11-23 03:05",
        },
        {
            "record": "visit",
            "resident_id": "r-999",
            "entered_at": "2026-11-23 03:00",
            "left_at": "2026-11-23 03:05",
        },
        {
            "record": "visit",
            "room": "a-1",
            "entered_at": "2026-11-23 03:00",
            "left_at": "2026-11-23 19:05",
        },
        {"record": "visit", "room": "a-1", "entered_at": 17, "left_at": "2026-11-23 03:05"},
    ]
    src.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    r = carehub(db, "import", str(src))
    assert r.returncode == 1, r.stderr
    assert ":3: not imported: resident_id 'r-999' is not a resident of the site" in r.stderr
    assert ":4: not imported: a visit of more than 12 h" in r.stderr
    assert ":5: not imported: entered_at must be a time" in r.stderr
    assert "visits 2 added" in r.stdout
    assert len(visits_in(db)) == 2
    again = carehub(db, "import", str(src))
    assert "visits 0 added, 2 already there" in again.stdout
    assert len(visits_in(db)) == 2


def test_a_file_with_nothing_importable_exits_2(tmp_path: Path) -> None:
    db, src = tmp_path / "hub.db", tmp_path / "bad.csv"
    src.write_text("rum,ind,ud\na-1,23:00,23:10\n")
    r = carehub(db, "import", str(src))
    assert r.returncode == 2
    assert ":1: not imported: header must name entered_at, left_at, room or resident_id" in r.stderr
    assert "unknown column(s) rum, ind, ud" in r.stderr


def test_local_times_follow_the_site_zone(test_index: SiteIndex) -> None:
    cph = test_index.tz
    assert parse_time("t", "2026-07-01 23:00", cph) == datetime(2026, 7, 1, 21, 0, tzinfo=UTC)
    assert parse_time("t", "2026-01-01 23:00", cph) == datetime(2026, 1, 1, 22, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="does not exist"):
        parse_time("t", "2026-03-29 02:15", cph)
    v = visit_from_fields(
        {"room": "a-1", "entered_at": "2026-11-22 23:00", "left_at": "2026-11-22 23:00"},
        test_index,
    )
    assert v.entered_at == v.left_at  # a look through the door is a visit of no length


def test_csv_reader_keeps_file_line_numbers(test_index: SiteIndex, tmp_path: Path) -> None:
    store = VisitStore(tmp_path / "v.db", "testhjem")
    text = "\ufeffroom,entered_at,left_at\n\na-1,2026-11-22 23:00,2026-11-22 23:05\na-1,x,y\n"
    report = import_visit_csv(
        (line.encode() for line in text.splitlines(keepends=True)),
        test_index,
        store,
        ImportReport(),
    )
    assert [(b.line, b.reason, b.text) for b in report.bad_lines] == [
        (4, "entered_at 'x' is neither RFC 3339 nor local YYYY-MM-DD HH:MM", "a-1,x,y")
    ]
    assert (report.visits_added, report.lines) == (1, 4)
    got = store.between(
        datetime(2026, 11, 22, 21, 0, tzinfo=UTC), datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    )
    store.close()
    assert [(v.room, v.entered_at.date()) for v in got] == [("a-1", date(2026, 11, 22))]


def test_report_before_after_in_the_terminal(tmp_path: Path) -> None:
    """Round sheets before, a visit log after: the report as JSON, a table and CSV, each read
    in the audit log; a period that is not FROM:TO is bad usage."""
    db = tmp_path / "hub.db"
    before, after = tmp_path / "before.csv", tmp_path / "after.csv"
    before.write_text(
        "resident_id,entered_at,left_at,reason\n"
        "r-001,2026-11-01 23:00,2026-11-01 23:08,round\n"  # 10 min
        "r-001,2026-11-02 03:00,2026-11-02 03:04,round\n"  # 6 min
        "r-002,2026-11-01 23:10,2026-11-01 23:14,round\n"  # 6 min
    )
    after.write_text(
        "room,entered_at,left_at,reason\n"
        "a-1,2026-11-22 23:00,2026-11-22 23:03,alarm\n"  # 5 min
        "a-2,2026-11-23 01:00,2026-11-23 01:04,alarm\n"  # 6 min
    )
    for src in (before, after):
        assert carehub(db, "import", str(src)).returncode == 0
    spans = ("--before", "2026-11-01:2026-11-01", "--after", "2026-11-22:2026-11-22")
    js = carehub(db, "report", "before-after", *spans, "--format", "json")
    assert js.returncode == 0, js.stderr
    report = json.loads(js.stdout)
    # before: r-001 16 min, r-002 6 -> 11 per resident-night; after: 5.5
    assert report["before"]["work_minutes_per_resident_night"] == pytest.approx(11)
    assert report["after"]["work_minutes_per_resident_night"] == pytest.approx(5.5)
    assert report["difference"]["work_minutes_per_resident_night"]["mean"] == pytest.approx(5.5)
    assert report["difference"]["hours_per_night"] == pytest.approx(5.5 * 2 / 60)
    table = carehub(db, "report", "before-after", *spans)
    assert table.returncode == 0, table.stderr
    assert "before − after" in table.stdout
    assert "5.5 min" in table.stdout
    csv_out = carehub(db, "report", "before-after", *spans, "--format", "csv")
    assert "difference,work_minutes_per_resident_night,5.500," in csv_out.stdout
    bad = carehub(db, "report", "before-after", "--before", "2026-11-01", "--after", "x:y")
    assert bad.returncode == 2
    assert "FROM:TO" in bad.stderr
    with sqlite3.connect(db) as conn:
        reads = conn.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'report_read'"
        ).fetchone()[0]
    assert reads == 3
