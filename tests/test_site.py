"""The site file: what loads, and how every mistake is reported (docs/site-file.md)."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carehub.site import SiteFileError, SiteIndex, load_site, parse_site

ROOT = Path(__file__).resolve().parent.parent

MINIMAL = """\
site: mini
name: Mini
wards:
  - {id: a, name: A, rooms: [a-1, a-2]}
residents:
  - {id: r-001, room: a-1}
devices:
  - {id: fall-a1, kind: fall, model: carehub-v1, room: a-1}
"""


def problems(text: str) -> list[tuple[int | None, str, str]]:
    with pytest.raises(SiteFileError) as info:
        parse_site(text, "t.yaml")
    return [(p.line, p.where(), p.message) for p in info.value.problems]


def test_shipped_sites_load_with_the_promised_mix() -> None:
    demo = load_site(ROOT / "sites" / "demo.yaml")
    assert len(demo.residents) == 24
    assert len(demo.wards) == 2
    index = SiteIndex(demo)
    per_kind: dict[str, set[str]] = {
        "fall": set(),
        "diaper": set(),
        "medication": set(),
        "bed": set(),
    }
    for bindings in index.bindings.values():
        for b in bindings:
            per_kind[b.kind.value].update(index.residents_of(b))
    assert per_kind["fall"] == {r.id for r in demo.residents}
    assert 14 <= len(per_kind["diaper"]) <= 18  # about two thirds
    assert 10 <= len(per_kind["medication"]) <= 14  # about half
    assert 4 <= len(per_kind["bed"]) <= 8  # bed-exit mats for some at risk of falling
    load_site(ROOT / "sites" / "test.yaml")


def test_minimal_site_gets_spec_defaults() -> None:
    site = parse_site(MINIMAL)
    assert site.timezone == "Europe/Copenhagen"
    assert site.locale == "da"
    assert (site.night.start.hour, site.night.end.hour) == (22, 7)
    assert site.rules.fall.min_confidence == 0.6
    assert site.rules.diaper_change.threshold == 70
    assert site.escalation.high_minutes == 2


@pytest.mark.parametrize(
    ("old", "new", "line", "where", "says"),
    [
        (
            "kind: fall",
            "kind: fal",
            8,
            "devices[0].kind",
            "'fall', 'diaper', 'medication', 'bed' or 'presence'",
        ),
        ("site: mini", "site: Mini Home", 1, "site", "should match pattern"),
        ("room: a-1}\ndevices", "room: a-9}\ndevices", 6, "residents[0].room", "in no ward"),
        ("room: a-1}\n", "room: a-1, rom: x}\n", 6, "residents[0].rom", "unknown key"),
        ("name: Mini\n", "", None, "name", "required"),
        ("model: carehub-v1, room: a-1", "model: carehub-v1", 8, "devices[0]", "exactly one"),
        (
            "site: mini\n",
            "site: mini\ntimezone: Europe/Kobenhavn\n",
            2,
            "timezone",
            "unknown time zone",
        ),
    ],
)
def test_errors_name_line_field_and_rule(
    old: str, new: str, line: int | None, where: str, says: str
) -> None:
    text = MINIMAL.replace(old, new)
    assert text != MINIMAL
    found = problems(text)
    assert any(w == where and says in m and (line is None or ln == line) for ln, w, m in found), (
        found
    )


def test_all_problems_reported_at_once_and_message_is_readable() -> None:
    text = MINIMAL.replace("kind: fall", "kind: fal") + "colour: blue\n"
    with pytest.raises(SiteFileError) as info:
        parse_site(text, "home.yaml")
    message = str(info.value)
    assert message.startswith("home.yaml: 2 problem(s)")
    assert "line 8: devices[0].kind" in message
    assert "line 9: colour: unknown key" in message


def test_duplicate_keys_and_ids_are_errors() -> None:
    text = MINIMAL.replace("name: Mini\n", "name: Mini\nname: Maxi\n").replace(
        "residents:\n", "residents:\n  - {id: r-001, room: a-2}\n"
    )
    found = problems(text)
    assert (3, "name", "appears twice") in found
    assert any("resident id 'r-001' is used twice" in m for _, _, m in found)


def test_yaml_syntax_error_has_line() -> None:
    """A YAML syntax error comes with a line number: for a list left open, the line just past
    the end of the text, where the parser ran out looking for its `]`."""
    found = problems("site: x\nwards: [\n")
    assert found[0][1] == "(top level)"
    assert found[0][2].startswith("not valid YAML")
    assert found[0][0] == 3
    assert problems("site: x\nwards: [\n  a,\n  b: [\n")[0][0] == 5


def test_unquoted_night_time_is_understood() -> None:
    # YAML 1.1 reads 22:00 unquoted as 1320; the care home meant 22:00.
    site = parse_site(MINIMAL + "night: {start: 22:00, end: 06:30}\n")
    assert (site.night.start.hour, site.night.end.hour, site.night.end.minute) == (22, 6, 30)


def test_overlapping_bindings_refused_and_moves_honoured() -> None:
    moved = MINIMAL + (
        "  - {id: d-1, kind: diaper, resident: r-001, until: 2026-11-01}\n"
        "  - {id: d-1, kind: diaper, resident: r-002, from: 2026-11-01}\n"
    )
    moved = moved.replace("residents:\n", "residents:\n  - {id: r-002, room: a-2}\n")
    index = SiteIndex(parse_site(moved))
    before = datetime(2026, 10, 31, 22, 59, tzinfo=UTC)  # 23:59 local, still 31 Oct
    after = datetime(2026, 10, 31, 23, 0, tzinfo=UTC)  # local midnight, 1 Nov
    assert index.binding_at("d-1", before).resident == "r-001"  # type: ignore[union-attr]
    assert index.binding_at("d-1", after).resident == "r-002"  # type: ignore[union-attr]
    overlapping = moved.replace("until: 2026-11-01", "until: 2026-11-05")
    assert any("overlapping" in m for _, _, m in problems(overlapping))


def test_resident_overrides_merge_key_by_key() -> None:
    index = SiteIndex(load_site(ROOT / "sites" / "test.yaml"))
    r1 = index.rules_for("r-001")
    assert r1.diaper_change.threshold == 60
    assert r1.diaper_change.reset_below == 10  # untouched key keeps its default
    assert index.rules_for("r-002").diaper_change.threshold == 70
    b = index.benefit_for("r-002")
    assert (b["checks_per_night"], b.sources["checks_per_night"]) == (4, "resident")
    assert (b["check_minutes"], b.sources["check_minutes"]) == (4, "default")


@pytest.mark.parametrize(
    ("label", "hours"),
    [(date(2026, 11, 22), 9), (date(2026, 3, 28), 8), (date(2026, 10, 24), 10)],
)
def test_nights_follow_the_local_clock_across_dst(label: date, hours: int) -> None:
    index = SiteIndex(parse_site(MINIMAL))
    start, end = index.night_bounds(label)
    assert end - start == timedelta(hours=hours)
    assert index.night_of(start) == label
    assert index.night_of(end - timedelta(seconds=1)) == label
    assert index.night_of(end) is None


@pytest.mark.parametrize(("start", "end"), [("22:00", "07:00"), ("00:30", "06:00")])
@given(when=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31)))
def test_night_of_agrees_with_is_night_and_night_bounds(
    start: str, end: str, when: datetime
) -> None:
    """Over any instant (DST nights included), for a window across midnight and one after."""
    index = SiteIndex(parse_site(MINIMAL + f"night: {{start: '{start}', end: '{end}'}}\n"))
    assert (index.site.night.start < index.site.night.end) == (start == "00:30")
    at = when.replace(tzinfo=UTC)
    label = index.night_of(at)
    assert (label is not None) == index.is_night(at)
    if label is not None:
        lo, hi = index.night_bounds(label)
        assert lo <= at < hi


def test_room_bound_device_counts_for_every_resident_of_the_room() -> None:
    index = SiteIndex(load_site(ROOT / "sites" / "test.yaml"))
    fall = index.device("fall-b1")
    assert fall is not None
    assert sorted(index.residents_of(fall)) == ["r-003", "r-004"]


# --- hostile and broken site files (docs/security.md, "Site file") ---------------------------


def test_billion_laughs_gives_a_small_fast_line_numbered_error() -> None:
    lol = ["site: x", 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in range(1, 10):
        refs = ",".join([f"*a{n - 1}"] * 9)
        lol.append(f"a{n}: &a{n} [{refs}]")
    started = time.monotonic()
    found = problems("\n".join(lol) + "\n")
    assert time.monotonic() - started < 2
    assert len(found) == 1
    line, _where, message = found[0]
    assert "aliases" in message
    assert line == 3  # the first alias


def test_python_tags_are_refused_with_a_line() -> None:
    found = problems(MINIMAL + "benefit: !!python/object/apply:os.system ['true']\n")
    assert found[0][0] == 9
    assert "not valid YAML" in found[0][2]


def test_a_long_timezone_is_a_line_numbered_error_not_oserror() -> None:
    found = problems(MINIMAL + f"timezone: {'x' * 300}\n")
    assert found[0][0] == 9
    assert found[0][1] == "timezone"
    assert "unknown time zone" in found[0][2]


def test_an_oversized_file_is_refused_before_parsing(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    residents = "".join(f"  - {{id: r-{i:06d}, room: a-1}}\n" for i in range(200_000))
    big.write_text(MINIMAL.replace("residents:\n", "residents:\n" + residents))
    assert big.stat().st_size > 5 * 1024 * 1024
    started = time.monotonic()
    with pytest.raises(SiteFileError) as info:
        load_site(big)
    assert time.monotonic() - started < 1
    assert "larger than 5 MB" in str(info.value)


def test_the_same_device_in_two_rooms_without_dates_names_both_lines() -> None:
    text = MINIMAL + "  - {id: fall-a1, kind: fall, model: carehub-v1, room: a-2}\n"
    found = problems(text)
    assert len(found) == 1
    line, where, message = found[0]
    assert line == 9
    assert where == "devices[1].from"
    assert "also bound on line 8" in message


@pytest.mark.parametrize("device_id", ["carehub-gateway", "carehub-api", "hub", "carehub-x"])
def test_a_device_may_not_take_a_service_name(device_id: str) -> None:
    text = MINIMAL.replace("id: fall-a1", f"id: {device_id}")
    found = problems(text)
    assert found[0][0] == 8
    assert "reserved" in found[0][2]


def test_anchors_and_merge_keys_within_reason_still_load() -> None:
    text = MINIMAL.replace(
        "devices:\n", "x-fall: &fall {kind: fall, model: carehub-v1}\ndevices:\n"
    )
    text = text.replace(
        "  - {id: fall-a1, kind: fall, model: carehub-v1, room: a-1}",
        "  - {<<: *fall, id: fall-a1, room: a-1}",
    )
    with pytest.raises(SiteFileError) as info:  # x-fall is an unknown key: still one error
        parse_site(text)
    assert [p.where() for p in info.value.problems] == ["x-fall"]
