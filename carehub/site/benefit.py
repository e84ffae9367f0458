"""The freed-hours parameters (docs/freed-hours.md) in force for a resident, and their source.

Every parameter has a default; the site file may set it for the whole site and a resident may
set it again. Reports show where each value came from, so a manager can see which numbers are
placeholders and which the care home measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from carehub.site.model import Benefit

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
"""Defaults of docs/freed-hours.md, flat keys; placeholders until a care home measures its own."""


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
    """Parameters after defaults, site and resident overrides, with where each came from."""

    values: dict[str, float]
    sources: dict[str, Literal["default", "site", "resident"]]

    def __getitem__(self, key: str) -> float:
        return self.values[key]


def resolve_benefit(site: Benefit | None, resident: Benefit | None) -> ResolvedBenefit:
    """Defaults, then the site's values, then the resident's, each key by key."""
    values = dict(BENEFIT_DEFAULTS)
    sources: dict[str, Literal["default", "site", "resident"]] = dict.fromkeys(values, "default")
    for key, value in _flatten_benefit(site).items():
        values[key], sources[key] = value, "site"
    for key, value in _flatten_benefit(resident).items():
        values[key], sources[key] = value, "resident"
    return ResolvedBenefit(values, sources)
