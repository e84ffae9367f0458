"""Retention: raw events older than `CAREHUB_RETENTION_DAYS` go; what reports need stays.

A periodic job of the gateway part (hourly by the injected clock, so an accelerated demo
prunes at its own pace). Each run first caches every closed night that is not cached yet
(`AggregateStore`: the freed-hours rows per resident and the utilisation figures, so reports
over long periods need not read every message again), then keeps every night that is about
to lose raw data as aggregates, then deletes older events, dead letters and dedupe keys from
the SQLite event store, and the rules engine's marks of suppressed triggers. Alarms stay:
they are the care record.

With InfluxDB the bucket's own retention deletes raw points (set it to the same number of
days); the job then only keeps the aggregates, a day ahead of the bucket.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from carehub.clock import Clock
from carehub.settings import Settings
from carehub.site import SiteIndex
from gateway.store import open_store
from gateway.store.sqlite import SqliteEventStore
from services.alarms.store import AlarmStore
from services.privacy.aggregates import CACHE, MAX_WINDOW, AggregateStore, site_digest
from services.reports.service import StoreReportSource, night_aggregates, night_window

_LOGGER = logging.getLogger(__name__)

RUN_EVERY = timedelta(hours=1)
"""Clock time between runs."""
POLL_S = 5.0
"""Real seconds between looks at the clock."""
CHUNK_NIGHTS = 31
"""Nights aggregated per read of the store, so a first run over a long history stays small."""
AHEAD_OF_BUCKET = timedelta(days=1)
"""Without a store we prune ourselves, keep nights this long before the bucket drops them."""
FALLBACK_LOOKBACK_NIGHTS = 7
"""Nights before the cutoff looked at when the store cannot say where its data begins."""
SETTLE = timedelta(hours=1)
"""A night is cached this long after the last event time it reads: most late messages (a
device's queue after a short outage) are in by then. Later ones make it stale, not wrong."""


@dataclass(frozen=True, slots=True)
class RetentionRun:
    """What one run did."""

    cutoff: datetime
    nights_kept: int
    events: int = 0
    dead_letters: int = 0
    dedupe_keys: int = 0
    suppressed: int = 0
    nights_cached: int = 0
    """Closed nights cached (first time, or again after they went stale)."""


class RetentionJob:
    """Keeps aggregates of old nights, then deletes their raw data; `run_once()` or start()."""

    def __init__(
        self,
        index: SiteIndex,
        events: Any,
        alarms: AlarmStore,
        aggregates: AggregateStore,
        clock: Clock,
        retention: timedelta,
        *,
        every: timedelta = RUN_EVERY,
        poll_s: float = POLL_S,
    ) -> None:
        """`events` is a gateway EventStore; raw data is deleted only from a SQLite one."""
        self.index = index
        self.site = index.site.site
        self.events = events
        self.alarms = alarms
        self.aggregates = aggregates
        self.clock = clock
        self.retention = retention
        self.every = every
        self.poll_s = poll_s
        self.last_run: RetentionRun | None = None
        self._source = StoreReportSource(self.site, events, alarms.raised_between)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._owned: list[Any] = []

    @classmethod
    def from_settings(cls, settings: Settings, index: SiteIndex, clock: Clock) -> RetentionJob:
        """Over the hub's own stores (`CAREHUB_DB`, InfluxDB when configured), with its own
        connections, so a run never holds up the ingest path's."""
        events = open_store(settings)
        alarms = AlarmStore(settings.db)
        aggregates = AggregateStore(settings.db, index.site.site, site_digest(index))
        job = cls(index, events, alarms, aggregates, clock, timedelta(days=settings.retention_days))
        job._owned = [events, alarms, aggregates]
        return job

    # --- one run --------------------------------------------------------------------------

    @property
    def prunes_raw(self) -> bool:
        """Whether this job deletes raw events itself (SQLite) or a bucket does (InfluxDB)."""
        return isinstance(self.events, SqliteEventStore)

    def run_once(self) -> RetentionRun:
        """Keep the nights about to lose raw data, then delete what is past retention."""
        now = self.clock.now()
        cutoff = now - self.retention
        horizon = cutoff if self.prunes_raw else cutoff + AHEAD_OF_BUCKET
        cached = self._cache_nights(now) if self.aggregates.caches else 0
        kept = self._keep_nights(now, horizon)
        if not self.prunes_raw:
            run = RetentionRun(cutoff, kept, nights_cached=cached)
        else:
            gone = self.events.delete_before(self.site, cutoff)
            suppressed = self.alarms.prune_suppressed(cutoff)
            run = RetentionRun(
                cutoff,
                kept,
                gone.events,
                gone.dead_letters,
                gone.dedupe_keys,
                suppressed,
                nights_cached=cached,
            )
        if run.nights_kept or run.events or run.dead_letters or run.nights_cached:
            _LOGGER.info(
                "retention: %s nights cached, %s kept as aggregates; %s events and %s dead"
                " letters deleted",
                run.nights_cached,
                run.nights_kept,
                run.events,
                run.dead_letters,
            )
        self.last_run = run
        return run

    def _keep_nights(self, now: datetime, horizon: datetime) -> int:
        """Aggregate every finished night whose report window starts before `horizon` and
        that is not kept yet; answers how many were kept."""
        last = self._last_night_before(now, horizon)
        first = self._first_night(horizon)
        if first is None or last is None or last < first:
            return 0
        missing = set(_nights(first, last)) - self.aggregates.kept_nights(first, last)
        # a night cached and still exact only changes hands; the others are computed now
        missing -= self.aggregates.cached_nights(first, last)
        kept = 0
        for a, b in _runs(sorted(missing), CHUNK_NIGHTS):
            nights = night_aggregates(self.index, self._source, a, b)
            self.aggregates.put(nights, now)
            kept += len(nights)
        return kept + self.aggregates.retire(first, last)

    def _cache_nights(self, now: datetime) -> int:
        """Cache every closed night (its last event time plus SETTLE passed) that has raw
        events and no usable aggregate yet; answers how many."""
        first = self._first_night(now)
        if first is None:
            return 0
        last = now.astimezone(self.index.tz).date()
        while night_window(self.index, last)[1] + SETTLE > now:
            last -= timedelta(days=1)
        if last < first:
            return 0
        wanted = set(_nights(first, last))
        missing = wanted - self.aggregates.kept_nights(first, last)
        missing -= self.aggregates.cached_nights(first, last)
        cached = 0
        for a, b in _runs(sorted(missing), CHUNK_NIGHTS):
            mark = self.aggregates.events_mark()
            nights = night_aggregates(self.index, self._source, a, b)
            windows = {n: night_window(self.index, n) for n in nights}
            fits = {n: kept for n, kept in nights.items() if _span(windows[n]) <= MAX_WINDOW}
            self.aggregates.put(fits, now, kind=CACHE, windows=windows, since=mark)
            cached += len(fits)
            if self._stopping.is_set():
                break  # a long first run over a year of history yields to a stop
        return cached

    def _pre_window(self) -> timedelta:
        longest = max(
            (b.heartbeat_seconds for spans in self.index.bindings.values() for b in spans),
            default=60.0,
        )
        return timedelta(seconds=3 * longest)

    def _last_night_before(self, now: datetime, horizon: datetime) -> date | None:
        pre = self._pre_window()
        night = (horizon + pre).astimezone(self.index.tz).date()
        for _ in range(3):  # the right night is at most two labels back
            start, end = self.index.night_bounds(night)
            if start - pre < horizon and end <= now:
                return night
            night -= timedelta(days=1)
        return None

    def _first_night(self, horizon: datetime) -> date | None:
        oldest_of = getattr(self.events, "oldest_event_time", None)
        if oldest_of is None:
            local = horizon.astimezone(self.index.tz).date()
            return local - timedelta(days=FALLBACK_LOOKBACK_NIGHTS)
        oldest: datetime | None = oldest_of(self.site)
        if oldest is None:
            return None
        return oldest.astimezone(self.index.tz).date() - timedelta(days=1)

    # --- the periodic thread --------------------------------------------------------------

    def start(self) -> RetentionJob:
        """Run now and then every `every` of clock time, in a background thread."""
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="retention", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        due = self.clock.now()
        while not self._stopping.is_set():
            if self.clock.now() >= due:
                try:
                    self.run_once()
                except Exception:
                    _LOGGER.exception("retention run failed; trying again next time")
                due = self.clock.now() + self.every
            self._stopping.wait(self.poll_s)

    def stop(self) -> None:
        """Stop the thread and close the stores `from_settings` opened."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        for store in reversed(self._owned):
            store.close()
        self._owned = []


def _nights(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def _runs(nights: list[date], longest: int) -> list[tuple[date, date]]:
    """Consecutive nights as (first, last) spans of at most `longest` nights."""
    spans: list[tuple[date, date]] = []
    for night in nights:
        if spans and night - spans[-1][1] == timedelta(days=1):
            a, _b = spans[-1]
            if (night - a).days < longest:
                spans[-1] = (a, night)
                continue
        spans.append((night, night))
    return spans


def _span(window: tuple[datetime, datetime]) -> timedelta:
    return window[1] - window[0]
