"""Simulated visit logs with a known answer (docs/simulator.md, "Visit logs").

A before period is rounds as the care plans say (`checks_per_night`, and diaper changes and
medication rounds where the resident has such a sensor), written on round sheets with real
variation: a check skipped now and then (never the night's first, so every resident is on
every night's sheet), extra rounds, a resident's call, durations that vary. An after period is
what staff do with sensors: the checks the care plan keeps (`retained_checks_per_night`), the
alarms, the same calls, seen by the rooms' presence devices (which also send a heartbeat an
hour, so every resident-night is measured). Every draw comes from a string-seeded stream, and
`expected_work` gives the true mean per resident-night of each period, so a test can check
that the measured difference's interval holds it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal

from carehub.site import DeviceKind, SiteIndex
from carehub.visits import Visit

Phase = Literal["before", "after"]


@dataclass(frozen=True, slots=True)
class VisitPlan:
    """How staff stray from the care plan, and how often sensors call (per resident-night)."""

    skip_probability: float = 0.15
    """Each scheduled check but the night's first is skipped with this probability."""
    extra_rounds: float = 0.3
    """Extra checks per resident-night (Poisson), before the sensors."""
    calls: float = 0.25
    """A resident's calls per night (Poisson), the same in both periods."""
    call_minutes: float = 6.0
    alarms: float = 0.6
    """Alarm visits per resident-night (Poisson) in the after period."""
    alarm_minutes: float = 9.0
    spread: float = 0.5
    """Durations are uniform in mean × [1 − spread, 1 + spread]."""
    margin: timedelta = timedelta(minutes=30)
    """Visits begin and end this far inside the night window (so none is clipped)."""


@dataclass
class VisitLog:
    """One period's simulated visit log."""

    visits: list[Visit] = field(default_factory=list)
    presence_times: dict[str, list[float]] = field(default_factory=dict)
    """Presence device id → Unix seconds of its heartbeats (the after period only)."""


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method: fine for the small means of a night."""
    limit, k, p = math.exp(-mean), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _kinds_of(index: SiteIndex, resident_id: str) -> set[DeviceKind]:
    room = index.residents[resident_id].room
    kinds: set[DeviceKind] = set()
    for spans in index.bindings.values():
        for b in spans:
            if b.resident == resident_id or (b.room is not None and b.room == room):
                kinds.add(b.kind)
    return kinds


def _scheduled(index: SiteIndex, resident_id: str) -> tuple[int, list[float]]:
    """The care plan's checks, and the minutes of its other night visits (changes, doses)."""
    p = index.benefit_for(resident_id)
    kinds = _kinds_of(index, resident_id)
    others = [p["change_minutes"]] * round(p["changes_per_night"]) * (DeviceKind.DIAPER in kinds)
    others += (
        [p["medication_minutes"]]
        * round(p["medication_rounds_per_night"])
        * (DeviceKind.MEDICATION in kinds)
    )
    return round(p["checks_per_night"]), others


def expected_work(index: SiteIndex, phase: Phase, plan: VisitPlan) -> tuple[float, float]:
    """The true (work minutes, visits) per resident-night of a period: the mean over the
    site's residents of what the plan makes each one cost, a room's visits shared out."""
    o = index.benefit_for(None)["visit_overhead_minutes"]
    work = visits = 0.0
    for resident in index.site.residents:
        p = index.benefit_for(resident.id)
        m_c = p["check_minutes"]
        calls = plan.calls
        w = calls * (plan.call_minutes + o)
        if phase == "before":
            checks, others = _scheduled(index, resident.id)
            kept = 1 + (checks - 1) * (1 - plan.skip_probability) if checks else 0.0
            kept += plan.extra_rounds
            w += kept * (m_c + o) + sum(m + o for m in others)
            n = calls + kept + len(others)
        else:
            retained = round(p["retained_checks_per_night"])
            w += retained * (m_c + o) + plan.alarms * (plan.alarm_minutes + o)
            n = calls + retained + plan.alarms
        work += w
        visits += n
    count = len(index.site.residents)
    return work / count, visits / count


