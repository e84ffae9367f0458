"""Unmeasured nights (docs/freed-hours.md): a night on which no device of the site sent
anything is left out of `nights`, `resident_nights`, the means and the interval of the
freed-hours report (and the sensitivity table), and out of the utilisation report's figures
that average over nights; it is listed in `unmeasured_nights`. A default period starts at its
first measured night. Hand-computed on the test site, across the autumn DST change."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from carehub.site import SiteIndex
from services.reports.freed_hours import (
    AlarmRecord,
    FreedHoursInput,
    bootstrap_ci,
    freed_hours_report,
    measured_nights,
)
from services.reports.sensitivity import sensitivity_report
from services.reports.utilisation import NightUse, utilisation_report
from tests.reports.test_freed_hours import heartbeats

FIRST, LAST = date(2026, 10, 22), date(2026, 10, 26)
DST = date(2026, 10, 24)
"""22:00 CEST (20:00 UTC) → 07:00 CET (06:00 UTC): 10 h."""
FULL = date(2026, 10, 25)
"""22:00 CET → 07:00 CET, every device beating all night."""
LATE_IN_DST_NIGHT = datetime(2026, 10, 25, 5, 30, tzinfo=UTC)
"""06:30 CET: inside the 10-hour night, outside a night taken as 9 hours from its start."""

BASELINE_MIN = 21 + 29 + 18 + 11
"""Per night with κ = 1, before 1 Nov (med-r00x still serves r-002): r-001 2·4 + 10 + 3 = 21;
r-002 4·4 + 10 + 3 = 29 (four checks, its own override); r-003 2·4 + 10 = 18; r-004 2·4 + 3
= 11."""


def history(index: SiteIndex) -> dict[str, np.ndarray]:
    """Nothing before the DST night (the hub was not there yet); that night one message of
    fall-a1 in its last hour (measured, κ = 0 for everyone: the other devices are silent);
    the next night every device all night; nothing on the last night of the period."""
    times = heartbeats(index, FULL)
    times["fall-a1"] = np.concatenate(([LATE_IN_DST_NIGHT.timestamp()], times["fall-a1"]))
    return times


def fall(alarm_id: str, raised: datetime) -> AlarmRecord:
    return AlarmRecord(
        alarm_id,
        "fall",
        "r-001",
        "a-1",
        "fall-a1",
        raised,
        raised + timedelta(minutes=1),
        "sofie",
        raised + timedelta(minutes=11),
        "sofie",
        "assisted",
    )


ALARMS = [
    fall("on-full-1", datetime(2026, 10, 25, 23, 0, tzinfo=UTC)),  # 00:00 CET, night of 25th
    fall("on-full-2", datetime(2026, 10, 26, 1, 0, tzinfo=UTC)),
    fall("before-the-hub", datetime(2026, 10, 23, 22, 0, tzinfo=UTC)),  # an imported one
]
"""Two falls on the full night, one on an unmeasured night: 10 min + o (2) each."""


@pytest.mark.parametrize("default_period", [False, True])
def test_nights_without_a_message_are_left_out_of_every_freed_hours_figure(
    test_index: SiteIndex, default_period: bool
) -> None:
    """Over 22–26 Oct: nights 24 (0 freed, κ = 0, 10 h) and 25 (79 − 24 = 55 min, κ = 1)
    are measured; 22, 23 (before the data) and 26 are not. Mean 55 / 2 min per night (not
    55 / 5), resident-nights 8, coverage 4 / 8. As a default period it starts on the 24th."""
    data = FreedHoursInput(history(test_index), ALARMS)
    report = freed_hours_report(test_index, FIRST, LAST, data, from_first_measured=default_period)
    freed_min = BASELINE_MIN - 2 * (10 + 2)
    assert report["nights"] == 2
    assert report["resident_nights"] == 8
    assert report["freed_hours_total"] == pytest.approx(freed_min / 60)
    mean = report["freed_hours_per_night"]["mean"]
    assert mean == pytest.approx(freed_min / 60 / 2)
    assert report["freed_hours_per_night"]["ci95"] == pytest.approx(
        list(bootstrap_ci(np.array([0.0, freed_min / 60])))
    )
    assert report["annual_hours"] == pytest.approx(mean * 365)
    assert report["coverage_mean"] == pytest.approx(0.5)
    assert [(n["night"], n["hours"]) for n in report["by_night"]] == [
        ("2026-10-24", 10.0),
        ("2026-10-25", 9.0),
    ]
    assert report["by_ward"]["a"]["nights"] == 2
    assert report["alarms"]["total"] == 2  # the one before the hub counts in no figure
    assert report["by_resident"]["r-001"]["alarm_minutes"] == pytest.approx(24)
    if default_period:
        assert report["from"] == "2026-10-24"
        assert report["unmeasured_nights"] == ["2026-10-26"]
    else:
        assert report["from"] == "2026-10-22"
        assert report["unmeasured_nights"] == ["2026-10-22", "2026-10-23", "2026-10-26"]


@pytest.mark.parametrize(
    ("night", "message", "measured"),
    [
        # autumn: 10 h, 20:00–06:00 UTC
        (DST, datetime(2026, 10, 25, 5, 59, tzinfo=UTC), True),
        (DST, datetime(2026, 10, 25, 6, 0, tzinfo=UTC), False),  # 07:00 CET: the night is over
        (DST, datetime(2026, 10, 24, 19, 59, tzinfo=UTC), False),  # 21:59 CEST: not begun
        # spring: 8 h, 22:00 CET (21:00 UTC) → 07:00 CEST (05:00 UTC)
        (date(2026, 3, 28), datetime(2026, 3, 29, 4, 59, tzinfo=UTC), True),
        (date(2026, 3, 28), datetime(2026, 3, 29, 5, 30, tzinfo=UTC), False),  # 07:30 CEST
    ],
)
def test_a_night_is_measured_by_a_message_inside_its_local_window(
    test_index: SiteIndex, night: date, message: datetime, measured: bool
) -> None:
    """The night's bounds are its local clock's, across both DST changes."""
    data = FreedHoursInput({"med-r001": np.array([message.timestamp()])}, [])
    assert measured_nights(test_index, [night], data) == ([night] if measured else [])


def test_a_period_with_no_measured_night_has_no_mean(test_index: SiteIndex) -> None:
    """Null, never a made-up zero; the default period then stays as asked."""
    report = freed_hours_report(
        test_index, FIRST, FIRST, FreedHoursInput({}, []), from_first_measured=True
    )
    assert report["nights"] == 0
    assert report["unmeasured_nights"] == ["2026-10-22"]
    assert np.isnan(report["freed_hours_per_night"]["mean"])
    assert np.isnan(report["coverage_mean"])
    assert report["by_night"] == []


def test_the_sensitivity_table_averages_over_the_measured_nights(test_index: SiteIndex) -> None:
    """Its base is the report's mean: 55 / 2 min per night."""
    data = FreedHoursInput(history(test_index), ALARMS)
    sens = sensitivity_report(test_index, FIRST, LAST, data, ranges={"check_minutes": (4,)})
    assert sens["nights"] == 2
    assert sens["unmeasured_nights"] == ["2026-10-22", "2026-10-23", "2026-10-26"]
    expected = round((BASELINE_MIN - 24) / 60 / 2, 4)
    assert sens["base"]["freed_hours_per_night"] == pytest.approx(expected)
    assert sens["parameters"]["check_minutes"]["values"][0]["freed_hours_per_night"] == (
        pytest.approx(expected)
    )


