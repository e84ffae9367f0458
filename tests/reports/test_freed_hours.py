"""The freed-hours method (docs/freed-hours.md) on hand-computed cases."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from carehub.site import SiteIndex
from carehub.site.loader import parse_site
from services.reports.freed_hours import (
    AlarmRecord,
    FreedHoursInput,
    all_covered_seconds,
    bootstrap_ci,
    freed_hours_report,
    online_intervals,
    resident_nights,
)

NIGHT = date(2026, 11, 22)  # 22:00-07:00 CET = 21:00-06:00 UTC, 9 h


def heartbeats(
    index: SiteIndex,
    night: date,
    every: float = 60.0,
    gaps: dict[str, tuple[float, float]] | None = None,
) -> dict[str, np.ndarray]:
    """Every device beating all night; `gaps` silences one for [a, b) s into the night."""
    lo, hi = index.night_bounds(night)
    base = np.arange(lo.timestamp() - 120, hi.timestamp() + 120, every)
    out = {}
    for device_id in index.bindings:
        times = base
        if gaps and device_id in gaps:
            a, b = gaps[device_id]
            rel = times - lo.timestamp()
            times = times[(rel < a) | (rel >= b)]
        out[device_id] = times
    return out


def at(hh: int, mm: int, night: date = NIGHT) -> datetime:
    """A local wall time of the night, as UTC (CET = UTC+1 in November)."""
    day = night if hh >= 12 else night + timedelta(days=1)
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=UTC) - timedelta(hours=1)


def test_worked_example_resident_r001(test_index: SiteIndex) -> None:
    # r-001 has a fall sensor (room a-1), a diaper sensor and a dispenser; site uses defaults.
    # baseline = C_b*m_c + D_b*m_d + M_b*m_m = 2*4 + 1*10 + 1*3 = 21 min, coverage 1.
    # One fall alarm: acknowledged 23:02, resolved 23:12 -> 10 min + o (2) = 12 min.
    # freed = 1 * (21 - 0) - 12 = 9 min.
    alarm = AlarmRecord(
        "a1",
        "fall",
        "r-001",
        "a-1",
        "fall-a1",
        at(23, 0),
        at(23, 2),
        "sofie",
        at(23, 12),
        "sofie",
        "assisted",
    )
    data = FreedHoursInput(heartbeats(test_index, NIGHT), [alarm])
    rows = {r.resident_id: r for r in resident_nights(test_index, NIGHT, NIGHT, data)}
    r1 = rows["r-001"]
    assert r1.coverage == pytest.approx(1.0)
    assert r1.baseline_min == 21
    assert r1.alarm_min == pytest.approx(12)
    assert r1.freed_min == pytest.approx(9)
    # r-002: checks_per_night 4 (resident override), diaper sensor, fall sensor; no dispenser
    # (its dispenser med-r00x served r-002 only until 1 Nov) -> 4*4 + 10 = 26
    assert rows["r-002"].baseline_min == 26
    assert rows["r-002"].freed_min == pytest.approx(26)


def test_coverage_drops_while_a_device_is_silent(test_index: SiteIndex) -> None:
    # diaper-r001 silent from 1 h to 2 h into the night: offline from its last message + 3 min
    # until the next message -> 3600 - 180 (+ heartbeat phase) seconds of 32,400.
    data = FreedHoursInput(heartbeats(test_index, NIGHT, gaps={"diaper-r001": (3600, 7200)}), [])
    rows = {r.resident_id: r for r in resident_nights(test_index, NIGHT, NIGHT, data)}
    lo = test_index.night_bounds(NIGHT)[0].timestamp()
    times = data.device_times["diaper-r001"]
    last_before = times[times - lo < 3600].max()
    first_after = times[times - lo >= 7200].min()
    offline = first_after - (last_before + 180)
    assert rows["r-001"].coverage == pytest.approx(1 - offline / 32400)
    assert rows["r-002"].coverage == pytest.approx(1.0)  # not r-002's device


def test_sensor_resolved_alarm_costs_nothing_and_missing_times_use_defaults(
    test_index: SiteIndex,
) -> None:
    by_sensor = AlarmRecord(
        "a1",
        "diaper_change",
        "r-001",
        None,
        "diaper-r001",
        at(1, 0),
        resolved_at=at(1, 30),
        resolved_by="sensor",
    )
    no_times = AlarmRecord(
        "a2", "dose_missed", "r-001", None, "med-r001", at(2, 0), acknowledged_by="sofie"
    )
    capped = AlarmRecord(
        "a3",
        "fall",
        "r-001",
        "a-1",
        "fall-a1",
        at(3, 0),
        at(3, 1),
        "sofie",
        at(5, 0),
        "sofie",
        "assisted",
    )
    data = FreedHoursInput(heartbeats(test_index, NIGHT), [by_sensor, no_times, capped])
    r1 = next(
        r for r in resident_nights(test_index, NIGHT, NIGHT, data) if r.resident_id == "r-001"
    )
    # dose_missed -> medication d = 3 (+2); the fall is capped at 60 (+2)
    assert r1.alarm_min == pytest.approx(3 + 2 + 60 + 2)
    assert r1.alarm_visits == 2


def test_room_alarm_is_shared_by_the_room(test_index: SiteIndex) -> None:
    alarm = AlarmRecord(
        "a1",
        "fall",
        None,
        "b-1",
        "fall-b1",
        at(23, 0),
        at(23, 0),
        "sofie",
        at(23, 10),
        "sofie",
        "assisted",
    )
    data = FreedHoursInput(heartbeats(test_index, NIGHT), [alarm])
    rows = {r.resident_id: r for r in resident_nights(test_index, NIGHT, NIGHT, data)}
    assert rows["r-003"].alarm_min == pytest.approx(6)
    assert rows["r-004"].alarm_min == pytest.approx(6)


def test_alarms_outside_the_night_do_not_count(test_index: SiteIndex) -> None:
    daytime = AlarmRecord(
        "a1",
        "fall",
        "r-001",
        "a-1",
        "fall-a1",
        at(12, 0),
        at(12, 1),
        "sofie",
        at(12, 5),
        "sofie",
        "assisted",
    )
    data = FreedHoursInput(heartbeats(test_index, NIGHT), [daytime])
    r1 = next(
        r for r in resident_nights(test_index, NIGHT, NIGHT, data) if r.resident_id == "r-001"
    )
    assert r1.alarm_min == 0


@pytest.mark.parametrize(("night", "hours"), [(date(2026, 3, 28), 8.0), (date(2026, 10, 24), 10.0)])
def test_dst_nights_have_their_true_length(
    test_index: SiteIndex, night: date, hours: float
) -> None:
    data = FreedHoursInput(heartbeats(test_index, night), [])
    report = freed_hours_report(test_index, night, night, data)
    assert report["by_night"][0]["hours"] == hours
    assert report["coverage_mean"] == pytest.approx(1.0)


def test_report_shape_totals_and_fte(test_index: SiteIndex) -> None:
    first, last = NIGHT, NIGHT + timedelta(days=2)
    times: dict[str, np.ndarray] = {}
    for n in (first, first + timedelta(days=1), last):
        for k, v in heartbeats(test_index, n).items():
            times[k] = np.concatenate((times.get(k, np.empty(0)), v))
    report = freed_hours_report(test_index, first, last, FreedHoursInput(times, []))
    for key in (
        "site",
        "from",
        "to",
        "nights",
        "resident_nights",
        "freed_hours_total",
        "freed_hours_per_night",
        "annual_hours",
        "fte",
        "coverage_mean",
        "room_entries_avoided",
        "by_ward",
        "by_resident",
        "by_night",
        "assumptions",
    ):
        assert key in report
    per_night = sum(r["freed_hours_total"] for r in report["by_resident"].values()) / 3
    assert report["nights"] == 3
    assert report["freed_hours_per_night"]["mean"] == pytest.approx(per_night)
    assert report["freed_hours_per_night"]["ci95"] == pytest.approx(
        [per_night, per_night]
    )  # identical nights
    assert report["annual_hours"] == pytest.approx(per_night * 365)
    assert report["fte"] == pytest.approx(per_night * 365 / 1924)
    assert report["freed_hours_total"] == pytest.approx(
        sum(w["freed_hours_total"] for w in report["by_ward"].values())
    )
    assert report["assumptions"]["parameters"]["checks_per_night"] == {
        "symbol": "C_b",
        "value": 2,
        "source": "default",
    }
    assert report["assumptions"]["resident_overrides"] == {"r-002": {"checks_per_night": 4}}
    ward_b = freed_hours_report(test_index, first, last, FreedHoursInput(times, []), ward="b")
    assert set(ward_b["by_resident"]) == {"r-003", "r-004"}


def test_bootstrap_is_deterministic_and_brackets_the_mean() -> None:
    values = np.array([3.0, 5.0, 4.0, 8.0, 1.0, 6.0])
    assert bootstrap_ci(values) == bootstrap_ci(values)
    lo, hi = bootstrap_ci(values)
    assert lo < values.mean() < hi


@given(st.lists(st.floats(0, 30000), min_size=1, max_size=60), st.floats(1, 600))
def test_online_intervals_cover_each_message_for_the_supervision_time(
    raw: list[float], sup: float
) -> None:
    ts = np.sort(np.array(raw))
    starts, ends = online_intervals(ts, sup)
    assert np.all(starts[1:] > ends[:-1])  # merged, disjoint, ordered
    covered = all_covered_seconds([(starts, ends)], 0, 40000)
    assert covered <= ts.size * sup + 1e-6
    for t in ts:
        assert np.any((starts <= t) & (t + sup <= ends + 1e-9))


def test_intersection_of_two_devices() -> None:
    a = (np.array([0.0, 100.0]), np.array([50.0, 200.0]))
    b = (np.array([25.0]), np.array([150.0]))
    assert all_covered_seconds([a, b], 0, 300) == pytest.approx(25 + 50)


# --- the method's edges (mutation testing, docs/testing.md) ---------------------------------

EDGE_SITE = """
site: edge
name: Edge
timezone: Europe/Copenhagen
locale: en
night: {start: "22:00", end: "07:00"}
benefit: {changes_per_night: 2, medication_rounds_per_night: 2, retained_checks_per_night: 1}
wards:
  - {id: a, name: Ward A, rooms: [a-1, a-2, a-3]}
  - {id: c, name: Ward C, rooms: [c-1]}