def _presence_devices(index: SiteIndex) -> dict[str, str]:
    """room → its presence device (the first one the site file lists)."""
    rooms: dict[str, str] = {}
    for device_id, spans in index.bindings.items():
        b = spans[0]
        if b.kind is DeviceKind.PRESENCE and b.room is not None:
            rooms.setdefault(b.room, device_id)
    return rooms


@dataclass
class _Night:
    """One resident's night: where its visits go, drawn from its own stream."""

    phase: Phase
    site: str
    resident_id: str
    room: str
    device: str | None
    start: datetime
    end: datetime
    rng: random.Random
    plan: VisitPlan
    log: VisitLog

    def visit(
        self,
        mean: float,
        at: datetime | None = None,
        reason: Literal["round", "call", "alarm", "care"] = "round",
    ) -> None:
        """A visit of `mean` minutes on average, at `at` or anywhere in the night."""
        spread = self.plan.spread
        length = timedelta(minutes=mean * self.rng.uniform(1 - spread, 1 + spread))
        if at is None:
            span = (self.end - self.start - length).total_seconds()
            at = self.start + timedelta(seconds=self.rng.uniform(0, span))
        at = min(max(at, self.start), self.end - length)
        if self.phase == "before":  # a round sheet names the resident
            visit = Visit(self.site, at, at + length, None, self.resident_id, None, reason)
        else:  # the room's presence device sees it, for everyone in the room
            source = f"device:{self.device}"
            visit = Visit(self.site, at, at + length, self.room, None, None, reason, source)
        self.log.visits.append(visit)


def simulate_visit_log(
    index: SiteIndex,
    first: date,
    last: date,
    phase: Phase,
    seed: int,
    plan: VisitPlan | None = None,
) -> VisitLog:
    """The visit log of nights `first` … `last`: round sheets before, presence devices after.

    After, every room needs a presence device (ValueError otherwise): a room's visits are the
    device's pairs, shared by its residents.
    """
    plan = plan or VisitPlan()
    log = VisitLog()
    presence = _presence_devices(index)
    if phase == "after":
        missing = sorted({r.room for r in index.site.residents} - set(presence))
        if missing:
            msg = f"rooms without a presence device: {', '.join(missing)}"
            raise ValueError(msg)
    night = first
    while night <= last:
        lo, hi = index.night_bounds(night)
        start, end = lo + plan.margin, hi - plan.margin
        if phase == "after":
            for device_id in sorted(set(presence.values())):
                beats = log.presence_times.setdefault(device_id, [])
                t = lo.timestamp()
                while t < hi.timestamp():
                    beats.append(t)
                    t += 3600
        for resident in index.site.residents:
            rng = random.Random(f"{seed}:visits:{phase}:{night}:{resident.id}")
            p = index.benefit_for(resident.id)
            n = _Night(
                phase,
                index.site.site,
                resident.id,
                resident.room,
                presence.get(resident.room),
                start,
                end,
                rng,
                plan,
                log,
            )
            for _ in range(_poisson(rng, plan.calls)):
                n.visit(plan.call_minutes, reason="call")
            if phase == "before":
                checks, others = _scheduled(index, resident.id)
                for i in range(checks):
                    if i and rng.random() < plan.skip_probability:
                        continue
                    # spread over the night, each up to half an hour late
                    planned = start + (end - start) * (i / checks)
                    n.visit(p["check_minutes"], planned + timedelta(minutes=rng.uniform(0, 30)))
                for _ in range(_poisson(rng, plan.extra_rounds)):
                    n.visit(p["check_minutes"])
                for minutes in others:
                    n.visit(minutes, reason="care")
            else:
                for _ in range(round(p["retained_checks_per_night"])):
                    n.visit(p["check_minutes"])
                for _ in range(_poisson(rng, plan.alarms)):
                    n.visit(plan.alarm_minutes, reason="alarm")
        night += timedelta(days=1)
    log.visits.sort(key=lambda v: (v.entered_at, v.room or "", v.resident_id or ""))
    return log