def test_utilisation_averages_over_the_measured_nights(test_index: SiteIndex) -> None:
    """fall-a2 online the whole 25th (9 h) and not on the 24th (10 h): 9 / 19 of the
    measured night time, not 9 / 46 of all five nights. Alarms are all counted (3, one on
    an unmeasured night); per resident-night only the measured ones: 2 / 8."""
    rep = utilisation_report(
        test_index, FIRST, LAST, ALARMS, [], history(test_index), from_first_measured=True
    )
    assert rep["from"] == "2026-10-24"
    assert rep["nights"] == 2
    assert rep["unmeasured_nights"] == ["2026-10-26"]
    assert rep["device_uptime"]["fall-a2"] == pytest.approx(9 / 19, abs=1e-4)
    assert rep["diaper"]["changes_per_resident_night"] == 0
    assert rep["alarms"]["total"] == 2  # the period starts on the 24th: the 23rd is out
    whole = utilisation_report(test_index, FIRST, LAST, ALARMS, [], history(test_index))
    assert whole["alarms"]["total"] == 3
    assert whole["alarms"]["on_unmeasured_nights"] == 1
    assert whole["alarm_quality"]["resident_nights"] == 8
    assert whole["alarm_quality"]["alarms_per_resident_night"] == pytest.approx(2 / 8)
    assert whole["device_uptime"] == rep["device_uptime"]


def test_a_night_kept_without_its_message_count_is_measured_by_its_uptime() -> None:
    """Nights kept by retention before messages were counted cannot be computed again."""
    old = {"night_seconds": 32400.0, "doses_due": 0, "taken_on_time": 0, "missed": 0,
           "change_levels": []}  # fmt: skip
    assert NightUse.from_json({**old, "uptime_seconds": {"fall-a1": 120.0}}).measured
    assert not NightUse.from_json({**old, "uptime_seconds": {"fall-a1": 0.0}}).measured
    counted = NightUse.from_json({**old, "uptime_seconds": {}, "messages": 3})
    assert counted.measured
    assert NightUse.from_json(counted.to_json()) == counted
