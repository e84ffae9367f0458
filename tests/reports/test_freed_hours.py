"""The freed-hours method (docs/freed-hours.md) on hand-computed cases."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from carehub.site import SiteIndex
from carehub.site.loader import parse_site
from services.reports.freed_hours import (
    BOOTSTRAP_SEED,
    SYMBOLS,
    AlarmRecord,
    FreedHoursInput,
    all_covered_seconds,
    assumptions,
    bootstrap_ci,
    expanded_tail,
    freed_hours_report,
    online_intervals,
    percentile_interval,
    resident_nights,
    served_resident_nights,
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


def test_a_binding_that_ends_or_starts_at_the_nights_edge_does_not_serve_it(
    edge_index: SiteIndex,
) -> None:
    """Bindings are half-open: ending as the night begins, or starting as it ends, is no claim
    on that night; a resident without a device has no resident-night."""
    nights = [NIGHT - timedelta(days=1), NIGHT, NIGHT + timedelta(days=1)]
    assert served_resident_nights(edge_index, nights) == 2
    assert served_resident_nights(edge_index, [NIGHT]) == 0
    data = FreedHoursInput({"d-1": beating(edge_index, nights[0])}, [])
    rows = resident_nights(edge_index, nights[0], nights[-1], data)
    assert [(r.resident_id, r.night) for r in rows] == [("r-1", nights[0]), ("r-2", nights[2])]


def test_baseline_entries_and_alarm_minutes_with_every_parameter_in_play(
    edge_index: SiteIndex,
) -> None:
    """D_b = M_b = 2 and C_s = 1 (site values). r-1 (diaper sensor) on 21 Nov: baseline
    2·4 + 2·10 = 28, kept 1·4 = 4, entries 2 − 1 + 2 = 3; its alarms: one in the day (no
    cost, and the alarms after it still count), a room alarm of a room nobody lives in, a
    notification alarm (no kind: technical, 5) acknowledged but never resolved, a fall
    acknowledged and resolved at the same instant (0 min), a diaper alarm a person resolved
    without acknowledging (10): 7 + 2 + 12 = 21 min, 3 visits. r-2 on 23 Nov (diaper sensor
    and a dispenser that never sent): baseline 8 + 20 + 6 = 34, entries 1 + 2 + 2 = 5, κ = 0."""
    first, last = NIGHT - timedelta(days=1), NIGHT + timedelta(days=1)
    nights = [first, NIGHT, last]

    def alarm(alarm_id: str, rule: str, raised: datetime) -> AlarmRecord:
        return AlarmRecord(alarm_id, rule, "r-1", None, None, raised)

    alarms = [
        replace(alarm("day", "fall", at(12, 0, first)), acknowledged_at=at(12, 1, first),
                acknowledged_by="sofie"),
        replace(alarm("empty-room", "fall", at(23, 0, first)), resident_id=None, room="c-1",
                acknowledged_at=at(23, 1, first), acknowledged_by="sofie"),
        replace(alarm("notify", "notify_failing", at(23, 30, first)),
                acknowledged_at=at(23, 31, first), acknowledged_by="sofie"),
        replace(alarm("instant", "fall", at(1, 0, first)), acknowledged_at=at(1, 0, first),
                acknowledged_by="sofie", resolved_at=at(1, 0, first), resolved_by="sofie"),
        replace(alarm("by-hand", "diaper_change", at(2, 0, first)),
                resolved_at=at(2, 20, first), resolved_by="sofie"),
    ]  # fmt: skip
    times = {"d-1": beating(edge_index, first), "d-2": beating(edge_index, last)}
    rows = resident_nights(edge_index, first, last, FreedHoursInput(times, alarms))
    r1, r2 = rows
    assert (r1.resident_id, r1.night, r2.resident_id, r2.night) == ("r-1", first, "r-2", last)
    assert [r.hours for r in rows] == [9.0, 9.0]
    assert r1.coverage == pytest.approx(1.0)
    assert (r1.baseline_min, r1.retained_min, r1.entries_scheduled) == (28, 4, 3)
    assert r1.alarm_min == pytest.approx(7 + 2 + 12)
    assert r1.alarm_visits == 3
    assert r1.freed_min == pytest.approx(28 - 4 - 21)
    assert r1.entries_avoided == pytest.approx(0)
    assert r2.coverage == 0.0  # m-2 never sent: not every sensor of r-2 was working
    assert (r2.baseline_min, r2.retained_min, r2.entries_scheduled) == (34, 4, 5)
    assert nights[1] not in {r.night for r in rows}


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
    ward_only = freed_hours_report(edge_index, first, first, data, ward="c")
    assert [(n["night"], n["resident_nights"]) for n in ward_only["by_night"]] == [
        ("2026-11-21", 0)
    ]
    assert np.isnan(ward_only["freed_hours_per_night"]["mean"])
    freed_h = (28 - 4) / 60  # r-1, κ = 1, no alarm
    assert report["by_ward"]["a"]["freed_hours_per_night"]["mean"] == pytest.approx(freed_h)
    assert report["freed_hours_per_night"] == {
        "mean": pytest.approx(freed_h),
        "ci95": pytest.approx([freed_h, freed_h]),
    }


def test_nights_kept_as_aggregates_use_their_stored_coverage_and_measured_flag(
    test_index: SiteIndex,
) -> None:
    """Raw messages gone (retention): κ and whether the night was measured come from what
    was kept. κ = 0.5 for each resident on 22 Nov: (21 + 26 + 21 + 11) / 2 min; a night kept
    as not measured is left out even if messages for it are at hand."""
    residents = ["r-001", "r-002", "r-003", "r-004"]
    kept = {(r, NIGHT): 0.5 for r in residents}
    data = FreedHoursInput({}, [], coverage=kept, measured={NIGHT: True})
    report = freed_hours_report(test_index, NIGHT, NIGHT, data)
    assert report["nights"] == 1
    assert report["resident_nights"] == 4
    assert report["coverage_mean"] == pytest.approx(0.5)
    assert report["freed_hours_total"] == pytest.approx((21 + 26 + 21 + 11) / 2 / 60)
    unmeasured = FreedHoursInput(heartbeats(test_index, NIGHT), [], measured={NIGHT: False})
    report = freed_hours_report(test_index, NIGHT, NIGHT, unmeasured)
    assert (report["nights"], report["unmeasured_nights"]) == (0, ["2026-11-22"])
    # a period given in full keeps its first night even when that night was not measured
    report = freed_hours_report(test_index, NIGHT - timedelta(days=1), NIGHT, data)
    assert (report["from"], report["nights"]) == ("2026-11-21", 1)
    assert report["unmeasured_nights"] == ["2026-11-21"]


def test_report_counts_alarms_by_rule_and_outcome_and_their_times_per_ward(
    test_index: SiteIndex,
) -> None:
    """One night, every device beating. Alarms: a fall of r-001 (ack 2 min, resolved 10 min
    later); a fall of the shared room b-1 without a resident (4, 6, false alarm); a diaper
    alarm of r-003 the sensor resolved, twice; a missed dose of r-001 acknowledged after 1 min and
    still open; an imported fall of r-004 never resolved (closed); a hub alarm (no room, no
    resident); and a fall in the day (not counted). Ward b's alarms are found through the
    room or, without one, the resident's room."""
    fall_a = AlarmRecord(
        "f1",
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
    fall_b = AlarmRecord(
        "f2",
        "fall",
        None,
        "b-1",
        "fall-b1",
        at(0, 0),
        at(0, 4),
        "anna",
        at(0, 10),
        "anna",
        "false_alarm",
    )
    diaper = AlarmRecord(
        "d1",
        "diaper_change",
        "r-003",
        None,
        "diaper-r003",
        at(1, 0),
        resolved_at=at(1, 30),
        resolved_by="sensor",
    )
    dose = AlarmRecord("m1", "dose_missed", "r-001", None, "med-r001", at(2, 0), at(2, 1), "sofie")
    closed = AlarmRecord("c1", "fall", "r-004", None, None, at(3, 0), state="closed")
    hub = AlarmRecord("h1", "battery_low", None, None, None, at(4, 0))
    day = AlarmRecord("x1", "fall", "r-001", "a-1", "fall-a1", at(12, 0), at(12, 1), "sofie")
    again = replace(diaper, alarm_id="d2", raised_at=at(5, 0), resolved_at=at(5, 20))
    alarms = [fall_a, fall_b, diaper, dose, closed, hub, day, again]
    data = FreedHoursInput(heartbeats(test_index, NIGHT), alarms)

    report = freed_hours_report(test_index, NIGHT, NIGHT, data)
    assert report["ward"] is None
    assert report["alarms"] == {
        "total": 7,
        "by_rule_outcome": {
            "fall": {"assisted": 1, "false_alarm": 1, "unresolved": 1},
            "diaper_change": {"sensor": 2},
            "dose_missed": {"open": 1},
            "battery_low": {"open": 1},
        },
    }
    # acknowledged after 2, 4 and 1 min; resolved 10 and 6 min after that (numpy's linear p90)
    assert report["acknowledge_minutes"] == {"median": 2.0, "p90": pytest.approx(3.6), "n": 3}
    assert report["response_minutes"] == {"median": 8.0, "p90": pytest.approx(9.6), "n": 2}
    # r-001: 21 − (10 + 2) − (3 + 2) = 4 min; r-002: 26; r-003: 21 − (6 + 2) / 2 = 17;
    # r-004: 11 − 4 − (15 + 2) = −10 (the closed fall took somebody d_fall)
    assert report["by_resident"]["r-001"] == {
        "ward": "a",
        "nights": 1,
        "freed_hours_total": pytest.approx(4 / 60),
        "coverage_mean": pytest.approx(1.0),
        "alarm_minutes": pytest.approx(17),
        "baseline_minutes_per_night": 21,
        "room_entries_avoided": pytest.approx(4 - 2),
    }
    assert report["by_night"] == [
        {
            "night": "2026-11-22",
            "hours": 9.0,
            "freed_hours_total": pytest.approx((4 + 26 + 17 - 10) / 60),
            "resident_nights": 4,
            "coverage_mean": pytest.approx(1.0),
        }
    ]

    ward_b = freed_hours_report(test_index, NIGHT, NIGHT, data, ward="b")
    assert ward_b["ward"] == "b"
    assert set(ward_b["by_ward"]) == {"b"}
    assert ward_b["alarms"] == {
        "total": 4,
        "by_rule_outcome": {
            "fall": {"false_alarm": 1, "unresolved": 1},
            "diaper_change": {"sensor": 2},
        },
    }
    assert ward_b["acknowledge_minutes"] == {"median": 4.0, "p90": 4.0, "n": 1}
    assert ward_b["response_minutes"] == {"median": 6.0, "p90": 6.0, "n": 1}
    ward_a = freed_hours_report(test_index, NIGHT, NIGHT, data, ward="a")
    assert ward_a["alarms"]["total"] == 2
    assert ward_a["acknowledge_minutes"] == {"median": 1.5, "p90": pytest.approx(1.9), "n": 2}
    quiet = freed_hours_report(test_index, NIGHT, NIGHT, FreedHoursInput(data.device_times, []))
    assert quiet["acknowledge_minutes"] == {"median": None, "p90": None, "n": 0}
    assert quiet["response_minutes"] == {"median": None, "p90": None, "n": 0}


def test_a_period_ending_before_it_starts_is_refused(test_index: SiteIndex) -> None:
    """The error names both ends, for the API's 422 and the terminal."""
    with pytest.raises(ValueError, match=r"'to' \(2026-11-21\) is before 'from' \(2026-11-22\)"):
        freed_hours_report(test_index, NIGHT, NIGHT - timedelta(days=1), FreedHoursInput({}, []))


def test_assumptions_name_every_parameter_the_bootstrap_and_the_night(
    test_index: SiteIndex,
) -> None:
    """The test site sets no benefit of its own: every parameter is a default; r-002's four
    checks are the one override."""
    got = assumptions(test_index)
    assert set(got) == {
        "parameters", "resident_overrides", "defaults_used", "supervision", "bootstrap",
        "night_window", "note",
    }  # fmt: skip
    assert got["defaults_used"] == sorted(SYMBOLS)
    assert got["parameters"]["hours_per_fte"] == {"symbol": "H", "value": 1924, "source": "default"}
    assert "3 heartbeat intervals" in got["supervision"]
    assert got["bootstrap"] == {
        "resamples": 2000,
        "seed": BOOTSTRAP_SEED,
        "level": 0.95,
        "method": "expanded percentile",
    }
    assert got["night_window"] == {
        "start": "22:00",
        "end": "07:00",
        "timezone": "Europe/Copenhagen",
    }
    assert got["note"].startswith("Defaults are placeholders")


def test_alarm_record_reads_the_alarm_json() -> None:
    """Times as ISO text (with Z or an offset) or datetimes, absent keys as None, ids as text;
    an alarm without raised_at is refused."""
    raised = datetime(2026, 11, 22, 22, 0, tzinfo=UTC)
    record = AlarmRecord.from_json(
        {
            "alarm_id": 17,
            "rule": "fall",
            "resident_id": "r-001",
            "room": "a-1",
            "device_id": "fall-a1",
            "raised_at": "2026-11-22T22:00:00Z",
            "acknowledged_at": "2026-11-22T23:02:00+01:00",
            "acknowledged_by": "sofie",
            "resolved_at": raised + timedelta(minutes=12),
            "resolved_by": "sofie",
            "outcome": "assisted",
            "escalated_at": "2026-11-22T22:01:00Z",
            "state": "resolved",
        }
    )
    assert record == AlarmRecord(
        "17", "fall", "r-001", "a-1", "fall-a1", raised, raised + timedelta(minutes=2),
        "sofie", raised + timedelta(minutes=12), "sofie", "assisted",
        raised + timedelta(minutes=1), "resolved",
    )  # fmt: skip
    bare = AlarmRecord.from_json({"alarm_id": "a", "rule": "battery_low", "raised_at": raised})
    assert bare == AlarmRecord("a", "battery_low", None, None, None, raised)
    with pytest.raises(ValueError, match=r"^alarm without raised_at$"):
        AlarmRecord.from_json({"alarm_id": "a", "rule": "fall"})


def test_coverage_counts_only_inside_the_window_and_every_set() -> None:
    """all_covered_seconds: the part of [lo, hi) each set covers, down to fractions of a
    second; no set, or sets without intervals, cover nothing."""
    one = (np.array([0.0]), np.array([100.0]))
    assert all_covered_seconds([one], 20, 50) == pytest.approx(30)
    assert all_covered_seconds([one], 0, 300) == pytest.approx(100)
    assert all_covered_seconds([one], 200, 300) == 0.0
    assert all_covered_seconds([(np.array([10.0]), np.array([10.5]))], 0, 100) == 0.5
    assert all_covered_seconds([], 0, 100) == 0.0
    assert all_covered_seconds([(np.empty(0), np.empty(0))], 0, 100) == 0.0
    starts, ends = online_intervals(np.empty(0), 180)  # a device that never sent
    assert (starts.size, ends.size) == (0, 0)
    # a message exactly when the last one's supervision ends continues the same interval
    starts, ends = online_intervals(np.array([0.0, 180.0]), 180)
    assert (starts.tolist(), ends.tolist()) == ([0.0], [360.0])


@pytest.mark.parametrize("nights", [2, 3, 5, 14, 56, 365])
def test_the_expanded_tail_gives_the_t_intervals_width(nights: int) -> None:
    """Hesterberg's expanded percentile: a normal quantile at the tail, times the plain
    bootstrap's spread √((n − 1)/n), is the t quantile of n − 1 degrees of freedom; always
    wider than the plain 2.5 %."""
    tail = expanded_tail(nights)
    z = stats.norm.isf(tail)
    assert z * np.sqrt((nights - 1) / nights) == pytest.approx(stats.t.ppf(0.975, nights - 1))
    assert tail < 0.025


def test_one_night_has_no_spread_to_widen_and_two_take_the_whole_range() -> None:
    assert expanded_tail(1) == pytest.approx(0.025)
    assert expanded_tail(2) < 1e-3
    assert bootstrap_ci(np.array([1.5])) == (1.5, 1.5)
    assert all(np.isnan(bootstrap_ci(np.empty(0))))


def test_the_interval_ends_are_the_tails_percentiles() -> None:
    """On statistics 0, 0.001, …, 100 the q-th percentile is q itself."""
    statistics = np.linspace(0, 100, 100_001)
    tail = expanded_tail(56)
    lo, hi = percentile_interval(statistics, 56)
    assert lo == pytest.approx(100 * tail)
    assert hi == pytest.approx(100 * (1 - tail))
