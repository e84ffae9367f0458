"""deploy/sqlite_backup.py: an online backup of the WAL-mode file while it is being written,
run as docs/deployment.md runs it (the script piped into `python -`)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "sqlite_backup.py"


def _live_db(path: Path) -> sqlite3.Connection:
    """A WAL database with committed rows still only in the -wal file, held open."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")  # nothing reaches the main file on its own
    conn.execute("CREATE TABLE alarms (alarm_id TEXT PRIMARY KEY, body TEXT)")
    with conn:
        conn.executemany(
            "INSERT INTO alarms VALUES (?, ?)", [(f"a-{i}", "x" * 200) for i in range(500)]
        )
    return conn


def _rows(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM alarms").fetchone()[0])
    finally:
        conn.close()


def _run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, *args], input=stdin, capture_output=True, check=False, timeout=60
    )


def test_backup_to_stdout_while_the_hub_writes_holds_every_committed_row(tmp_path: Path) -> None:
    db = tmp_path / "carehub.db"
    writer = _live_db(db)
    assert Path(f"{db}-wal").stat().st_size > 0
    result = _run("-", "backup", str(db), "-", stdin=SCRIPT.read_bytes())
    assert result.returncode == 0, result.stderr.decode()
    copy = tmp_path / "copy.db"
    copy.write_bytes(result.stdout)
    assert _rows(copy) == 500
    assert not Path(f"{copy}-wal").exists()  # one self-contained file
    with writer:
        writer.execute("INSERT INTO alarms VALUES ('late', '')")  # the hub went on writing
    writer.close()


def test_restore_refuses_while_a_part_runs_then_replaces_the_file(tmp_path: Path) -> None:
    db = tmp_path / "carehub.db"
    writer = _live_db(db)
    backup = tmp_path / "b.db"
    assert _run(str(SCRIPT), "backup", str(db), str(backup)).returncode == 0
    assert backup.stat().st_mode & 0o777 == 0o600  # health data
    with writer:
        writer.execute("DELETE FROM alarms")
    refused = _run(str(SCRIPT), "restore", str(backup), str(db))
    assert refused.returncode == 2
    assert b"stop gateway, rules and api" in refused.stderr
    writer.close()  # the last connection checkpoints and removes the -wal: parts stopped
    assert _rows(db) == 0
    done = _run(str(SCRIPT), "restore", str(backup), str(db))
    assert done.returncode == 0, done.stderr.decode()
    assert _rows(db) == 500


def test_a_damaged_backup_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.db"
    bad.write_bytes(b"not a database" * 100)
    result = _run(str(SCRIPT), "restore", str(bad), str(tmp_path / "carehub.db"))
    assert result.returncode == 2
    assert not (tmp_path / "carehub.db").exists()
    assert _run(str(SCRIPT), "backup").returncode == 2  # usage
