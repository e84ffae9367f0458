"""The process the outbox crash test kills: the rules engine and the notifier over one SQLite
file, on a clock 60 times faster than the wall clock from a start both runs share, raising
one fall and running the ladder for 6 simulated minutes.

    python -m tests.notify.crash_child DB NTFY_URL

The wall-clock start is written beside DB by the first run and read by the next, so a
restarted process continues the same night.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from carehub.site import SiteIndex
from services.alarms.store import AlarmStore
from services.rules.engine import EngineConfig, RulesEngine
from tests.notify.conftest import make_notifier, notify_site
from tests.services.conftest import NIGHT, make_event_factory

SPEED = 30.0
RUN_FOR = timedelta(minutes=6)


class SharedClock:
    """Simulated time from NIGHT, `SPEED` times the wall clock since `t0` (survives restarts)."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0

    def now(self) -> datetime:
        return NIGHT + timedelta(seconds=(time.time() - self.t0) * SPEED)


def main() -> int:
    db, url = Path(sys.argv[1]), sys.argv[2]
    start = db.with_suffix(".t0")
    if not start.exists():
        start.write_text(repr(time.time()))
    clock = SharedClock(float(start.read_text()))
    site = notify_site(url)
    store = AlarmStore(db)
    engine = RulesEngine(SiteIndex(site), store, clock, EngineConfig(timer_grace=timedelta(0)))
    notifier = make_notifier(site, db, clock)  # type: ignore[arg-type]
    notifier.start()
    print(f"repeats_at_start={notifier.repeats_at_start}", flush=True)
    if not store.list_alarms(active_only=False):
        make = make_event_factory(engine.index)
        engine.handle(make("fall-a1", "fall", NIGHT, confidence=0.9, seq=1))
    while clock.now() < NIGHT + RUN_FOR:
        engine.tick()
        notifier.tick()
        time.sleep(0.02)
    notifier.tick()
    notifier.wait_idle(30)
    notifier.stop()
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
