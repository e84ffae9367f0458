"""The cache of closed nights keeps whether a night was measured (docs/storage.md, "Nights
kept as aggregates"; docs/freed-hours.md, "Unmeasured nights"): a report over cached nights
leaves out the same unmeasured nights as one over the raw events, and a night cached before
nights were counted is read raw until the retention job caches it again.

Over the real SQLite history of the retention tests (three nights, 10–12 Aug 2026; nothing
before them).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta
from typing import Any

from services.reports.service import StoreReportSource, freed_hours, utilisation
from tests.privacy.test_report_cache import _run, cached, history_template
from tests.privacy.test_retention import N1, N2, N3, SITE, History

__all__ = ["cached", "history_template"]  # the fixtures this module shares

N0 = N1 - timedelta(days=1)
"""The night before the first message: closed, cached, and not measured."""
EARLY = N1 - timedelta(days=2)


def _reports(h: History, source: StoreReportSource) -> dict[str, dict[str, Any]]:
    return {
        "freed": freed_hours(h.index, source, EARLY, N3),
        "utilisation": utilisation(h.index, source, EARLY, N3),
        "default": freed_hours(h.index, source, EARLY, N3, from_first_measured=True),
    }


def _figures(h: History, night: str) -> dict[str, Any]:
    conn = sqlite3.connect(h.db)
    try:
        row = conn.execute(
            "SELECT figures FROM report_nights WHERE site = ? AND night = ?", (SITE, night)
        ).fetchone()
    finally:
        conn.close()
    figures: dict[str, Any] = json.loads(row[0])
    return figures


def test_cached_nights_keep_their_message_count_and_leave_out_the_same_nights(
    cached: History,
) -> None:
    """Before and after caching: nights 3 of 5, the two before the data unmeasured; a
    default period from 10 Aug. The cached night before the data says 0 messages."""
    raw = _reports(cached, StoreReportSource(SITE, cached.reader, cached.alarms.raised_between))
    assert raw["freed"]["nights"] == 3
    assert raw["freed"]["unmeasured_nights"] == [EARLY.isoformat(), N0.isoformat()]
    assert raw["utilisation"]["nights"] == 3
    assert raw["default"]["from"] == N1.isoformat()
    assert raw["default"]["unmeasured_nights"] == []
    _run(cached)
    assert cached.aggregates.cached_nights(N0, N3) == {N0, N1, N2, N3}
    assert _figures(cached, N0.isoformat())["messages"] == 0
    assert int(_figures(cached, N1.isoformat())["messages"]) > 0
    assert _reports(cached, cached.source()) == raw


def test_a_night_cached_before_messages_were_counted_is_read_raw_and_cached_again(
    cached: History,
) -> None:
    """Its uptime alone cannot tell an unmeasured night from a measured one exactly, so the
    row is not used until the job computes it again."""
    _run(cached)
    raw = _reports(cached, StoreReportSource(SITE, cached.reader, cached.alarms.raised_between))
    conn = sqlite3.connect(cached.db)
    conn.execute(
        "UPDATE report_nights SET figures = json_remove(figures, '$.messages')"
        " WHERE site = ? AND night IN (?, ?)",
        (SITE, N0.isoformat(), N3.isoformat()),
    )
    conn.commit()
    conn.close()
    assert cached.aggregates.cached_nights(N0, N3) == {N1, N2}
    assert _reports(cached, cached.source()) == raw
    assert _run(cached).nights_cached == 2
    assert _figures(cached, N0.isoformat())["messages"] == 0
    assert cached.aggregates.cached_nights(N0, N3) == {N0, N1, N2, N3}
    assert _reports(cached, cached.source()) == raw
