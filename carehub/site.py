"""The site model of SPEC §1: one care home's wards, rooms, residents and devices.

A care home's IT person edits the site file by hand, so every mistake must come back as a
message that names the line, the field and what is allowed. Unknown keys are errors: a typo
must never silently fall back to a default.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from carehub.errors import ConfigError

SLUG = r"^[a-z0-9][a-z0-9-]*$"
Slug = Annotated[str, Field(pattern=SLUG, max_length=64)]
"""Ids that appear in MQTT topics and URLs: lower-case letters, digits and '-'."""


class Strict(BaseModel):
    """Base of every site-file model: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DeviceKind(StrEnum):
    """What a device senses."""

    FALL = "fall"
    DIAPER = "diaper"
    MEDICATION = "medication"


class Priority(StrEnum):
    """Alarm priority; decides escalation time and order on the staff board."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


# --- the freed-hours parameters of SPEC §6 -------------------------------------------------


class ResponseMinutes(Strict):
    """Minutes assumed for an alarm of each kind when its response was not measured (`d_k`)."""

    fall: float | None = Field(None, ge=0, description="Fall alarm [15].")
    diaper: float | None = Field(None, ge=0, description="Diaper alarm [10].")
    medication: float | None = Field(None, ge=0, description="Medication alarm [3].")
    technical: float | None = Field(None, ge=0, description="Technical alarm [5].")


class Benefit(Strict):
    """§6 parameters as written in the site file; None means 'not set here'."""

    checks_per_night: float | None = Field(None, ge=0, description="C_b [2].")
    check_minutes: float | None = Field(None, ge=0, description="m_c [4].")
    changes_per_night: float | None = Field(None, ge=0, description="D_b [1].")
    change_minutes: float | None = Field(None, ge=0, description="m_d [10].")
    medication_rounds_per_night: float | None = Field(None, ge=0, description="M_b [1].")
    medication_minutes: float | None = Field(None, ge=0, description="m_m [3].")
    retained_checks_per_night: float | None = Field(None, ge=0, description="C_s [0].")
    visit_overhead_minutes: float | None = Field(None, ge=0, description="o [2].")
    response_minutes: ResponseMinutes | None = Field(None, description="d_k per alarm kind.")
    response_cap_minutes: float | None = Field(None, gt=0, description="cap [60].")
    hours_per_fte: float | None = Field(None, gt=0, description="H [1924].")


BENEFIT_DEFAULTS: dict[str, float] = {
    "checks_per_night": 2,
    "check_minutes": 4,
    "changes_per_night": 1,
    "change_minutes": 10,
    "medication_rounds_per_night": 1,
    "medication_minutes": 3,
    "retained_checks_per_night": 0,
    "visit_overhead_minutes": 2,
    "response_minutes.fall": 15,
    "response_minutes.diaper": 10,
    "response_minutes.medication": 3,
    "response_minutes.technical": 5,
    "response_cap_minutes": 60,
    "hours_per_fte": 1924,
}
"""SPEC §6 defaults, flat keys; placeholders until a care home measures its own."""


def _flatten_benefit(benefit: Benefit | None) -> dict[str, float]:
    if benefit is None:
        return {}
    flat: dict[str, float] = {}
    for key, value in benefit.model_dump(exclude_none=True).items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": float(v) for k, v in value.items() if v is not None})
        else:
            flat[key] = float(value)
    return flat


@dataclass(frozen=True, slots=True)
class ResolvedBenefit:
    """§6 parameters after defaults, site and resident overrides, with where each came from."""

    values: dict[str, float]
    sources: dict[str, Literal["default", "site", "resident"]]

    def __getitem__(self, key: str) -> float:
        return self.values[key]


# --- rules (SPEC §5), declared here so site and residents can override them ---------------


class FallRule(Strict):
    """A fall with enough confidence raises a high-priority alarm."""

    enabled: bool = True
    min_confidence: float = Field(0.6, ge=0, le=1, description="Lowest confidence that alarms.")
    priority: Priority = Priority.HIGH
    night_only: bool = Field(False, description="Only alarm inside the night window.")


class DiaperChangeRule(Strict):
    """A saturated diaper asks for a change; a fresh diaper resolves the alarm."""

    enabled: bool = True
    threshold: float = Field(70, ge=0, le=100, description="Saturation % that alarms.")
    reset_below: float = Field(10, ge=0, le=100, description="Saturation % of a fresh diaper.")
    priority: Priority = Priority.MEDIUM
    night_only: bool = False


class DoseMissedRule(Strict):
    """A dose not taken within its window, or reported missed by the dispenser."""

    enabled: bool = True
    window_minutes: float = Field(30, gt=0, description="Minutes from due to taken.")
    priority: Priority = Priority.MEDIUM
    night_only: bool = False


class DeviceFaultRule(Strict):
    """A dispenser fault (jam, empty, lid open) needs a person."""

    enabled: bool = True
    priority: Priority = Priority.MEDIUM
    night_only: bool = False


class SensorSilentRule(Strict):
    """A device that stops talking cannot protect anyone."""

    enabled: bool = True
    heartbeats_missed: float = Field(3, gt=0, description="Silence of N heartbeat intervals.")
    priority: Priority = Priority.MEDIUM
    fall_night_priority: Priority = Field(
        Priority.HIGH, description="Priority for a silent fall sensor inside the night window."
    )
    night_only: bool = False


class BatteryLowRule(Strict):
    """Change the battery before the device goes silent."""

    enabled: bool = True
    threshold: float = Field(15, ge=0, le=100, description="Battery % that alarms.")
    priority: Priority = Priority.LOW
    night_only: bool = False


class Rules(Strict):
    """All alarm rules with their settings; any subset may be overridden."""

    fall: FallRule = FallRule()
    diaper_change: DiaperChangeRule = DiaperChangeRule()
    dose_missed: DoseMissedRule = DoseMissedRule()
    device_fault: DeviceFaultRule = DeviceFaultRule()
    sensor_silent: SensorSilentRule = SensorSilentRule()
    battery_low: BatteryLowRule = BatteryLowRule()


RULE_NAMES: tuple[str, ...] = tuple(Rules.model_fields)


class EscalationTarget(Strict):
    """Who hears about an escalated alarm."""

    kind: Literal["all_staff", "role", "user", "webhook"] = "all_staff"
    role: Literal["staff", "manager", "admin"] | None = None
    user: str | None = None
    url: str | None = Field(None, description="Outgoing webhook (nurse-call, paging).")

    @model_validator(mode="after")
    def _target_has_its_field(self) -> Self:
        needed = {"role": self.role, "user": self.user, "webhook": self.url}
        if self.kind in needed and not needed[self.kind]:
            field = "url" if self.kind == "webhook" else self.kind
            msg = f"escalation target kind {self.kind!r} needs '{field}'"
            raise ValueError(msg)
        return self


class Escalation(Strict):
    """When unacknowledged alarms escalate and how often they are announced again."""

    high_minutes: float | None = Field(2, gt=0, description="None = never.")
    medium_minutes: float | None = Field(10, gt=0)
    low_minutes: float | None = Field(None, gt=0)
    reminder_high_minutes: float | None = Field(1, gt=0, description="Re-announce every N min.")
    reminder_medium_minutes: float | None = Field(5, gt=0)
    reminder_low_minutes: float | None = Field(None, gt=0)
    target: EscalationTarget = EscalationTarget()

    def escalate_after(self, priority: Priority) -> timedelta | None:
        """How long an alarm of this priority may stay unacknowledged."""
        minutes = getattr(self, f"{priority.value}_minutes")
        return None if minutes is None else timedelta(minutes=minutes)

    def remind_every(self, priority: Priority) -> timedelta | None:
        """How often an unacknowledged alarm of this priority is announced again."""
        minutes = getattr(self, f"reminder_{priority.value}_minutes")
        return None if minutes is None else timedelta(minutes=minutes)


# --- the site itself ----------------------------------------------------------------------


class NightWindow(Strict):
    """The local night, e.g. 22:00–07:00; it crosses midnight when end ≤ start."""

    start: time = time(22, 0)
    end: time = time(7, 0)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _hh_mm(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            # YAML 1.1 reads an unquoted 22:00 as the sexagesimal number 1320.
            value = f"{value // 60:02d}:{value % 60:02d}"
        if isinstance(value, str) and not re.fullmatch(r"\d{1,2}:\d{2}", value):
            msg = f'use HH:MM, e.g. "22:00" (got {value!r})'
            raise ValueError(msg)
        return value


class Ward(Strict):
    """An afdeling with its rooms."""

    id: Slug
    name: str = Field(min_length=1, max_length=200)
    rooms: list[Slug] = Field(min_length=1)


class Resident(Strict):
    """A resident, known on the wire only by a pseudonymous id."""

    id: Slug
    room: Slug
    name: str | None = Field(
        None, max_length=200, description="Shown on staff screens only; never on MQTT or logs."
    )
    benefit: Benefit | None = None
    rules: Rules | None = None


BindingTime = date | datetime


class Device(Strict):
    """A device and one binding of it: to a room (fall) or a resident, for a period."""

    id: Slug
    kind: DeviceKind
    model: str = Field("carehub-v1", min_length=1, description="Chooses the codec.")
    room: Slug | None = None
    resident: Slug | None = None
    from_: BindingTime | None = Field(None, alias="from")
    until: BindingTime | None = None
    topic: str | None = Field(
        None, description="Vendor topic this device publishes on, e.g. zigbee2mqtt/bed-12."
    )
    heartbeat_seconds: float = Field(60, gt=0, description="Expected heartbeat interval.")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _one_binding(self) -> Self:
        if (self.room is None) == (self.resident is None):
            msg = "bind the device to exactly one of 'room' or 'resident'"
            raise ValueError(msg)
        return self


class Site(Strict):
    """One care home, as written in its site file."""

    site: Slug
    name: str = Field(min_length=1, max_length=200)
    timezone: str = "Europe/Copenhagen"
    locale: Literal["da", "en"] = "da"
    night: NightWindow = NightWindow()
    benefit: Benefit | None = None
    rules: Rules = Rules()
    escalation: Escalation = Escalation()
    wards: list[Ward] = Field(min_length=1)
    residents: list[Resident] = Field(default_factory=list)
    devices: list[Device] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as err:
            msg = f"unknown time zone {value!r}; use an IANA name like Europe/Copenhagen"
            raise ValueError(msg) from err
        return value


# --- loading, with errors that name the line -----------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a site file."""

    path: tuple[str | int, ...]
    message: str
    line: int | None = None

    def where(self) -> str:
        """`devices[2].kind` style location."""
        out = ""
        for part in self.path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
        return out or "(top level)"


