"""`carehub import`: history from an earlier system or another hub (docs/cli.md, JSON Lines).
Visit records and CSV visit logs are parsed in `app.visits_import`.

Uplinks go through the same `Ingestor` as live messages (decoding, validation, dedupe,
enrichment, storage), so imported nights are reported exactly like live ones and importing the
same file twice changes nothing. Alarms go into the alarm store as history whatever state they
ended in (one never resolved is kept `closed`); the rules engine does not re-evaluate imported
data. Every line that could not be imported is kept with its number and reason, so the
operator can see, fix and import it again (`FILE.rejected.jsonl`, docs/cli.md).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app.visits_import import store_visits, visit_from_fields
from carehub.private import FILE_MODE
from carehub.visits import Visit
from gateway.pipeline import Ingestor
from gateway.store.visits import VisitStore
from services.alarms.model import Alarm, AlarmState
from services.alarms.store import AlarmStore

MAX_LINE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class RejectedLine:
    """A line that was not imported: its number, why, and the line as it was."""

    line: int
    reason: str
    text: str
    """The original line without its line break (bytes that are not UTF-8 become U+FFFD)."""

    def to_json(self) -> dict[str, Any]:
        """One line of `FILE.rejected.jsonl` (docs/cli.md)."""
        return {"line": self.line, "reason": self.reason, "original": self.text}


def _text(line: bytes) -> str:
    return line.decode("utf-8", errors="replace").rstrip("\r\n")


@dataclass
class ImportReport:
    """What an import did, for the terminal and the tests."""

    lines: int = 0
    uplinks: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    """Uplinks the gateway refused (each also in `bad_lines`, and dead-lettered)."""
    alarms_added: int = 0
    alarms_known: int = 0
    alarms_closed: int = 0
    """Of `alarms_added`: never resolved by the earlier system, so stored `closed`."""
    visits_added: int = 0
    visits_known: int = 0
    bad_lines: list[RejectedLine] = field(default_factory=list)
    """Every line not imported, by line number."""
    rejected_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def imported(self) -> int:
        """Lines that are in the stores now (stored by this import or an earlier one)."""
        return (
            self.accepted
            + self.duplicates
            + self.alarms_added
            + self.alarms_known
            + self.visits_added
            + self.visits_known
        )

    def summary(self) -> str:
        """One paragraph a person can act on."""
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.rejected_reasons.items()))
        closed = f" ({self.alarms_closed} never resolved: closed)" if self.alarms_closed else ""
        return (
            f"{self.lines} lines: {self.uplinks} uplinks ({self.accepted} stored, "
            f"{self.duplicates} already there, {self.rejected} rejected"
            f"{' — ' + reasons if reasons else ''}), alarms {self.alarms_added} added{closed}, "
            f"{self.alarms_known} already there, {len(self.bad_lines)} lines not imported"
            + self.visits_summary()
        )

    def visits_summary(self) -> str:
        """The visit log's part of the summary (docs/freed-hours.md), when there was one."""
        if not self.visits_added + self.visits_known:
            return ""
        return f"; visits {self.visits_added} added, {self.visits_known} already there"

    def reject(self, line: int, reason: str, raw: bytes | str) -> None:
        """Keep a line that was not imported, as it was, with why."""
        text = raw if isinstance(raw, str) else _text(raw)
        self.bad_lines.append(RejectedLine(line, reason, text.rstrip("\r\n")))


@dataclass(frozen=True, slots=True)
class _Uplink:
    line: int
    received_at: datetime
    raw: bytes
    """The whole line: read again at ingest (cheaper to hold than its parts and the line)."""


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        msg = "received_at must be an RFC 3339 string"
        raise ValueError(msg)
    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if when.tzinfo is None:
        msg = "received_at needs a time zone (e.g. Z)"
        raise ValueError(msg)
    return when


def _uplink_parts(record: dict[str, Any]) -> tuple[str, datetime, bytes]:
    """(topic, received_at, payload bytes) of an uplink record; ValueError if it has none."""
    topic = record.get("topic")
    if not isinstance(topic, str) or not topic:
        msg = "uplink needs a string `topic`"
        raise ValueError(msg)
    if "payload" not in record:
        msg = "uplink needs a `payload`"
        raise ValueError(msg)
    payload = record["payload"]
    raw = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
    return topic, _parse_time(record.get("received_at")), raw


def import_history(
    lines: Iterable[bytes],
    ingestor: Ingestor,
    alarms: AlarmStore,
    site: str,
    progress: Callable[[int], None] | None = None,
    visits: VisitStore | None = None,
) -> ImportReport:
    """Import JSON Lines records; a line that cannot be imported is kept in `bad_lines` with
    its number and reason, and the rest imported.

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
                uplinks.append(_Uplink(number, _uplink_parts(record)[1], line))
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
                    report.alarms_closed += alarm.state is not AlarmState.RESOLVED
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
            report.bad_lines.append(RejectedLine(number, f"{where}: {first['msg']}", _text(line)))
        except (ValueError, TypeError) as err:
            report.bad_lines.append(RejectedLine(number, str(err), _text(line)))
    uplinks.sort(key=lambda u: (u.received_at, u.line))
    for done, up in enumerate(uplinks, start=1):
        topic, received_at, payload = _uplink_parts(json.loads(up.raw))
        result = ingestor.ingest(topic, payload, received_at)
        report.uplinks += 1
        if result.rejected:
            report.rejected += 1
            reason = result.reason or "rejected"
            report.rejected_reasons[reason] = report.rejected_reasons.get(reason, 0) + 1
            why = f"refused by the gateway: {reason}"
            if result.detail:
                why += f" ({result.detail})"
            report.bad_lines.append(RejectedLine(up.line, why, _text(up.raw)))
        elif result.duplicate:
            report.duplicates += 1
        else:
            report.accepted += 1
        if progress is not None and done % 1000 == 0:
            progress(1000)
    ingestor.flush()
    if visits is not None:
        store_visits(visits, visit_log, report)
    report.bad_lines.sort(key=lambda r: r.line)
    return report


def rejected_path(source: Path) -> Path:
    """Where the lines of `source` that were not imported go: `FILE.rejected.jsonl`."""
    return source.with_name(source.name + ".rejected.jsonl")


def write_rejected(source: Path, report: ImportReport) -> Path | None:
    """Write `FILE.rejected.jsonl` (one JSON object per line not imported), or remove one
    left by an earlier run when every line was imported, so the file always describes the
    last import. Private (0600): the lines hold residents' data. Answers the path written."""
    path = rejected_path(source)
    if not report.bad_lines:
        path.unlink(missing_ok=True)
        return None
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        for bad in report.bad_lines:
            out.write(json.dumps(bad.to_json(), ensure_ascii=False) + "\n")
    partial.replace(path)
    return path


def read_lines(path: Path) -> Iterable[bytes]:
    """The file's lines as bytes (so a broken encoding is one bad line, not a crash)."""
    with path.open("rb") as handle:
        yield from handle
