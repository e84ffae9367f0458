"""Report timings over a history, and the backfill rate."""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from bench.history import History, nights, replicate_cache
from bench.sites import SiteFile
from carehub.clock import FakeClock
from carehub.site import SiteIndex
from gateway.store.sqlite import SqliteEventStore
from services.alarms.store import AlarmStore
from services.privacy.aggregates import AggregateStore, site_digest
from services.privacy.retention import RetentionJob
from services.reports.service import StoreReportSource, freed_hours, utilisation

DAYS_PER_YEAR = 365


def time_reports(
    site: SiteFile, history: History, profile_to: Path | None = None, extend: int = 1
) -> dict[str, Any]:
    """Seconds for the freed-hours and the utilisation report over every night of the
    history, as the web app computes them (`services.reports.service`, store → numpy):
    `cold` from the raw events alone, `cache_s` for the retention job to cache every closed
    night (once; then one night a day), and then the reports again over the cached nights —
    what a manager's page load costs. With `extend` > 1 the cached nights are copied that
    many times back (`history.replicate_cache`; the history's alarms must reach that far)
    and the cached reports cover the last 365 of those nights; `warm_nights` says how many
    nights they covered. Scaling to a year is the caller's."""
    index = SiteIndex(site.site)
    first, last = nights(site, history)
    count = (last - first).days + 1
    events = SqliteEventStore(history.db)
    alarms = AlarmStore(history.db)
    aggregates = AggregateStore(history.db, site.site.site, site_digest(index))
    out: dict[str, Any] = {"nights": count, "events": history.events, "alarms": history.alarms}
    try:
        raw = StoreReportSource(site.site.site, events, alarms.raised_between)
        out["cold"] = _time_both(index, raw, first, last, None)
        began = time.perf_counter()
        job = RetentionJob(
            index, events, alarms, aggregates, FakeClock(history.end), timedelta(days=100 * 365)
        )
        cached = job.run_once().nights_cached
        out["cache_s"] = round(time.perf_counter() - began, 3)
        if cached < count:
            msg = f"the retention job cached {cached} of {count} nights"
            raise RuntimeError(msg)
        warm = StoreReportSource(
            site.site.site, events, alarms.raised_between, aggregates.stored_nights
        )
        warm_first = first
        if extend > 1:
            replicate_cache(history.db, site.site.site, first, last, extend)
            span = min(DAYS_PER_YEAR, extend * count)
            warm_first = last - timedelta(days=span - 1)
        out["warm_nights"] = (last - warm_first).days + 1
        out.update(_time_both(index, warm, warm_first, last, profile_to))
    finally:
        aggregates.close()
        events.close()
        alarms.close()
    return out


def _time_both(
    index: SiteIndex, source: StoreReportSource, first: date, last: date, profile_to: Path | None
) -> dict[str, float]:
    out: dict[str, float] = {}
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
    return out


def _check(name: str, body: dict[str, Any], first: date, last: date) -> None:
    """A report that covers nothing would time nothing: make sure it covered the nights."""
    if name == "freed_hours" and body.get("nights") != (last - first).days + 1:
        msg = f"freed-hours report covered {body.get('nights')} nights, not {first}..{last}"
        raise RuntimeError(msg)
