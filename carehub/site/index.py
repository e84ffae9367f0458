"""The validated site, indexed once for the pipeline: bindings, rooms, rules and nights.

The gateway, rules and reports ask these questions for every event or alarm, so the answers
are laid out in dictionaries when the site is loaded rather than searched for each time.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from carehub.site.benefit import ResolvedBenefit, resolve_benefit
from carehub.site.bindings import Binding, binding_instant
from carehub.site.model import Rules, Site
from carehub.site.night import is_night, night_bounds, night_of


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
                    start=binding_instant(d.from_, site),
                    end=binding_instant(d.until, site, default_end=True),
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
        """Freed-hours parameters for a resident (or the site when None), with their sources."""
        resident = self.residents.get(resident_id or "")
        return resolve_benefit(
            self.site.benefit, resident.benefit if resident is not None else None
        )

    def is_night(self, when: datetime) -> bool:
        """Whether `when` falls inside the local night window."""
        return is_night(self.site.night, self.tz, when)

    def night_bounds(self, label: date) -> tuple[datetime, datetime]:
        """The UTC start and end of the night labelled by its local start date."""
        return night_bounds(self.site.night, self.tz, label)

    def night_of(self, when: datetime) -> date | None:
        """The label of the night `when` falls in, or None outside the night window."""
        return night_of(self.site.night, self.tz, when)


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out
