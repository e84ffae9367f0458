"""docs/storage.md and docs/devices.md against the code, so they cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

from gateway.codecs import Reason, registry
from gateway.store import influx_schema

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_storage_doc_names_every_influx_measurement_tag_and_field() -> None:
    text = (DOCS / "storage.md").read_text()
    documented = set(re.findall(r"`([a-z_]+)`", text))
    names: set[str] = set()
    for key, value in vars(influx_schema).items():
        if not key.isupper():
            continue
        if isinstance(value, str):
            names.add(value)
        elif isinstance(value, tuple):
            names.update(v for v in value if isinstance(v, str))
    assert names - documented == set()


def test_devices_doc_lists_every_reason_and_codec() -> None:
    text = (DOCS / "devices.md").read_text()
    assert {r.value for r in Reason} <= set(re.findall(r"`([a-z_]+)`", text))
    assert set(registry()) <= set(re.findall(r"`([a-z0-9-]+)`", text))
