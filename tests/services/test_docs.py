"""docs/alarms.md against the code, so it cannot drift."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

from carehub.alarmkinds import RULE_KIND
from carehub.site import RULE_NAMES
from services.alarms.model import Alarm, Outcome
from services.alarms.store import SCHEMA, ChangeReason
from tests.services.test_alarm_model import SPEC_KEYS

DOC = (Path(__file__).resolve().parents[2] / "docs" / "alarms.md").read_text()
NAMED = set(re.findall(r"`([a-z_]+)`", DOC))


def test_doc_names_every_rule_kind_outcome_and_reason() -> None:
    assert set(RULE_NAMES) <= NAMED
    assert set(RULE_KIND) == set(RULE_NAMES)
    assert set(RULE_KIND.values()) <= NAMED
    assert {o.value for o in Outcome} <= NAMED
    assert set(get_args(ChangeReason)) <= NAMED


def test_doc_names_every_table_and_extra_alarm_key() -> None:
    tables = set(re.findall(r"CREATE TABLE IF NOT EXISTS (\w+)", SCHEMA))
    assert tables <= NAMED
    assert set(Alarm.model_fields) - SPEC_KEYS <= NAMED
