"""The alarm lifecycle as pure functions: every transition, allowed or refused."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from carehub.errors import ConflictError
from carehub.site import Priority
from services.alarms import model
from services.alarms.errors import InvalidTransitionError
from services.alarms.model import Alarm, AlarmState, Outcome

T0 = datetime(2026, 11, 22, 22, 0, tzinfo=UTC)
LATER = T0 + timedelta(minutes=3)

SPEC_KEYS = {
    "alarm_id", "site", "rule", "kind", "priority", "state", "resident_id", "room",
    "device_id", "raised_at", "acknowledged_at", "acknowledged_by", "escalated_at",
    "resolved_at", "resolved_by", "outcome", "trigger_event_id", "count",
}  # fmt: skip


def alarm(state: AlarmState = AlarmState.RAISED, priority: Priority = Priority.MEDIUM) -> Alarm:
    return Alarm(
        alarm_id="a-1",
        site="testhjem",
        rule="diaper_change",
        kind="diaper",
        priority=priority,
        state=state,
        resident_id="r-001",
        raised_at=T0,
    )


ACTIONS: dict[str, Callable[[Alarm], Alarm]] = {
    "acknowledge": lambda a: model.acknowledge(a, "anna", LATER),
    "escalate": lambda a: model.escalate(a, LATER),
    "resolve": lambda a: model.resolve(a, "anna", Outcome.CHANGED, LATER, "ok"),
    "resolve_by_sensor": lambda a: model.resolve_by_sensor(a, LATER),
    "repeat": lambda a: model.repeat(a, LATER),
}

R, A, E, X = (
    AlarmState.RAISED,
    AlarmState.ACKNOWLEDGED,
    AlarmState.ESCALATED,
    AlarmState.RESOLVED,
)

TABLE = [
    # state, action, resulting state (None: refused)
    (R, "acknowledge", A),
    (R, "escalate", E),
    (R, "resolve", X),
    (R, "resolve_by_sensor", X),
    (R, "repeat", R),
    (E, "acknowledge", A),
    (E, "escalate", None),
    (E, "resolve", X),
    (E, "resolve_by_sensor", X),
    (E, "repeat", E),
    (A, "acknowledge", None),
    (A, "escalate", None),
    (A, "resolve", X),
    (A, "resolve_by_sensor", X),
    (A, "repeat", A),
    (X, "acknowledge", None),
    (X, "escalate", None),
    (X, "resolve", None),
    (X, "resolve_by_sensor", None),
    (X, "repeat", None),
    # closed: imported history that was never resolved; nothing happens to it any more
    (AlarmState.CLOSED, "acknowledge", None),
    (AlarmState.CLOSED, "escalate", None),
    (AlarmState.CLOSED, "resolve", None),
    (AlarmState.CLOSED, "resolve_by_sensor", None),
    (AlarmState.CLOSED, "repeat", None),
]


@pytest.mark.parametrize(("state", "action", "expected"), TABLE)
def test_transition_table(state: AlarmState, action: str, expected: AlarmState | None) -> None:
    before = alarm(state)
    if expected is None:
        with pytest.raises(InvalidTransitionError) as info:
            ACTIONS[action](before)
        assert isinstance(info.value, ConflictError)  # what the web app maps to 409
        assert state.value in str(info.value)
        return
    after = ACTIONS[action](before)
    assert after.state is expected
    assert before.state is state  # frozen: the old value is untouched


def test_transitions_record_who_and_when() -> None:
    acked = model.acknowledge(alarm(), "anna", LATER)
    assert (acked.acknowledged_by, acked.acknowledged_at) == ("anna", LATER)
    done = model.resolve(acked, "bo", "assisted", LATER + timedelta(minutes=4), "helped up")
    assert (done.resolved_by, done.outcome, done.note) == ("bo", Outcome.ASSISTED, "helped up")
    assert done.resolved_at == LATER + timedelta(minutes=4)
    by_sensor = model.resolve_by_sensor(alarm(), LATER)
    assert (by_sensor.resolved_by, by_sensor.outcome) == ("sensor", None)
    escalated = model.escalate(alarm(), LATER)
    assert escalated.escalated_at == LATER


def test_high_alarm_is_not_resolved_by_its_sensor_until_acknowledged() -> None:
    high = alarm(priority=Priority.HIGH)
    with pytest.raises(InvalidTransitionError, match="a person must acknowledge"):
        model.resolve_by_sensor(high, LATER)
    with pytest.raises(InvalidTransitionError):
        model.resolve_by_sensor(model.escalate(high, LATER), LATER)
    acked = model.acknowledge(high, "anna", LATER)
    assert model.resolve_by_sensor(acked, LATER).state is AlarmState.RESOLVED


@pytest.mark.parametrize(
    ("user", "outcome", "match"),
    [
        ("anna", "fixed_it", "not one of"),
        ("", "assisted", "name of a person"),
        ("sensor", "assisted", "name of a person"),
    ],
)
def test_resolve_refuses_bad_input(user: str, outcome: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        model.resolve(alarm(), user, outcome, LATER)


def test_acknowledge_needs_a_name() -> None:
    with pytest.raises(ValueError, match="name"):
        model.acknowledge(alarm(), "  ", LATER)


def test_times_never_precede_raised_at() -> None:
    """A device clock ahead of ours must not give a negative response time."""
    acked = model.acknowledge(alarm(), "anna", T0 - timedelta(minutes=1))
    assert acked.acknowledged_at == T0


def test_repeat_counts_and_keeps_the_latest_time() -> None:
    once = model.repeat(alarm(), LATER)
    twice = model.repeat(once, T0 + timedelta(minutes=1))  # an older one arriving late
    assert (twice.count, twice.last_seen_at) == (3, LATER)


def test_json_has_the_spec_keys_and_rfc3339_times() -> None:
    data = model.resolve(alarm(), "anna", "changed", LATER).to_json()
    assert set(data) >= SPEC_KEYS
    assert data["raised_at"] == "2026-11-22T22:00:00.000000Z"
    assert data["state"] == "resolved"
    assert data["outcome"] == "changed"
    assert Alarm.model_validate(data) == model.resolve(alarm(), "anna", "changed", LATER)


def test_history_keeps_a_resolved_alarm_and_closes_any_other() -> None:
    """`as_history` (carehub import): resolved as it is; acknowledged, escalated or raised
    become `closed` with their times; not active."""
    done = model.resolve(model.acknowledge(alarm(), "anna", LATER), "anna", "changed", LATER)
    assert model.as_history(done) == done
    for before in (model.acknowledge(alarm(), "anna", LATER), model.escalate(alarm(), LATER)):
        kept = model.as_history(before)
        assert kept.state is AlarmState.CLOSED
        assert not kept.active
        assert kept.model_copy(update={"state": before.state}) == before


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"acknowledged_at": T0 - timedelta(seconds=1)}, "acknowledged_at .* before raised_at"),
        ({"state": AlarmState.RESOLVED, "resolved_by": "anna", "outcome": "assisted"}, "needs"),
        ({"state": AlarmState.RESOLVED, "resolved_at": LATER, "resolved_by": "anna"}, "outcome"),
        ({"resolved_at": LATER}, "state raised with a resolution"),
        ({"outcome": Outcome.ASSISTED}, "state raised with a resolution"),
    ],
)
def test_history_refuses_an_alarm_that_contradicts_itself(
    changes: dict[str, object], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        model.as_history(alarm().model_copy(update=changes))
