"""Report timings over a history, and the backfill rate."""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from datetime import date
from pathlib import Path
from typing import Any

from bench.history import History, nights
from bench.sites import SiteFile
from carehub.site import SiteIndex
from gateway.store.sqlite import SqliteEventStore
from services.alarms.store import AlarmStore
from services.reports.service import StoreReportSource, freed_hours, utilisation

DAYS_PER_YEAR = 365


def time_reports(
    site: SiteFile, history: History, profile_to: Path | None = None
) -> dict[str, Any]:
    """Seconds for the freed-hours and the utilisation report over every night of the
    history, as the web app computes them (`services.reports.service`, store → numpy);
    `per_year` scales them to 365 nights when the history is shorter."""
    index = SiteIndex(site.site)
    first, last = nights(site, history)
    count = (last - first).days + 1
    events = SqliteEventStore(history.db)
    alarms = AlarmStore(history.db)
    source = StoreReportSource(site.site.site, events, alarms.raised_between)
    out: dict[str, Any] = {"nights": count, "events": history.events, "alarms": history.alarms}
    try:
        for name, report in (("freed_hours", freed_hours), ("utilisation", utilisation)):
            profiler = cProfile.Profile() if profile_to is not None else None
            began = time.perf_counter()
            if profiler is not None:
                profiler.enable()
            body = report(index, source, first, last)
            if profiler is not None:
                profiler.disable()
            out[name] = round(time.perf_counter() - began, 3)
            if profiler is not None and profile_to is not None:
                text = io.StringIO()
                pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(30)
                profile_to.with_name(f"{profile_to.name}-{name}.txt").write_text(text.getvalue())
            _check(name, body, first, last)
    finally:
        events.close()
        alarms.close()
    return out


def _check(name: str, body: dict[str, Any], first: date, last: date) -> None:
    """A report that covers nothing would time nothing: make sure it covered the nights."""
    if name == "freed_hours" and body.get("nights") != (last - first).days + 1:
        msg = f"freed-hours report covered {body.get('nights')} nights, not {first}..{last}"
        raise RuntimeError(msg)
