"""A reader of InfluxDB line protocol, so tests check what influxdb-client itself would send."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Line:
    """One point as line protocol says it."""

    measurement: str
    tags: dict[str, str]
    fields: dict[str, Any]
    time: int | None


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def until(self, stops: str) -> str:
        """Unescaped text up to (not including) the first unescaped stop character."""
        out = []
        while self.pos < len(self.text) and self.text[self.pos] not in stops:
            if self.text[self.pos] == "\\" and self.pos + 1 < len(self.text):
                self.pos += 1
            out.append(self.text[self.pos])
            self.pos += 1
        return "".join(out)

    def quoted(self) -> str:
        assert self.text[self.pos] == '"'
        self.pos += 1
        out = []
        while self.text[self.pos] != '"':
            if self.text[self.pos] == "\\" and self.text[self.pos + 1] in '"\\':
                self.pos += 1
            out.append(self.text[self.pos])
            self.pos += 1
        self.pos += 1
        return "".join(out)


def _value(raw: str) -> Any:
    if raw in ("t", "T", "true", "True", "TRUE"):
        return True
    if raw in ("f", "F", "false", "False", "FALSE"):
        return False
    if raw.endswith(("i", "u")):
        return int(raw[:-1])
    return float(raw)


def parse_line(text: str) -> Line:
    """Parse one line; an AssertionError says where it is not line protocol."""
    r = _Reader(text)
    measurement = r.until(", ")
    tags: dict[str, str] = {}
    while r.peek() == ",":
        r.pos += 1
        key = r.until("=")
        r.pos += 1
        tags[key] = r.until(", ")
    assert r.peek() == " ", f"no fields in {text!r}"
    r.pos += 1
    fields: dict[str, Any] = {}
    while True:
        key = r.until("=")
        r.pos += 1
        fields[key] = r.quoted() if r.peek() == '"' else _value(r.until(", "))
        if r.peek() != ",":
            break
        r.pos += 1
    stamp = r.text[r.pos :].strip()
    return Line(measurement, tags, fields, int(stamp) if stamp else None)


def lines_of(points: list[Any]) -> list[Line]:
    """influxdb-client Points → parsed lines, through the client's own serialisation."""
    return [parse_line(p.to_line_protocol()) for p in points]
