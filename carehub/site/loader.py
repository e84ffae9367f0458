"""Reading a site file (docs/site-file.md): YAML in, a validated `Site` or every problem out.

A care home's IT person edits the file by hand, so each problem names its line, its field and
what is allowed, and all of them come back at once rather than one per attempt.

The file is also untrusted input (docs/security.md, "Site file"): it is read with a safe
loader only (no Python tags), at most `MAX_SITE_BYTES`, and with a bounded alias expansion,
so a hostile or broken file gives a line-numbered error at once instead of a traceback or
gigabytes of memory.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import ValidationError

from carehub.errors import ConfigError
from carehub.site.bindings import binding_instant
from carehub.site.model import Site

RESERVED_DEVICE_IDS = frozenset(
    {
        "carehub-gateway",
        "carehub-rules",
        "carehub-api",
        "carehub-sim",
        "carehub-hub",
        "carehub-central",
        "hub",
        "carehub",
    }
)
"""Broker usernames of CareHub's services and the self-test's device (`hub`), and with them
every id that starts with `carehub-`: a device named so would share a service's credential
and ACL in the generated broker config."""

MAX_SITE_BYTES = 5 * 1024 * 1024
"""A site file of a large care home is a few hundred kB; five MB is far beyond any."""

MAX_EXPANDED_NODES = 1_000_000
"""Nodes after expanding every alias; a billion-laughs file goes far beyond, a real one not."""

MAX_EXPANSION = 10
"""Aliases may make the document at most this many times larger than what is written."""

_BaseLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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


class _LineLoader(_BaseLoader):  # type: ignore[valid-type,misc]
    """libyaml's safe loader where installed (several times faster), else PyYAML's; both
    keep line marks. Only safe tags: a `!!python/...` tag is a ConstructorError."""


def _expanded_size(root: yaml.Node) -> tuple[int, int]:
    """(nodes as written, nodes once every alias is expanded), in linear time: a shared node
    is sized once. Iterative, so a deep file cannot exhaust the stack."""
    sizes: dict[int, int] = {}
    order: list[yaml.Node] = []
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in sizes:
            continue
        sizes[id(node)] = 0
        order.append(node)
        stack.extend(_children(node))
    for node in reversed(order):
        total = 1 + sum(sizes[id(c)] for c in _children(node))
        sizes[id(node)] = min(total, MAX_EXPANDED_NODES * MAX_EXPANSION + 1)
    return len(order), sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _compose_lines(root: yaml.Node, lines: dict[tuple[str | int, ...], int]) -> Iterator[Problem]:
    """Line numbers by path, and duplicate keys. A node reached again through an alias is not
    walked again: its lines are those of the anchor, and a bomb cannot multiply the work."""
    walked: set[int] = set()
    stack: list[tuple[yaml.Node, tuple[str | int, ...]]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        lines.setdefault(path, node.start_mark.line + 1)
        if id(node) in walked:
            continue
        walked.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                if key in seen:
                    yield Problem((*path, key), "appears twice", key_node.start_mark.line + 1)
                seen.add(key)
                lines[(*path, key)] = key_node.start_mark.line + 1
                stack.append((value_node, (*path, key)))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(((item, (*path, i)) for i, item in enumerate(node.value)))


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
    return check_site(text, source)[0]


def check_site(text: str, source: str = "<site file>") -> tuple[Site, list[Problem]]:
    """Validate site-file text: the site and its warnings (line-numbered, like problems:
    things that work but are probably not meant, e.g. a ward no phone hears)."""
    if len(text) > MAX_SITE_BYTES:
        too_big = f"the file is larger than {MAX_SITE_BYTES // (1024 * 1024)} MB"
        raise SiteFileError(source, [Problem((), too_big, 1)])
    loader = _LineLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise SiteFileError(source, [Problem((), "the file is empty")])
        written, expanded = _expanded_size(root)
        if expanded > max(MAX_EXPANDED_NODES, MAX_EXPANSION * written):
            msg = "aliases (*name) expand the file too far; write the entries out"
            raise SiteFileError(source, [Problem((), msg, _first_alias_line(text))])
        lines: dict[tuple[str | int, ...], int] = {}
        problems = list(_compose_lines(root, lines))
        data = loader.construct_document(root)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(err, "problem", None) or str(err)
        raise SiteFileError(source, [Problem((), f"not valid YAML: {problem}", line)]) from err
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        problems.append(Problem((), "the top level must be a mapping (key: value lines)", 1))
        raise SiteFileError(source, problems)
    site: Site | None = None
    try:
        site = Site.model_validate(data)
    except ValidationError as err:
        problems.extend(_pydantic_problems(err))
    if site is not None:
        problems.extend(_cross_check(site, lines))
    if problems:
        located = [Problem(p.path, p.message, p.line or _line_for(p.path, lines)) for p in problems]
        raise SiteFileError(source, located)
    assert site is not None
    warnings = [Problem(p.path, p.message, _line_for(p.path, lines)) for p in _warnings(site)]
    return site, warnings


def _first_alias_line(text: str) -> int:
    """The line of the first alias (`*name`), where an expansion starts."""
    for n, line in enumerate(text.splitlines(), start=1):
        if "*" in line.split("#", 1)[0]:
            return n
    return 1


def load_site(path: Path | str) -> Site:
    """Read and validate a site file."""
    return check_site_file(path)[0]


def check_site_file(path: Path | str) -> tuple[Site, list[Problem]]:
    """Read and validate a site file (at most `MAX_SITE_BYTES`): the site and its warnings."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_SITE_BYTES + 1)
        if len(raw) > MAX_SITE_BYTES:
            too_big = f"the file is larger than {MAX_SITE_BYTES // (1024 * 1024)} MB"
            raise SiteFileError(str(path), [Problem((), too_big, 1)])
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise SiteFileError(
            str(path), [Problem((), f"not UTF-8 text (byte {err.start})", None)]
        ) from err
    except OSError as err:
        raise SiteFileError(
            str(path), [Problem((), f"cannot read the file: {err.strerror}")]
        ) from err
    return check_site(text, str(path))