class SiteFileError(ConfigError):
    """A site file that cannot be used, with every problem found."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        lines = [f"{source}: {len(problems)} problem(s):"]
        for p in problems:
            at = f"line {p.line}: " if p.line else ""
            lines.append(f"  {at}{p.where()}: {p.message}")
        super().__init__("\n".join(lines))


class _LineLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys, which PyYAML would otherwise silently drop."""


def _compose_lines(
    node: yaml.Node, path: tuple[str | int, ...], lines: dict[tuple[str | int, ...], int]
) -> Iterator[Problem]:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                yield Problem((*path, key), "appears twice", key_node.start_mark.line + 1)
            seen.add(key)
            lines[(*path, key)] = key_node.start_mark.line + 1
            yield from _compose_lines(value_node, (*path, key), lines)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from _compose_lines(item, (*path, i), lines)


def _line_for(path: tuple[str | int, ...], lines: dict[tuple[str | int, ...], int]) -> int | None:
    for n in range(len(path), -1, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return None


def _pydantic_problems(err: ValidationError) -> Iterator[Problem]:
    for e in err.errors(include_url=False):
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        loc = tuple("from" if p == "from_" else p for p in loc)
        message = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; unknown keys are not allowed)"
        elif e["type"] == "missing":
            message = "required, but missing"
        elif "input" in e and e["type"] not in ("model_type", "dict_type"):
            shown = repr(e["input"])
            if len(shown) <= 60:
                message += f" (got {shown})"
        yield Problem(loc, message)


