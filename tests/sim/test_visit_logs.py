"""Simulated visit logs with a known answer (docs/simulator.md, "Visit logs"): the measured
before/after difference's 95 % interval (docs/freed-hours.md) holds the true effect in at
least 93 % of seeded runs (a thousand, `-m long`; a quick hundred by default). The logs are
generated directly, not over MQTT."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from carehub.site import SiteIndex, parse_site
from firmware_sim.visits import VisitLog, VisitPlan, expected_work, simulate_visit_log
from services.reports.before_after import Period, PeriodInput, before_after_report
from services.reports.freed_hours import expanded_tail, percentile_interval

SITE = """
site: kendt
name: Kendt svar
wards:
  - {id: a, name: A, rooms: [a-1, a-2, a-3, a-4, a-5]}
  - {id: b, name: B, rooms: [b-1, b-2, b-3]}
residents:
  - {id: r-01, room: a-1}
  - {id: r-02, room: a-2, benefit: {checks_per_night: 3}}
  - {id: r-03, room: a-3}
  - {id: r-04, room: a-4, benefit: {retained_checks_per_night: 1}}
  - {id: r-05, room: a-5}
  - {id: r-06, room: b-1}
  - {id: r-07, room: b-1}
  - {id: r-08, room: b-2, benefit: {checks_per_night: 1}}
  - {id: r-09, room: b-3}
devices:
  - {id: diaper-01, kind: diaper, resident: r-01}
  - {id: diaper-03, kind: diaper, resident: r-03}
  - {id: diaper-06, kind: diaper, resident: r-06}
  - {id: med-02, kind: medication, resident: r-02}
  - {id: med-09, kind: medication, resident: r-09}
  - {id: p-a1, kind: presence, room: a-1}
  - {id: p-a2, kind: presence, room: a-2}
  - {id: p-a3, kind: presence, room: a-3}
  - {id: p-a4, kind: presence, room: a-4}
  - {id: p-a5, kind: presence, room: a-5}
  - {id: p-b1, kind: presence, model: callpoint-presence, room: b-1}
  - {id: p-b2, kind: presence, room: b-2}
  - {id: p-b3, kind: presence, room: b-3}
