"""Shared helpers of the simulator tests: a seeded night of a site, and a gateway to judge it."""

from __future__ import annotations

import collections
import json
from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from carehub.site import SiteIndex
from firmware_sim.world import LIVE, CareHome, Emission, Pacing
from gateway.pipeline import Ingestor
from gateway.store.sqlite import SqliteEventStore

NIGHT = date(2026, 11, 22)


def night_of(
    index: SiteIndex, seed: int = 1, nights: int = 1, pacing: Pacing = LIVE, lead_in_h: float = 1
) -> list[Emission]:
    """Seeded nights of a site, from an hour before the first night to the end of the last."""
    start = index.night_bounds(NIGHT)[0] - timedelta(hours=lead_in_h)
    until = index.night_bounds(NIGHT + timedelta(days=nights - 1))[1]
    return list(CareHome(index.site, start, seed=seed, pacing=pacing).emissions(until))


def body(e: Emission) -> dict[str, Any]:
    """The payload as a JSON object."""
    value = json.loads(e.payload)
    assert isinstance(value, dict)
    return value


def ingest_all(index: SiteIndex, db: Path, emissions: Iterable[Emission]) -> Ingestor:
    """Every device message (no runtime markers) through the gateway's own pipeline."""
    ingestor = Ingestor(index, SqliteEventStore(db))
    for e in emissions:
        if e.channel != "control":
            ingestor.ingest(e.topic, e.payload, e.at)
    ingestor.flush()
    return ingestor


def rejected(metrics: dict[str, float]) -> dict[str, float]:
    """Rejections by reason from the gateway's counters."""
    prefix = 'carehub_gateway_rejected_total{reason="'
    return {k[len(prefix) : -2]: v for k, v in metrics.items() if k.startswith(prefix)}


def by_device(emissions: Iterable[Emission]) -> dict[str, list[Emission]]:
    """Emissions per device, in order."""
    out: dict[str, list[Emission]] = collections.defaultdict(list)
    for e in emissions:
        out[e.device_id].append(e)
    return out
