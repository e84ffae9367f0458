"""The `long` runs are selected by evaluating `-m` as pytest does, not by a substring."""

from __future__ import annotations

import pytest

from tests.gateway.conftest import asks_for_long

LONG = [pytest.mark.long.mark]
LONG_BROKER = [pytest.mark.long.mark, pytest.mark.broker.mark]


@pytest.mark.parametrize(
    ("markexpr", "marks", "runs"),
    [
        ("", LONG, False),
        ("long", LONG, True),
        ("not long", LONG, False),
        ("not broker", LONG, False),
        ("long and not broker", LONG, True),
        ("long and not broker", LONG_BROKER, False),
        ("long or broker", LONG_BROKER, False),
        ("long or broker", LONG, True),
    ],
)
def test_long_runs_only_when_the_expression_asks_for_it(
    markexpr: str, marks: list[pytest.Mark], runs: bool
) -> None:
    assert asks_for_long(markexpr, marks) is runs
