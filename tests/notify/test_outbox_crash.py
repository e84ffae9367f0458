"""The outbox under kill -9: a process running the ladder is killed while sends are in flight,
started again, and runs on. No step is lost (every alarm change that calls for sends has its
rows, every row is sent), a step is repeated at most once per crash, and the repeats are
counted (docs/notifications.md, "The outbox")."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from services.alarms.store import AlarmStore
from services.notify.outbox import Outbox
from tests.notify.conftest import TOKEN
from tests.support.ntfy_server import NtfyStandIn

ROOT = Path(__file__).resolve().parents[2]


def child(db: Path, url: str) -> subprocess.Popen[str]:
    env = {**os.environ, "CAREHUB_NTFY_TOKEN": TOKEN}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.notify.crash_child", str(db), url],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def test_kill_9_mid_ladder_loses_no_step_and_counts_repeats(tmp_path: Path) -> None:
    ntfy = NtfyStandIn(token=TOKEN).start()
    ntfy.delay_s = 0.3  # each publish is in flight for a while: the kill lands in one
    db = tmp_path / "carehub.db"
    try:
        first = child(db, ntfy.url)
        assert ntfy.wait_for(3, timeout=30), "the first process sent nothing"
        time.sleep(0.15)  # mid-send of the fourth
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        if first.stdout is not None:
            first.stdout.close()
        second = child(db, ntfy.url)
        out, _ = second.communicate(timeout=120)
        assert second.returncode == 0
    finally:
        ntfy.stop()
    store = AlarmStore(db)
    outbox = Outbox(store)
    rows = [r for a in store.list_alarms(active_only=False) for r in outbox.for_alarm(a.alarm_id)]
    fall = next(a for a in store.list_alarms(active_only=False) if a.rule == "fall")
    changes = [c.reason for c in store.changes_after(0) if c.alarm_id == fall.alarm_id]
    fall_rows = [r for r in rows if r.alarm_id == fall.alarm_id]
    steps = [r.step.value for r in fall_rows]
    # no step lost: every change that calls for sends has its rows, and the fallback came
    assert changes.count("raised") == 1
    assert steps.count("first") == 2
    assert steps.count("escalated") == 3 * changes.count("escalated") == 3
    reminders = changes.count("reminder")
    assert reminders >= 1  # fewer when the restart took long: one reminder after downtime
    assert steps.count("reminder") >= 2 + 3 * (reminders - 1)
    assert steps.count("fallback") == 1
    assert {r.status for r in rows} == {"sent"}
    # at most one repeat per crash (one crash here), each counted, and nothing sent more often
    assert max(r.attempts for r in rows) <= 2
    repeats = outbox.repeats()
    assert repeats <= 1  # one worker per channel: one send in flight when it died
    assert f"repeats_at_start={repeats}" in out
    published = ntfy.messages()
    assert len(rows) <= len(published) <= len(rows) + repeats
    store.close()
