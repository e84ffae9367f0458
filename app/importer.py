"""`carehub import`: history from an earlier system or another hub (docs/cli.md, JSON Lines).
Visit records and CSV visit logs are parsed in `app.visits_import`.

Uplinks go through the same `Ingestor` as live messages (decoding, validation, dedupe,
enrichment, storage), so imported nights are reported exactly like live ones and importing the
same file twice changes nothing. Finished alarms go into the alarm store as history; the rules
engine does not re-evaluate imported data.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app.visits_import import store_visits, visit_from_fields
from carehub.visits import Visit
from gateway.pipeline import Ingestor
from gateway.store.visits import VisitStore
from services.alarms.model import Alarm
from services.alarms.store import AlarmStore

MAX_LINE_BYTES = 64 * 1024


@dataclass
class ImportReport:
    """What an import did, for the terminal and the tests."""

    lines: int = 0
    uplinks: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    alarms_added: int = 0
    alarms_known: int = 0
    visits_added: int = 0
    visits_known: int = 0
    bad_lines: list[tuple[int, str]] = field(default_factory=list)
    rejected_reasons: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One paragraph a person can act on."""
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.rejected_reasons.items()))
        return (
            f"{self.lines} lines: {self.uplinks} uplinks ({self.accepted} stored, "
            f"{self.duplicates} already there, {self.rejected} rejected"
            f"{' — ' + reasons if reasons else ''}), alarms {self.alarms_added} added, "
            f"{self.alarms_known} already there, {len(self.bad_lines)} bad lines skipped"
            + self.visits_summary()
        )

    def visits_summary(self) -> str:
        """The visit log's part of the summary (docs/freed-hours.md), when there was one."""
        if not self.visits_added + self.visits_known:
            return ""
        return f"; visits {self.visits_added} added, {self.visits_known} already there"

    @property
    def imported_anything(self) -> bool:
        """Whether any line became an uplink, an alarm or a visit (new or already there)."""
        return bool(
            self.uplinks
            + self.alarms_added
            + self.alarms_known
            + self.visits_added
            + self.visits_known
        )


@dataclass(frozen=True, slots=True)
class _Uplink:
    line: int
    topic: str
    received_at: datetime
    payload: bytes


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        msg = "received_at must be an RFC 3339 string"
        raise ValueError(msg)
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if when.tzinfo is None:
        msg = "received_at needs a time zone (e.g. Z)"
        raise ValueError(msg)
    return when


def _uplink(number: int, record: dict[str, Any]) -> _Uplink:
    topic = record.get("topic")
    if not isinstance(topic, str) or not topic:
        msg = "uplink needs a string `topic`"
        raise ValueError(msg)
    if "payload" not in record:
        msg = "uplink needs a `payload`"
        raise ValueError(msg)
    payload = record["payload"]
    raw = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
    return _Uplink(number, topic, _parse_time(record.get("received_at")), raw)


def import_history(
    lines: Iterable[bytes],
    ingestor: Ingestor,
    alarms: AlarmStore,
    site: str,
    progress: Callable[[int], None] | None = None,
    visits: VisitStore | None = None,
) -> ImportReport:
    """Import JSON Lines records; a bad line is recorded with its number and skipped.

    Uplinks are ingested in `received_at` order (files from other systems are not always
    sorted), so sequence gaps and duplicates are judged as they happened.
    """
    report = ImportReport()
    uplinks: list[_Uplink] = []
    visit_log: list[Visit] = []
    for number, line in enumerate(lines, start=1):
        report.lines = number
        if not line.strip():
            continue
        try:
            if len(line) > MAX_LINE_BYTES:
                msg = f"line longer than {MAX_LINE_BYTES} bytes"
                raise ValueError(msg)
            record = json.loads(line)
            if not isinstance(record, dict):
                msg = "a line must be one JSON object"
                raise ValueError(msg)
            kind = record.get("record")
            if kind == "uplink":
                uplinks.append(_uplink(number, record))
            elif kind == "alarm":
                body = {k: v for k, v in record.items() if k != "record"}
                alarm = Alarm.model_validate(body)
                if alarm.site != site:
                    msg = f"alarm of site {alarm.site!r}, not {site!r}"
                    raise ValueError(msg)
                with alarms.transaction():
                    added = alarms.import_alarm(alarm)
                if added:
                    report.alarms_added += 1
                else:
                    report.alarms_known += 1
            elif kind == "visit":
                if visits is None:
                    msg = "visit records need the visit store (carehub import)"
                    raise ValueError(msg)
                visit_log.append(visit_from_fields(record, ingestor.index))
            else:
                msg = f"unknown record {kind!r}: expected 'uplink', 'alarm' or 'visit'"
                raise ValueError(msg)
        except ValidationError as err:
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            report.bad_lines.append((number, f"{where}: {first['msg']}"))
        except (ValueError, TypeError) as err:
            report.bad_lines.append((number, str(err)))
    uplinks.sort(key=lambda u: (u.received_at, u.line))
    for done, up in enumerate(uplinks, start=1):
        result = ingestor.ingest(up.topic, up.payload, up.received_at)
        report.uplinks += 1
        if result.rejected:
            report.rejected += 1
            reason = result.reason or "rejected"
            report.rejected_reasons[reason] = report.rejected_reasons.get(reason, 0) + 1
        elif result.duplicate:
            report.duplicates += 1
        else:
            report.accepted += 1
        if progress is not None and done % 1000 == 0:
            progress(1000)
    ingestor.flush()
    if visits is not None:
        store_visits(visits, visit_log, report)
    return report


def read_lines(path: Path) -> Iterable[bytes]:
    """The file's lines as bytes (so a broken encoding is one bad line, not a crash)."""
    with path.open("rb") as handle:
        yield from handle