def parse_site(text: str, source: str = "<site file>") -> Site:
    """Validate site-file text; every problem comes back at once in a `SiteFileError`."""
    try:
        root = yaml.compose(text, Loader=_LineLoader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(err, "problem", None) or str(err)
        raise SiteFileError(source, [Problem((), f"not valid YAML: {problem}", line)]) from err
    if root is None:
        raise SiteFileError(source, [Problem((), "the file is empty")])
    lines: dict[tuple[str | int, ...], int] = {}
    problems = list(_compose_lines(root, (), lines))
    data = yaml.load(text, Loader=_LineLoader)  # noqa: S506 - _LineLoader is a SafeLoader
    if not isinstance(data, dict):
        problems.append(Problem((), "the top level must be a mapping (key: value lines)", 1))
        raise SiteFileError(source, problems)
    site: Site | None = None
    try:
        site = Site.model_validate(data)
    except ValidationError as err:
        problems.extend(_pydantic_problems(err))
    if site is not None:
        problems.extend(_cross_check(site))
    if problems:
        located = [Problem(p.path, p.message, p.line or _line_for(p.path, lines)) for p in problems]
        raise SiteFileError(source, located)
    assert site is not None
    return site


def load_site(path: Path | str) -> Site:
    """Read and validate a site file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise SiteFileError(
            str(path), [Problem((), f"cannot read the file: {err.strerror}")]
        ) from err
    return parse_site(text, str(path))


def _cross_check(site: Site) -> Iterator[Problem]:
    """Checks that span entries: unique ids, rooms that exist, bindings that do not overlap."""
    rooms: dict[str, str] = {}
    yield from _unique(((("wards", i, "id"), w.id) for i, w in enumerate(site.wards)), "ward")
    for i, ward in enumerate(site.wards):
        for j, room in enumerate(ward.rooms):
            if room in rooms:
                yield Problem(("wards", i, "rooms", j), f"room {room!r} is already in a ward")
            rooms[room] = ward.id
    residents = {r.id for r in site.residents}
    yield from _unique(
        ((("residents", i, "id"), r.id) for i, r in enumerate(site.residents)), "resident"
    )
    for i, r in enumerate(site.residents):
        if r.room not in rooms:
            yield Problem(("residents", i, "room"), f"room {r.room!r} is in no ward's rooms")
    by_device: dict[str, list[int]] = {}
    topics: dict[str, str] = {}
    for i, d in enumerate(site.devices):
        by_device.setdefault(d.id, []).append(i)
        if d.room is not None and d.room not in rooms:
            yield Problem(("devices", i, "room"), f"room {d.room!r} is in no ward's rooms")
        if d.resident is not None and d.resident not in residents:
            yield Problem(("devices", i, "resident"), f"no resident has id {d.resident!r}")
        if (
            d.from_ is not None
            and d.until is not None
            and _instant(d.until, site) <= _instant(d.from_, site)
        ):
            yield Problem(("devices", i, "until"), "must be after 'from'")
        if d.topic is not None:
            if any(c in d.topic for c in "+#") or not d.topic.strip("/"):
                yield Problem(("devices", i, "topic"), "a plain topic, without '+' or '#'")
            elif topics.setdefault(d.topic, d.id) != d.id:
                yield Problem(("devices", i, "topic"), f"already used by {topics[d.topic]!r}")
    for device_id, idxs in by_device.items():
        first = site.devices[idxs[0]]
        for i in idxs[1:]:
            d = site.devices[i]
            if (d.kind, d.model) != (first.kind, first.model):
                yield Problem(
                    ("devices", i, "kind"),
                    f"device {device_id!r} is listed again with another kind or model",
                )
        spans = sorted(
            (_instant(site.devices[i].from_, site), _instant(site.devices[i].until, site), i)
            for i in idxs
        )
        for (_, end_a, _a), (start_b, _, b) in itertools.pairwise(spans):
            if start_b < end_a:
                yield Problem(
                    ("devices", b, "from"),
                    f"device {device_id!r} has overlapping bindings; give each a from/until",
                )


def _unique(items: Iterable[tuple[tuple[str | int, ...], str]], what: str) -> Iterator[Problem]:
    seen: set[str] = set()
    for path, value in items:
        if value in seen:
            yield Problem(path, f"{what} id {value!r} is used twice")
        seen.add(value)


_FAR_PAST = datetime(1970, 1, 1, tzinfo=UTC)
_FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)


def _instant(value: BindingTime | None, site: Site, *, default_end: bool = False) -> datetime:
    """A binding bound as a UTC instant; a bare date means local midnight at the site."""
    if value is None:
        return _FAR_FUTURE if default_end else _FAR_PAST
    tz = ZoneInfo(site.timezone)
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=tz)
        return aware.astimezone(UTC)
    return datetime.combine(value, time(0), tzinfo=tz).astimezone(UTC)


# --- the validated site, indexed for the pipeline -----------------------------------------


@dataclass(frozen=True, slots=True)
class Binding:
    """Where a device was, for a half-open UTC period [start, end)."""

    device_id: str
    kind: DeviceKind
    model: str
    room: str | None
    resident: str | None
    start: datetime
    end: datetime
    heartbeat_seconds: float


class SiteIndex:
    """Look-ups the gateway, rules and reports need, built once from a validated `Site`."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.tz = ZoneInfo(site.timezone)
        self.room_ward = {room: w.id for w in site.wards for room in w.rooms}
        self.residents = {r.id: r for r in site.residents}
        self.room_residents: dict[str, list[str]] = {}
        for r in site.residents:
            self.room_residents.setdefault(r.room, []).append(r.id)
        self.bindings: dict[str, list[Binding]] = {}
        for d in site.devices:
            self.bindings.setdefault(d.id, []).append(
                Binding(
                    device_id=d.id,
                    kind=d.kind,
                    model=d.model,
                    room=d.room,
                    resident=d.resident,
                    start=_instant(d.from_, site),
                    end=_instant(d.until, site, default_end=True),
                    heartbeat_seconds=d.heartbeat_seconds,
                )
            )
        for spans in self.bindings.values():
            spans.sort(key=lambda b: b.start)
        self.topic_devices = {d.topic: d.id for d in site.devices if d.topic}
        self.device_topics = {d.id: d.topic for d in site.devices if d.topic}

    def device(self, device_id: str) -> Binding | None:
        """Any binding of the device (kind and model are the same in all), or None if unknown."""
        spans = self.bindings.get(device_id)
        return spans[0] if spans else None

    def binding_at(self, device_id: str, when: datetime) -> Binding | None:
        """The binding in force at `when`, or None when the device was not bound then."""
        for b in self.bindings.get(device_id, ()):
            if b.start <= when < b.end:
                return b
        return None

    def residents_of(self, binding: Binding) -> list[str]:
        """Residents a binding counts for: its resident, or every resident of its room."""
        if binding.resident is not None:
            return [binding.resident]
        return list(self.room_residents.get(binding.room or "", []))

    def room_of(self, binding: Binding) -> str | None:
        """The room of a binding, through its resident when bound to one."""
        if binding.room is not None:
            return binding.room
        resident = self.residents.get(binding.resident or "")
        return resident.room if resident else None

    def rules_for(self, resident_id: str | None) -> Rules:
        """Site rules with the resident's overrides laid over them, key by key."""
        base = self.site.rules.model_dump(exclude_unset=True)
        resident = self.residents.get(resident_id or "")
        if resident is None or resident.rules is None:
            return self.site.rules
        merged = _deep_merge(base, resident.rules.model_dump(exclude_unset=True))
        return Rules.model_validate(merged)

    def benefit_for(self, resident_id: str | None) -> ResolvedBenefit:
        """§6 parameters for a resident (or the site when None), with their sources."""
        values = dict(BENEFIT_DEFAULTS)
        sources: dict[str, Literal["default", "site", "resident"]] = dict.fromkeys(
            values, "default"
        )
        for key, value in _flatten_benefit(self.site.benefit).items():
            values[key], sources[key] = value, "site"
        resident = self.residents.get(resident_id or "")
        if resident is not None:
            for key, value in _flatten_benefit(resident.benefit).items():
                values[key], sources[key] = value, "resident"
        return ResolvedBenefit(values, sources)

    def is_night(self, when: datetime) -> bool:
        """Whether `when` falls inside the local night window."""
        local = when.astimezone(self.tz).time()
        start, end = self.site.night.start, self.site.night.end
        if start < end:
            return start <= local < end
        return local >= start or local < end

    def night_bounds(self, label: date) -> tuple[datetime, datetime]:
        """The UTC start and end of the night labelled by its local start date.

        Built on the local clock, so a daylight-saving night is 8 h or 10 h long.
        """
        start, end = self.site.night.start, self.site.night.end
        begin = datetime.combine(label, start, tzinfo=self.tz)
        end_day = label + timedelta(days=1) if end <= start else label
        finish = datetime.combine(end_day, end, tzinfo=self.tz)
        return begin.astimezone(UTC), finish.astimezone(UTC)

    def night_of(self, when: datetime) -> date | None:
        """The label of the night `when` falls in, or None outside the night window."""
        local = when.astimezone(self.tz)  # once: reports ask this for every alarm of a year
        clock = local.time()
        start, end = self.site.night.start, self.site.night.end
        if start < end:
            return local.date() if start <= clock < end else None
        if clock < end:
            return local.date() - timedelta(days=1)
        return local.date() if clock >= start else None


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