"""
BEFORE = (date(2026, 8, 1), date(2026, 9, 25))  # eight weeks of rounds as usual
AFTER = (date(2026, 10, 1), date(2026, 11, 25))  # eight weeks; holds the 10 h night of 24 Oct


@pytest.fixture(scope="module")
def index() -> SiteIndex:
    return SiteIndex(parse_site(SITE))


def _input(log: VisitLog, period: tuple[date, date]) -> PeriodInput:
    times = {d: np.array(t) for d, t in log.presence_times.items()}
    return PeriodInput(Period(*period), log.visits, times)


def _run(index: SiteIndex, seed: int, plan: VisitPlan) -> dict[str, object]:
    before = simulate_visit_log(index, *BEFORE, "before", seed, plan)
    after = simulate_visit_log(index, *AFTER, "after", seed, plan)
    return before_after_report(index, _input(before, BEFORE), _input(after, AFTER), None)


def test_the_true_effect_is_known(index: SiteIndex) -> None:
    plan = VisitPlan()
    # before, per resident: calls 0.25 x (6 + 2) = 2; checks kept 1 + (C_b - 1) x 0.85 plus
    # 0.3 extra, each 4 + 2; a diaper sensor's change 10 + 2, a dispenser's round 3 + 2
    kept = {"r-02": 1 + 2 * 0.85, "r-08": 1.0}
    work_before = 0.0
    for r in [f"r-0{i}" for i in range(1, 10)]:
        checks = kept.get(r, 1.85) + 0.3
        work_before += 2 + checks * 6 + 12 * (r in ("r-01", "r-03", "r-06"))
        work_before += 5 * (r in ("r-02", "r-09"))
    # after: calls 2, alarms 0.6 x (9 + 2) = 6.6, r-04's retained check 6
    work_after = (9 * (2 + 6.6) + 6) / 9
    assert expected_work(index, "before", plan)[0] == pytest.approx(work_before / 9)
    assert expected_work(index, "after", plan)[0] == pytest.approx(work_after)


def test_same_seed_same_log_and_every_resident_night_measured(index: SiteIndex) -> None:
    one = simulate_visit_log(index, *BEFORE, "before", 3)
    assert one == simulate_visit_log(index, *BEFORE, "before", 3)
    assert one != simulate_visit_log(index, *BEFORE, "before", 4)
    report = _run(index, 3, VisitPlan())
    assert report["before"]["resident_nights"] == 9 * 56  # type: ignore[index]
    assert report["after"]["resident_nights"] == 9 * 56  # type: ignore[index]
    bare = SiteIndex(parse_site(SITE.replace("  - {id: p-a1, kind: presence, room: a-1}\n", "")))
    with pytest.raises(ValueError, match="rooms without a presence device: a-1"):
        simulate_visit_log(bare, *AFTER, "after", 1)


def _coverage(index: SiteIndex, seeds: range, plan: VisitPlan) -> tuple[int, int]:
    truth_work = expected_work(index, "before", plan)[0] - expected_work(index, "after", plan)[0]
    truth_visits = expected_work(index, "before", plan)[1] - expected_work(index, "after", plan)[1]
    held_work = held_visits = 0
    for seed in seeds:
        diff = _run(index, seed, plan)["difference"]
        lo, hi = diff["work_minutes_per_resident_night"]["ci95"]  # type: ignore[index]
        held_work += lo <= truth_work <= hi
        lo, hi = diff["visits_per_resident_night"]["ci95"]  # type: ignore[index]
        held_visits += lo <= truth_visits <= hi
    return held_work, held_visits


def test_the_interval_holds_the_true_effect_in_93_of_100_seeded_runs(index: SiteIndex) -> None:
    """Seeds 0-99 hold the work difference 93 times and the visits 98 times. The plain
    percentile interval held the work difference 91 times (docs/freed-hours.md, "The
    interval"); a broken interval (too narrow, or centred off the truth) drops far below. A
    correct 95 % interval passes this 87 % of the time: the thousand runs below are the
    sharper check."""
    held_work, held_visits = _coverage(index, range(100), VisitPlan())
    assert held_work >= 93
    assert held_visits >= 93


def test_the_expansion_widens_the_plain_percentile_interval_by_the_t_factor() -> None:
    """The tail each end: 2.5 % for one night (no spread to widen), Hesterberg's
    Φ(-√(n/(n-1)) t) otherwise, which tends to 2.5 % as nights grow."""
    assert expanded_tail(1) == pytest.approx(0.025)
    assert expanded_tail(2) < 1e-60  # two nights: the whole resampled range
    assert expanded_tail(30) == pytest.approx(0.018754, abs=1e-6)
    assert expanded_tail(56) == pytest.approx(0.021579, abs=1e-6)
    assert expanded_tail(56) < expanded_tail(200) < expanded_tail(10_000) < 0.025
    stats = np.linspace(0.0, 1.0, 10_001)
    lo, hi = percentile_interval(stats, 56)
    assert (lo, hi) == pytest.approx((0.021579, 1 - 0.021579), abs=1e-4)


@pytest.mark.long
def test_the_interval_holds_the_true_effect_in_93_of_100_runs_over_a_thousand(
    index: SiteIndex,
) -> None:
    """Seeds 0-999 (a minute): at least 93 % of the intervals hold the true effect."""
    held_work, held_visits = _coverage(index, range(1000), VisitPlan())
    assert held_work >= 930
    assert held_visits >= 930


def test_a_wrong_truth_is_not_held(index: SiteIndex) -> None:
    """The check can fail: the same intervals against a truth 3 minutes off hold it rarely."""
    plan = VisitPlan()
    truth = expected_work(index, "before", plan)[0] - expected_work(index, "after", plan)[0]
    held = 0
    for seed in range(20):
        lo, hi = _run(index, seed, plan)["difference"]["work_minutes_per_resident_night"]["ci95"]  # type: ignore[index]
        held += lo <= truth + 3 <= hi
    assert held <= 2