residents:
  - {id: r-1, room: a-1}
  - {id: r-2, room: a-2}
  - {id: r-3, room: a-3}
devices:
  - {id: d-1, kind: diaper, model: carehub-v1, resident: r-1, until: "2026-11-22T22:00:00"}
  - {id: d-2, kind: diaper, model: carehub-v1, resident: r-2, from: "2026-11-23T07:00:00"}
  - {id: m-2, kind: medication, model: carehub-v1, resident: r-2, from: "2026-11-23T07:00:00"}
"""
"""r-1's diaper sensor is unbound as night 22 Nov begins, r-2's sensors are bound as it ends,
r-3 has none; ward c has no resident. Two changes and two rounds a night, one check kept."""


@pytest.fixture
def edge_index() -> SiteIndex:
    return SiteIndex(parse_site(EDGE_SITE))


def beating(index: SiteIndex, night: date) -> np.ndarray:
    """A message a minute through the whole night and a little beyond."""
    lo, hi = index.night_bounds(night)
    return np.arange(lo.timestamp() - 120, hi.timestamp() + 120, 60.0)


def test_a_ward_without_resident_nights_has_no_mean(edge_index: SiteIndex) -> None:
    """docs/freed-hours.md: a ward with no resident-nights has no mean and no interval (null),
    never a made-up zero; the home's figure is unchanged by it."""
    first = NIGHT - timedelta(days=1)
    data = FreedHoursInput({"d-1": beating(edge_index, first)}, [])
    report = freed_hours_report(edge_index, first, first, data)
    ward_c = report["by_ward"]["c"]
    assert ward_c["resident_nights"] == 0
    assert np.isnan(ward_c["freed_hours_per_night"]["mean"])
    assert all(np.isnan(ward_c["freed_hours_per_night"]["ci95"]))
    assert np.isnan(ward_c["annual_hours"])
    assert np.isnan(ward_c["coverage_mean"])
    freed_h = (28 - 4) / 60  # r-1, κ = 1, no alarm
    assert report["by_ward"]["a"]["freed_hours_per_night"]["mean"] == pytest.approx(freed_h)
    assert report["freed_hours_per_night"] == {
        "mean": pytest.approx(freed_h),
        "ci95": pytest.approx([freed_h, freed_h]),
    }
