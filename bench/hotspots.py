"""Where the hub's time goes per message, without MQTT: `--profile` writes this.

Feeds the same native uplinks the load generator sends straight into the gateway's `Ingestor`
(with a real SQLite file) and the resulting canonical events, as JSON, through the rules
engine in batches as the rules service applies them, each under cProfile. Answers the rate
each stage reaches alone on one core and writes the top functions.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.messages import Stream, rfc3339
from bench.sites import SiteFile
from carehub.clock import FakeClock
from carehub.events import CanonicalEvent
from carehub.site import SiteIndex
from gateway.pipeline import Ingestor
from gateway.store.sqlite import SqliteEventStore
from services.alarms.store import AlarmStore
from services.rules.engine import RulesEngine

BATCH = 500


def _top(profiler: cProfile.Profile, path: Path, lines: int = 35) -> None:
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text)
    stats.sort_stats("tottime").print_stats(lines)
    stats.sort_stats("cumulative").print_stats(lines)
    path.write_text(text.getvalue(), encoding="utf-8")


def profile_pipeline(workdir: Path, site: SiteFile, messages: int, out: Path) -> dict[str, Any]:
    """Msgs/s of the gateway pipeline and of the rules engine alone, with cProfile files."""
    index = SiteIndex(site.site)
    db = workdir / "hotspots.db"
    ingestor = Ingestor(index, SqliteEventStore(db), "carehub")
    stream = Stream("carehub", site.site.site, [(d.id, d.kind.value) for d in site.site.devices])
    items = stream.take(messages, rfc3339())
    topics = [t.decode() for t, _ in items]
    now = datetime.now(UTC)
    payloads: list[str] = []
    profiler = cProfile.Profile()
    began = time.perf_counter()
    profiler.enable()
    for i, (topic, (_t, payload)) in enumerate(zip(topics, items, strict=True)):
        result = ingestor.ingest(topic, payload, now)
        payloads += [e.model_dump_json() for e in result.events]
        if i % BATCH == BATCH - 1:
            ingestor.flush()
    ingestor.flush()
    profiler.disable()
    gateway_s = time.perf_counter() - began
    _top(profiler, out / "gateway-pipeline.txt")
    ingestor.close()

    store = AlarmStore(db)
    engine = RulesEngine(index, store, FakeClock(now))
    with store.transaction():
        engine.start()
    profiler = cProfile.Profile()
    began = time.perf_counter()
    profiler.enable()
    for i in range(0, len(payloads), BATCH):
        with store.transaction():
            for text in payloads[i : i + BATCH]:
                event = CanonicalEvent.model_validate_json(text)
                with store.savepoint():
                    engine.apply(event)
    profiler.disable()
    rules_s = time.perf_counter() - began
    _top(profiler, out / "rules-engine.txt")
    store.close()
    return {
        "messages": messages,
        "gateway_pipeline_msgs_per_s": round(messages / gateway_s, 1),
        "rules_engine_events_per_s": round(len(payloads) / rules_s, 1),
    }
