"""`carehub import` of visit logs (docs/cli.md): `visit` records in a JSON Lines file, or a CSV
file of round sheets or a nurse-call system's export.

A visit names a room of the site or one of its residents, and when staff entered and left:
RFC 3339 with an offset, or the site's local time as `YYYY-MM-DD HH:MM`. A bad line is
reported in the import's `bad_lines` with its number and why, and the rest is imported;
visits are known by their natural key (gateway/store/visits.py), so a second import of the
same file adds nothing.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar
from zoneinfo import ZoneInfo

from carehub.site import SiteIndex
from carehub.visits import MAX_VISIT, VISIT_REASONS, Visit, VisitReason
from gateway.store.visits import VisitStore


class VisitCounts(Protocol):
    """What an import reports of a visit log (`app.importer.ImportReport` has these)."""

    lines: int
    visits_added: int
    visits_known: int

    def reject(self, line: int, reason: str, raw: bytes | str) -> None:
        """Keep a line that was not imported, with why."""


R = TypeVar("R", bound=VisitCounts)


LOCAL_TIME = re.compile(r"^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})$")
CSV_COLUMNS = ("room", "resident_id", "entered_at", "left_at", "staff", "reason")
MAX_STAFF = 64


def _local(value: str, tz: ZoneInfo, fold: int) -> datetime:
    m = LOCAL_TIME.match(value)
    assert m is not None
    y, mo, d, h, mi = (int(x) for x in m.groups())
    naive = datetime(y, mo, d, h, mi)  # the site's zone is applied below
    local = naive.replace(tzinfo=tz, fold=fold)
    # a time the clocks skip (02:30 on the last Sunday of March) does not exist
    if local.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != naive:
        msg = f"{value!r} does not exist in {tz.key} (the clocks skip it)"
        raise ValueError(msg)
    return local.astimezone(UTC)


def _is_local(value: str) -> bool:
    return LOCAL_TIME.match(value) is not None


def parse_time(field: str, value: Any, tz: ZoneInfo, fold: int = 0) -> datetime:
    """RFC 3339 with an offset, or local `YYYY-MM-DD HH:MM` in `tz`, as UTC."""
    if not isinstance(value, str) or not value.strip():
        msg = f"{field} must be a time (RFC 3339, or local YYYY-MM-DD HH:MM)"
        raise ValueError(msg)
    value = value.strip()
    if _is_local(value):
        return _local(value, tz, fold)
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as err:
        msg = f"{field} {value!r} is neither RFC 3339 nor local YYYY-MM-DD HH:MM"
        raise ValueError(msg) from err
    if when.tzinfo is None:
        msg = f"{field} {value!r} has seconds but no offset: add one (e.g. Z), or use HH:MM"
        raise ValueError(msg)
    return when.astimezone(UTC)


def visit_from_fields(fields: Mapping[str, Any], index: SiteIndex) -> Visit:
    """One visit from a record's or a CSV row's fields; ValueError says what is wrong."""
    room = fields.get("room") or None
    resident = fields.get("resident_id") or None
    if (room is None) == (resident is None):
        msg = "give exactly one of room or resident_id"
        raise ValueError(msg)
    if room is not None and (not isinstance(room, str) or room not in index.room_ward):
        msg = f"room {room!r} is not a room of the site"
        raise ValueError(msg)
    if resident is not None and (not isinstance(resident, str) or resident not in index.residents):
        msg = f"resident_id {resident!r} is not a resident of the site"
        raise ValueError(msg)
    entered_raw, left_raw = fields.get("entered_at"), fields.get("left_at")
    entered = parse_time("entered_at", entered_raw, index.tz)
    left = parse_time("left_at", left_raw, index.tz)
    if left < entered and isinstance(left_raw, str) and _is_local(left_raw.strip()):
        # the hour the clocks go back happens twice: read the left time as the later one
        left = parse_time("left_at", left_raw, index.tz, fold=1)
    if left < entered:
        msg = "left_at is before entered_at"
        raise ValueError(msg)
    if left - entered > MAX_VISIT:
        msg = f"a visit of more than {MAX_VISIT.total_seconds() / 3600:.0f} h"
        raise ValueError(msg)
    staff = fields.get("staff") or None
    if staff is not None and (not isinstance(staff, str) or len(staff) > MAX_STAFF):
        msg = f"staff must be text of at most {MAX_STAFF} characters"
        raise ValueError(msg)
    reason = fields.get("reason") or None
    known: VisitReason | None = None
    if reason is not None:
        known = next((r for r in VISIT_REASONS if r == reason), None)
        if known is None:
            msg = f"reason {reason!r} is not one of {', '.join(VISIT_REASONS)}"
            raise ValueError(msg)
    return Visit(index.site.site, entered, left, room, resident, staff, known)


def store_visits(store: VisitStore, visits: list[Visit], report: VisitCounts) -> None:
    """Add the parsed visits; count what was new and what was already there."""
    added, known = store.add_many(visits)
    report.visits_added += added
    report.visits_known += known


def import_visit_csv(lines: Iterable[bytes], index: SiteIndex, store: VisitStore, report: R) -> R:
    """A CSV visit log: a header row naming the columns, then one visit a row.

    Line numbers are the file's (the header is line 1), so a person can find a bad row.
    """
    rows: list[tuple[int, bytes]] = list(enumerate(lines, start=1))
    visits: list[Visit] = []
    header: list[str] | None = None
    for number, raw in rows:
        report.lines = number
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            report.reject(number, "not UTF-8 text", raw)
            continue
        if not text.strip():
            continue
        cells = next(csv.reader(io.StringIO(text)))
        if header is None:
            header = [c.strip().lower() for c in cells]
            unknown = [c for c in header if c not in CSV_COLUMNS]
            needed = {"entered_at", "left_at"} - set(header)
            if unknown or needed or not {"room", "resident_id"} & set(header):
                why = f"header must name {', '.join(CSV_COLUMNS[2:4])}, room or resident_id"
                if unknown:
                    why += f"; unknown column(s) {', '.join(unknown)}"
                report.reject(number, why, raw)
                break
            continue
        if len(cells) != len(header):
            report.reject(number, f"{len(cells)} cells, the header has {len(header)}", raw)
            continue
        try:
            visits.append(visit_from_fields(dict(zip(header, cells, strict=True)), index))
        except ValueError as err:
            report.reject(number, str(err), raw)
    store_visits(store, visits, report)
    return report
