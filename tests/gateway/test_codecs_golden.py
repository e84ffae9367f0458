"""Golden files per vendor: fixtures/<model>/<case>.json → the expected canonical event.

Each file holds the topic, received_at, the payload (JSON, or `payload_text` verbatim),
optional `before` payloads fed first (codec state, e.g. the radar's fall edge), and what the
pipeline must answer. Adding a vendor means adding a folder here.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from carehub.site import SiteIndex
from gateway.codecs import registry
from gateway.pipeline import Ingestor
from gateway.store.sqlite import SqliteEventStore

FIXTURES = Path(__file__).parent / "fixtures"
CASES = sorted(FIXTURES.glob("*/*.json"))


def _payload(case: dict[str, Any], key: str = "payload") -> bytes:
    if "payload_text" in case and key == "payload":
        return str(case["payload_text"]).encode()
    return json.dumps(case[key]).encode()


def test_every_codec_has_golden_files() -> None:
    assert {p.parent.name for p in CASES} == set(registry())


@pytest.mark.parametrize("path", CASES, ids=[f"{p.parent.name}/{p.stem}" for p in CASES])
def test_golden(path: Path, test_index: SiteIndex, tmp_path: Path) -> None:
    case = json.loads(path.read_text())
    received_at = datetime.fromisoformat(case["received_at"])
    ingestor = Ingestor(test_index, SqliteEventStore(tmp_path / "golden.db"))
    for i, before in enumerate(case.get("before", [])):
        earlier = received_at - timedelta(seconds=30 * (len(case["before"]) - i))
        assert ingestor.ingest(case["topic"], json.dumps(before).encode(), earlier).accepted
    result = ingestor.ingest(case["topic"], _payload(case), received_at)
    expect = case["expect"]
    assert result.outcome.value == expect["outcome"], result.detail
    if expect["outcome"] == "rejected":
        assert result.reason == expect["reason"], result.detail
    got = [
        {
            "type": e.type.value,
            "ts": e.ts.isoformat().replace("+00:00", "Z"),
            "data": e.data,
            "resident_id": e.resident_id,
            "room": e.room,
            "seq": e.seq,
            **({"device_id": e.device_id} if "device_id" in want else {}),
        }
        for e, want in zip(result.events, expect.get("events", []), strict=True)
    ]
    wanted = [
        {**w, "ts": datetime.fromisoformat(w["ts"]).isoformat().replace("+00:00", "Z")}
        for w in expect.get("events", [])
    ]
    assert got == wanted
    for event in result.events:
        assert event.site == "testhjem"
        assert event.received_at == received_at
    ingestor.close()