def _cross_check(site: Site, lines: dict[tuple[str | int, ...], int]) -> Iterator[Problem]:
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
    yield from _check_phones(site, {w.id for w in site.wards})
    by_device: dict[str, list[int]] = {}
    topics: dict[str, str] = {}
    for i, d in enumerate(site.devices):
        by_device.setdefault(d.id, []).append(i)
        if d.id in RESERVED_DEVICE_IDS or d.id.startswith("carehub-"):
            yield Problem(
                ("devices", i, "id"),
                f"{d.id!r} is reserved for CareHub's own services; give the device another id",
            )
        if d.room is not None and d.room not in rooms:
            yield Problem(("devices", i, "room"), f"room {d.room!r} is in no ward's rooms")
        if d.resident is not None and d.resident not in residents:
            yield Problem(("devices", i, "resident"), f"no resident has id {d.resident!r}")
        if (
            d.from_ is not None
            and d.until is not None
            and binding_instant(d.until, site) <= binding_instant(d.from_, site)
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
            (
                binding_instant(site.devices[i].from_, site),
                binding_instant(site.devices[i].until, site, default_end=True),
                i,
            )
            for i in idxs
        )
        for (_, end_a, a), (start_b, _, b) in itertools.pairwise(spans):
            if start_b < end_a:
                yield Problem(
                    ("devices", b, "from"),
                    f"device {device_id!r} has overlapping bindings: it is also bound on line"
                    f" {_line_for(('devices', a), lines)} for the same time; give each binding"
                    " a from/until that do not overlap",
                )


def _check_phones(site: Site, wards: set[str]) -> Iterator[Problem]:
    """Phones name wards that exist, ids and ntfy topics are unique, fallback phones exist
    (docs/notifications.md)."""
    yield from _unique(((("phones", i, "id"), p.id) for i, p in enumerate(site.phones)), "phone")
    topics: dict[str, str] = {}
    addresses: dict[str, str] = {}
    for i, phone in enumerate(site.phones):
        for j, ward in enumerate(phone.wards):
            if ward not in wards:
                yield Problem(("phones", i, "wards", j), f"no ward has id {ward!r}")
        if phone.ntfy_topic is not None:
            first = topics.setdefault(phone.ntfy_topic, phone.id)
            if first != phone.id:
                yield Problem(
                    ("phones", i, "ntfy_topic"),
                    f"ntfy topic {phone.ntfy_topic!r} is already used by phone {first!r}",
                )
        if phone.espa_address is not None:
            first = addresses.setdefault(phone.espa_address, phone.id)
            if first != phone.id:
                yield Problem(
                    ("phones", i, "espa_address"),
                    f"ESPA address {phone.espa_address!r} is already used by phone {first!r}",
                )
    phone_ids = {p.id for p in site.phones}
    for j, phone_id in enumerate(site.escalation.fallback_phones):
        if phone_id not in phone_ids:
            yield Problem(("escalation", "fallback_phones", j), f"no phone has id {phone_id!r}")


def _warnings(site: Site) -> Iterator[Problem]:
    """What works but is probably not meant: nobody's pocket hears a ward, a channel address
    with no server to send it through, a fallback that never comes."""
    if not site.phones:
        return  # notifications not set up at all: the board alone, as before
    heard = {w for p in site.phones for w in p.wards}
    for i, ward in enumerate(site.wards):
        if ward.id not in heard:
            yield Problem(("wards", i, "id"), f"no phone hears ward {ward.id!r}")
    unsent = "notify.{} is not set, so nothing is sent to it"
    for i, phone in enumerate(site.phones):
        if phone.ntfy_topic is not None and site.notify.ntfy is None:
            yield Problem(("phones", i, "ntfy_topic"), unsent.format("ntfy"))
        if phone.espa_address is not None and site.notify.espa is None:
            yield Problem(("phones", i, "espa_address"), unsent.format("espa"))
    esc = site.escalation
    if esc.fallback_phones and esc.fallback_minutes is None:
        yield Problem(("escalation", "fallback_phones"), "fallback_minutes is not set: never told")
    if site.notify.public_url is None:
        yield Problem(("notify",), "public_url is not set: notifications carry no acknowledge link")


def _unique(items: Iterable[tuple[tuple[str | int, ...], str]], what: str) -> Iterator[Problem]:
    seen: set[str] = set()
    for path, value in items:
        if value in seen:
            yield Problem(path, f"{what} id {value!r} is used twice")
        seen.add(value)
