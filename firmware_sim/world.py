"""The simulated care home: residents living their days and nights, devices reporting them.

A pure, seeded discrete-event simulation. `CareHome(site, start, seed).emissions(until)` yields
every message the home's devices send, in time order, as `Emission`s — the same seed gives the
same home, byte for byte. Publishing them (MQTT, webhook) or ingesting them (backfill) is
someone else's job, so one stream serves `carehub sim`, the demo and `carehub backfill`.

Each resident gets a profile from the seed: when they go to bed and how often they wake, how
often they fall (most never; a few do), how fast their diaper fills, whether the night dose is
taken on time. The simulator plays the staff too, where staff touch devices: a fall is cleared
once someone has come, a saturated diaper is changed (detached, attached, a fresh diaper reading
≈ 0), a jammed dispenser is fixed, a flat battery replaced. By day the home is quieter: residents
are up and often out of their rooms, falls are rarer, diapers are changed on the day round.
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from carehub.site import Binding, Site, SiteIndex
from carehub.topics import SiteTopics
from firmware_sim.encoders import Channel, DeviceState, encode, firmware_time, seen_level

DAY_S = 86_400.0
FALL_REPEAT_S = 30.0
"""docs/devices.md: a fall device repeats `fall` every 30 s until `fall_cleared`."""
RADAR_REPORT_S = 30.0
"""docs/devices.md: the radar reports every 30 s."""
SATURATION_EVERY_S = 300.0
"""docs/devices.md: saturation every 5 min while worn ..."""
SATURATION_STEP = 10.0
"""... and at once on a change of this many points."""
NIGHT_DOSE = time(22, 0)
DAY_CHANGES = (time(7, 30), time(11, 0), time(14, 30), time(18, 0))
"""The day staff change every diaper at these local times, whatever it reads."""
NIGHT_MARGIN_S = 1800.0
"""Heartbeat pacing treats this much before and after the night window as night."""
PLAN_AT = time(12, 0)
"""Each local day is planned at noon, so one plan holds one whole night."""

EmissionKind = Literal["mqtt", "webhook", "control"]


@dataclass(frozen=True, slots=True)
class Emission:
    """One message leaving a device (or, on channel `control`, an instruction to the runtime).

    `at` is when it is sent: the broker's or webhook's receive time. `what` names what it is —
    heartbeat, fall, saturation, status, or a fault (`fault:duplicate`, ...) — for tests, the
    backfill and the status line. A `staff:check` marker (a digital check) is about a resident,
    not a device: its `device_id` is empty.
    """

    at: datetime
    device_id: str
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    what: str = ""
    channel: EmissionKind = "mqtt"

    @property
    def t(self) -> float:
        """`at` as Unix seconds, for arithmetic."""
        return self.at.timestamp()


@dataclass(frozen=True, slots=True)
class Pacing:
    """How far apart periodic reports are, in multiples of their interval, by night and day.

    Live runs send every heartbeat (1, 1). A backfill may send fewer: supervision allows three
    intervals of silence, and the reports look at nights only (`app.backfill`). By
    day, the diaper's periodic saturation report is paced like a heartbeat too.
    """

    night: float = 1.0
    day: float = 1.0

    def __post_init__(self) -> None:
        if not 0 < self.night < 3:
            msg = "night pacing must be below 3: supervision allows 3 intervals of silence"
            raise ValueError(msg)
        if self.day <= 0:
            msg = "day pacing must be positive"
            raise ValueError(msg)


LIVE = Pacing()


@dataclass(frozen=True, slots=True)
class Profile:
    """How one resident tends to live, drawn from the seed."""

    bedtime_h: float
    """Local hour they go to bed (20.5 = 20:30)."""
    rise_h: float
    wakings: float
    """Chance, for each of four slots of the night, that they wake for a while."""
    falls_per_night: float
    void_every_min: float
    void_step: tuple[float, float]
    dose_late: float
    dose_missed: float


def draw_profile(rng: random.Random) -> Profile:
    """Most residents never fall; about one in five falls now and then; a few often."""
    u = rng.random()
    falls = 0.0 if u < 0.7 else 0.02 if u < 0.9 else 0.12
    continent = rng.random() < 0.25
    return Profile(
        bedtime_h=rng.uniform(20.5, 22.5),
        rise_h=rng.uniform(6.0, 7.75),
        wakings=rng.uniform(0.05, 0.4),
        falls_per_night=falls,
        void_every_min=rng.uniform(240, 400) if continent else rng.uniform(70, 150),
        void_step=(6, 14) if continent else (12, 30),
        dose_late=rng.uniform(0.03, 0.15),
        dose_missed=rng.uniform(0.0, 0.05),
    )


@dataclass(slots=True)
class _Resident:
    """What the simulation needs to know about a resident right now."""

    awake: bool = True
    in_room: bool = True
    in_bed: bool = False


@dataclass(order=True, slots=True)
class _Item:
    t: float
    n: int
    action: str = field(compare=False)
    args: tuple[Any, ...] = field(compare=False, default=())


class CareHome:
    """A site's residents and devices, simulated from `start` on."""

    def __init__(
        self,
        site: Site,
        start: datetime,
        seed: int = 1,
        prefix: str = "carehub",
        pacing: Pacing = LIVE,
    ) -> None:
        self.site = site
        self.index = SiteIndex(site)
        self.seed = seed
        self.prefix = prefix
        self.pacing = pacing
        self.start = start.astimezone(UTC).timestamp()
        self.profiles = {
            r.id: draw_profile(random.Random(f"{seed}:resident:{r.id}")) for r in site.residents
        }
        self._rules = {r.id: self.index.rules_for(r.id) for r in site.residents}
        self._site_rules = self.index.rules_for(None)
        self._reset()

    def _reset(self) -> None:
        """Fresh devices and an empty agenda: every `emissions()` replays the same home."""
        self._heap: list[_Item] = []
        self._n = itertools.count()
        self._rng = random.Random(f"{self.seed}:world")
        self.devices: dict[str, DeviceState] = {
            device_id: self._device(device_id, bindings[0])
            for device_id, bindings in self.index.bindings.items()
        }
        self.residents = {r.id: _Resident() for r in self.site.residents}
        self._nights: list[tuple[float, float]] = []
        self._fall_until: dict[str, float] = {}
        self._change_pending: set[str] = set()
        self._battery_pending: set[str] = set()

    # --- set-up ---------------------------------------------------------------------------

    def _device(self, device_id: str, binding: Binding) -> DeviceState:
        """A device's firmware state, seeded per device so adding one changes no other."""
        rng = random.Random(f"{self.seed}:device:{device_id}")
        topics = SiteTopics(self.prefix, self.site.site)
        vendor = self.index.device_topics.get(device_id)
        topic = topics.device_up(device_id)
        status: str | None = topics.device_status(device_id)
        words = (b"online", b"offline")
        if binding.model == "medcloud-webhook":
            topic, status = topics.webhook("medcloud"), None  # the vendor cloud posts for it
        elif vendor:
            status = f"{vendor}/availability"
            words = (b'{"state":"online"}', b'{"state":"offline"}')
        interval = binding.heartbeat_seconds
        if binding.model == "mmwave-radar":
            interval = min(interval, RADAR_REPORT_S)
        return DeviceState(
            device_id=device_id,
            kind=binding.kind.value,
            model=binding.model,
            topic_up=topic,
            vendor_topic=vendor,
            status_topic=status,
            status_words=words,
            heartbeat_s=interval,
            seq=rng.randrange(0, 5000),
            battery=rng.uniform(45, 100),
            drain_per_day=rng.uniform(0.3, 1.5),
            rssi=rng.uniform(-85, -50),
            clock_offset_s=rng.gauss(0, 0.4),
            drift_ppm=rng.gauss(0, 15),
            epoch=self.start,
        )

    def _push(self, t: float, action: str, *args: Any) -> None:
        """Put an action on the agenda; ties keep the order they were pushed in."""
        heapq.heappush(self._heap, _Item(t, next(self._n), action, args))

    def binding(self, device_id: str, t: float) -> Binding | None:
        """The device's binding in force at `t`."""
        return self.index.binding_at(device_id, datetime.fromtimestamp(t, UTC))

    def devices_of(self, resident_id: str, kind: str, t: float) -> list[str]:
        """Devices of `kind` serving the resident at `t` (room devices count for the room)."""
        room = self.index.residents[resident_id].room
        out = []
        for device_id in self.index.bindings:
            b = self.binding(device_id, t)
            if b is None or b.kind.value != kind:
                continue
            if b.resident == resident_id or (b.room is not None and b.room == room):
                out.append(device_id)
        return out

    def local(self, day: date, at: time) -> float:
        """Unix seconds of a local wall-clock time at the site."""
        return datetime.combine(day, at, tzinfo=self.index.tz).astimezone(UTC).timestamp()

    def _local_h(self, day: date, hours: float) -> float:
        """Unix seconds of `hours` past local midnight on the wall clock (DST-proof)."""
        midnight = datetime.combine(day, time(0), tzinfo=self.index.tz)
        return (midnight + timedelta(hours=hours)).timestamp()

    def is_night(self, t: float) -> bool:
        """Inside a planned night window (with its margins): heartbeats at night pacing."""
        return any(lo <= t < hi for lo, hi in self._nights)

    # --- the stream -----------------------------------------------------------------------

    def emissions(self, until: datetime | None = None) -> Iterator[Emission]:
        """Every message from start until `until` (None: forever), in send order."""
        end = math.inf if until is None else until.astimezone(UTC).timestamp()
        self._reset()
        start_day = datetime.fromtimestamp(self.start, self.index.tz).date()
        for day in (start_day - timedelta(days=1), start_day):
            lo, hi = (x.timestamp() for x in self.index.night_bounds(day))
            self._nights.append((lo - NIGHT_MARGIN_S, hi + NIGHT_MARGIN_S))
        for device_id, dev in self.devices.items():
            jitter = random.Random(f"{self.seed}:hb:{device_id}").uniform(0, dev.heartbeat_s)
            if dev.status_topic is not None:
                self._push(self.start + jitter / 10, "status", device_id, True)
            self._push(self.start + jitter, "heartbeat", device_id)
            if dev.kind == "diaper":
                self._push(self.start + jitter / 2, "saturation_tick", device_id)
        current = start_day
        if self.local(start_day, PLAN_AT) > self.start:
            current -= timedelta(days=1)
        nxt = current + timedelta(days=1)
        self._push(self.start, "plan_day", current, self.start)
        self._push(self.local(nxt, PLAN_AT), "plan_day", nxt, None)
        while self._heap:
            item = heapq.heappop(self._heap)
            if item.t >= end:
                return
            yield from getattr(self, f"_on_{item.action}")(item.t, *item.args)

    def _send(
        self, t: float, device_id: str, etype: str, fields: dict[str, Any] | None = None
    ) -> Iterator[Emission]:
        """The device sends a message of `etype`, in its own model's format."""
        dev = self.devices[device_id]
        at = datetime.fromtimestamp(t, UTC)
        wires = encode(dev, t, etype, fields or {})
        what = "fall" if dev.falling and etype == "heartbeat" else etype  # a radar's repeat
        for w in wires:
            yield Emission(at, device_id, w.topic, w.payload, 1, False, what, _kind(w.channel))
        if wires and dev.kind == "diaper":
            level = seen_level(dev, etype)
            if level is not None:
                self._diaper_seen(t, dev, level)

    def _staff(
        self, t: float, device_id: str, action: str, rule: str, outcome: str | None = None
    ) -> None:
        """Note what the simulated staff do about an alarm, for the backfill to replay."""
        self._push(t, "staff", device_id, action, rule, outcome)

    def _on_staff(
        self, t: float, device_id: str, action: str, rule: str, outcome: str | None
    ) -> Iterator[Emission]:
        """A staff marker (channel `control`): the backfill does what it says."""
        body = {"action": action, "rule": rule}
        if outcome is not None:
            body["outcome"] = outcome
        payload = json.dumps(body, separators=(",", ":")).encode()
        at = datetime.fromtimestamp(t, UTC)
        yield Emission(at, device_id, "", payload, 0, False, f"staff:{action}", "control")

    # --- devices --------------------------------------------------------------------------

    def _on_status(self, t: float, device_id: str, online: bool) -> Iterator[Emission]:
        """The retained `online` a device announces when it connects (its will says offline)."""
        dev = self.devices[device_id]
        assert dev.status_topic is not None
        word = dev.status_words[0 if online else 1]
        at = datetime.fromtimestamp(t, UTC)
        yield Emission(at, device_id, dev.status_topic, word, 1, True, "status")

    def _on_heartbeat(self, t: float, device_id: str) -> Iterator[Emission]:
        """The periodic heartbeat: battery drains, signal wanders, a low battery gets changed."""
        dev = self.devices[device_id]
        rng = self._rng
        stride = self.pacing.night if self.is_night(t) else self.pacing.day
        dev.battery = max(0.0, dev.battery - dev.drain_per_day * dev.heartbeat_s * stride / DAY_S)
        dev.rssi = max(-100.0, min(-30.0, dev.rssi + rng.gauss(0, 0.8)))
        self._push(t + dev.heartbeat_s * stride + rng.uniform(-1, 1), "heartbeat", device_id)
        binding = self.binding(device_id, t)
        if binding is None:
            return
        residents = self.index.residents_of(binding)
        if dev.model == "mmwave-radar":
            self._radar_sees(dev, residents, rng)
        low = self._rules.get(residents[0]) if len(residents) == 1 else None
        threshold = (low or self._site_rules).battery_low.threshold
        if dev.battery <= threshold and device_id not in self._battery_pending:
            self._battery_pending.add(device_id)  # the alarm is seen; the day round changes it
            ack = random.Random(f"{self.seed}:batack:{device_id}:{t:.0f}").uniform(20, 120)
            self._staff(t + ack * 60, device_id, "ack", "battery_low")
            self._push(self._battery_round(t, device_id), "battery", device_id)
        fields = {"battery": round(dev.battery, 1), "rssi": round(dev.rssi)}
        yield from self._send(t, device_id, "heartbeat", fields)

    def _radar_sees(self, dev: DeviceState, residents: list[str], rng: random.Random) -> None:
        """Presence and movement in the room, from what its residents are doing."""
        here = [self.residents[r] for r in residents if self.residents[r].in_room]
        dev.extra["presence"] = 1 if here else 0
        if not here:
            dev.extra["movement"] = 0
        elif any(r.awake for r in here):
            dev.extra["movement"] = 2 if rng.random() < 0.6 else 1
        else:
            dev.extra["movement"] = 1  # asleep: breathing is 'still'

    def _battery_round(self, t: float, device_id: str) -> float:
        """Staff change low batteries on the next day round (10:00-14:00 local)."""
        rng = random.Random(f"{self.seed}:battery:{device_id}:{t:.0f}")
        day = datetime.fromtimestamp(t + 2 * 3600, self.index.tz).date()
        at = self.local(day, time(10)) + rng.uniform(0, 4 * 3600)
        return at if at > t + 2 * 3600 else at + DAY_S

    def _on_battery(self, t: float, device_id: str) -> Iterator[Emission]:
        """The day round's new battery."""
        dev = self.devices[device_id]
        self._battery_pending.discard(device_id)
        dev.battery = random.Random(f"{self.seed}:newbat:{device_id}:{t:.0f}").uniform(97, 100)
        return iter(())

    def _on_saturation_tick(self, t: float, device_id: str) -> Iterator[Emission]:
        """The diaper's periodic saturation report, while worn."""
        dev = self.devices[device_id]
        stride = 1.0 if self.is_night(t) else self.pacing.day  # a periodic report, like a beat
        self._push(t + SATURATION_EVERY_S * stride, "saturation_tick", device_id)
        if dev.worn and dev.model == "carehub-v1" and self.binding(device_id, t) is not None:
            yield from self._report_saturation(t, dev)

    def _report_saturation(self, t: float, dev: DeviceState) -> Iterator[Emission]:
        """A native saturation report; remembered, for the 10-point rule."""
        level = round(dev.saturation)
        dev.extra["reported"] = level
        yield from self._send(t, dev.device_id, "saturation", {"level": level})

    # --- residents ------------------------------------------------------------------------

    def _on_plan_day(self, t: float, day: date, only_after: float | None) -> Iterator[Emission]:
        """Lay out one local day from noon to noon, so a night is one plan.

        `only_after`: the plan of the day the simulation starts in, of which only what comes
        after the start happens.
        """
        nxt = day + timedelta(days=1)
        since = only_after if only_after is not None else t
        if only_after is None:
            self._push(self.local(nxt, PLAN_AT), "plan_day", nxt, None)
            lo, hi = (x.timestamp() for x in self.index.night_bounds(day))
            self._nights = [*self._nights[-1:], (lo - NIGHT_MARGIN_S, hi + NIGHT_MARGIN_S)]
        noon, next_noon = self.local(day, PLAN_AT), self.local(nxt, PLAN_AT)
        for resident in self.site.residents:
            rng = random.Random(f"{self.seed}:{resident.id}:{day.isoformat()}")
            profile = self.profiles[resident.id]
            self._plan_resident(rng, resident.id, profile, day, since, (noon, next_noon))
        return iter(())

    def _plan_resident(
        self,
        rng: random.Random,
        rid: str,
        profile: Profile,
        day: date,
        since: float,
        span: tuple[float, float],
    ) -> None:
        """One resident's day and night, drawn from their own seeded stream."""
        noon, next_noon = span

        def at(when: float, action: str, *args: Any) -> None:
            if since <= when < next_noon:
                self._push(when, action, *args)

        # the day: in and out of their room; to bed; wakings in the night; up in the morning
        v = noon + rng.uniform(0, 3600)
        bed = self._local_h(day, profile.bedtime_h + rng.gauss(0, 0.3))
        rise = self._local_h(day + timedelta(days=1), profile.rise_h + rng.gauss(0, 0.3))
        if since > noon:  # the simulation starts within this plan: where are they now?
            state = self.residents[rid]
            state.awake = not bed <= since < rise
            state.in_room = state.in_room or not state.awake
            state.in_bed = not state.awake
        while v < bed - 1800:
            at(v, "room", rid, rng.random() < 0.45)
            v += rng.uniform(1800, 7200)
        at(bed - 600, "room", rid, True)
        at(bed, "sleep", rid)
        wakings: list[tuple[float, float]] = []
        slot = (rise - bed) / 4
        for k in range(4):
            if rng.random() < profile.wakings:
                w = bed + slot * (k + rng.uniform(0.1, 0.7))
                wakings.append((w, rng.uniform(5, 35) * 60))
        for w, length in wakings:
            at(w, "wake", rid)
            at(w + length, "sleep", rid)
        at(rise, "wake", rid)
        at(rise + rng.uniform(1800, 5400), "room", rid, False)
        for when, in_bed in self._bed_plan(rid, day, bed, rise, wakings):
            at(when, "bed", rid, in_bed)
        # falls: at night while up (or getting up), by day a third as often
        if rng.random() < profile.falls_per_night:
            if wakings:
                w, length = wakings[rng.randrange(len(wakings))]
                when = w + rng.uniform(0, length)
            else:
                when = rng.uniform(bed, rise)
                at(when - 1, "wake", rid)
            at(when, "fall", rid, rng.random())
        if rng.random() < profile.falls_per_night / 3:
            at(rng.uniform(noon, bed), "fall", rid, rng.random())
        if rng.random() < 0.02:  # a wardrobe door, a dropped blanket
            at(rng.uniform(noon, next_noon), "false_fall", rid)
        # voids
        v = noon + rng.expovariate(1 / (profile.void_every_min * 60))
        while v < next_noon:
            at(v, "void", rid, rng.uniform(*profile.void_step))
            v += rng.expovariate(1 / (profile.void_every_min * 60))
        for round_at in DAY_CHANGES:
            change_day = day if round_at >= PLAN_AT else day + timedelta(days=1)
            at(self.local(change_day, round_at) + rng.uniform(-600, 600), "change", rid)
        # the night dose: offered at 22:00, then dispensed and (mostly) taken
        u = rng.random()
        outcome = (
            "fault"
            if u < 0.01
            else "missed"
            if u < 0.01 + profile.dose_missed
            else "late"
            if u < 0.01 + profile.dose_missed + profile.dose_late
            else "on_time"
        )
        due = self.local(day, NIGHT_DOSE)
        at(due + rng.uniform(0, 90), "dose", rid, f"night-{day.isoformat()}", outcome, rng.random())
        self._plan_checks(rid, day, at)

    def _plan_checks(self, rid: str, day: date, at: Callable[..., None]) -> None:
        """The night staff's digital checks: the care plan's `checks_per_night`, spread evenly
        over the night window as the round page spreads them (docs/round.md), each done a few
        minutes after its moment. Their own seeded stream, so the rest of the home is as
        before."""
        rng = random.Random(f"{self.seed}:checks:{rid}:{day.isoformat()}")
        planned = round(self.index.benefit_for(rid)["checks_per_night"])
        if planned <= 0:
            return
        lo, hi = (x.timestamp() for x in self.index.night_bounds(day))
        slot = (hi - lo) / planned
        for k in range(planned):
            at(lo + slot * k + rng.uniform(2, min(25, slot / 60 - 1)) * 60, "check", rid)

    def _bed_plan(
        self, rid: str, day: date, bed: float, rise: float, wakings: list[tuple[float, float]]
    ) -> list[tuple[float, bool]]:
        """When the resident lies down on and gets up from the bed mat this night.

        Into bed at bedtime, out at rising; most wakings are a trip to the bathroom (a few
        minutes out of bed); about one night in eight is restless, with several short exits
        and one long one. Drawn from a stream of its own, so the rest of the plan is the same
        with or without bed sensors.
        """
        rng = random.Random(f"{self.seed}:bed:{rid}:{day.isoformat()}")
        trips: list[tuple[float, float]] = []
        for w, length in wakings:
            if rng.random() < 0.8:
                out = w + rng.uniform(0.5, 3) * 60
                trips.append((out, min(length, rng.uniform(3, 9) * 60)))
        if rng.random() < 0.12:  # a restless night
            for _ in range(rng.randint(2, 5)):
                trips.append((rng.uniform(bed + 1800, rise - 1800), rng.uniform(2, 6) * 60))
            trips.append((rng.uniform(bed + 3600, rise - 3600), rng.uniform(10, 25) * 60))
        plan: list[tuple[float, bool]] = [(bed + rng.uniform(30, 300), True)]
        free_from = plan[0][0]
        for out, length in sorted(trips):
            if out <= free_from or out + length >= rise:
                continue  # overlaps the trip before, or runs into the morning
            plan += [(out, False), (out + length, True)]
            free_from = out + length + 60
        plan.append((rise, False))
        return plan

    def _on_bed(self, t: float, rid: str, in_bed: bool) -> Iterator[Emission]:
        """Onto or off the bed mat; every bed sensor of the resident says so once."""
        state = self.residents[rid]
        if state.in_bed == in_bed:
            return
        state.in_bed = in_bed
        rule = self._rules[rid].bed_exit
        rng = random.Random(f"{self.seed}:bedstaff:{rid}:{t:.0f}")
        for device_id in self.devices_of(rid, "bed", t):
            yield from self._send(t, device_id, "in_bed" if in_bed else "out_of_bed")
            if in_bed:  # helped back to bed, if the alarm was still open (else no-op)
                self._staff(
                    t + rng.uniform(0.5, 2) * 60, device_id, "resolve", "bed_exit", "assisted"
                )
            elif self.index.is_night(datetime.fromtimestamp(t, UTC)) or not rule.night_only:
                # if it alarms, someone takes it 0.5-3 min after it does
                ack = t + (rule.minutes + rng.uniform(0.5, 3)) * 60
                self._staff(ack, device_id, "ack", "bed_exit")

    def _on_check(self, t: float, rid: str) -> Iterator[Emission]:
        """A digital check from the tablet (a `staff:check` marker): `ok` when the resident is
        asleep in bed and not on the floor, else `visit_needed`."""
        state = self.residents[rid]
        fallen = any(self._fall_until.get(d, 0.0) > t for d in self.devices_of(rid, "fall", t))
        ok = not state.awake and state.in_bed and not fallen
        body = {"action": "check", "resident_id": rid, "result": "ok" if ok else "visit_needed"}
        payload = json.dumps(body, separators=(",", ":")).encode()
        at = datetime.fromtimestamp(t, UTC)
        yield Emission(at, "", "", payload, 0, False, "staff:check", "control")

    def _on_room(self, _t: float, rid: str, in_room: bool) -> Iterator[Emission]:
        """In or out of their room (the radar sees it)."""
        self.residents[rid].in_room = in_room
        return iter(())

    def _on_sleep(self, t: float, rid: str) -> Iterator[Emission]:
        """Asleep, in bed."""
        state = self.residents[rid]
        state.awake, state.in_room = False, True
        yield from self._radar_change(t, rid)

    def _on_wake(self, t: float, rid: str) -> Iterator[Emission]:
        """Awake (a waking in the night, or the morning)."""
        self.residents[rid].awake = True
        yield from self._radar_change(t, rid)

    def _radar_change(self, t: float, rid: str) -> Iterator[Emission]:
        """A radar reports on change too: someone lay down or got up."""
        for device_id in self.devices_of(rid, "fall", t):
            dev = self.devices[device_id]
            binding = self.binding(device_id, t)
            if dev.model == "mmwave-radar" and binding is not None and not dev.falling:
                before = (dev.extra.get("presence"), dev.extra.get("movement"))
                self._radar_sees(dev, self.index.residents_of(binding), self._rng)
                if (dev.extra["presence"], dev.extra["movement"]) != before:
                    yield from self._send(t, device_id, "heartbeat", {})

    def _on_fall(self, t: float, rid: str, u: float) -> Iterator[Emission]:
        """A fall: the device reports it and repeats it until the staff have helped."""
        devices = self.devices_of(rid, "fall", t)
        if not devices:
            return
        device_id = devices[0]
        if self._fall_until.get(device_id, 0) > t:
            return  # already down in that room
        rng = random.Random(f"{self.seed}:fall:{device_id}:{t:.0f}")
        ack = t + rng.lognormvariate(math.log(90), 0.6)  # someone takes it, median 1.5 min
        arrive = ack + rng.uniform(1, 4) * 60
        clear_at = arrive + rng.uniform(3, 12) * 60  # helped up; the sensor is reset
        self._fall_until[device_id] = clear_at
        confidence = round(0.65 + 0.33 * u, 2)
        self._staff(ack, device_id, "ack", "fall")
        outcome = "assisted" if rng.random() < 0.9 else "no_action_needed"
        self._staff(clear_at, device_id, "resolve", "fall", outcome)
        yield from self._send(t, device_id, "fall", {"confidence": confidence})
        if self.devices[device_id].model != "mmwave-radar":  # the radar repeats on its own
            self._push(t + FALL_REPEAT_S, "fall_repeat", device_id, confidence)
        self._push(clear_at, "fall_cleared", device_id)

    def _on_false_fall(self, t: float, rid: str) -> Iterator[Emission]:
        """A doubtful fall (low confidence) that clears itself; no alarm."""
        devices = self.devices_of(rid, "fall", t)
        if devices and self._fall_until.get(devices[0], 0) <= t:
            if self.devices[devices[0]].model != "carehub-v1":
                return  # vendor sensors report no confidence: nothing doubtful to send
            yield from self._send(t, devices[0], "fall", {"confidence": 0.35})
            self._push(t + 20, "send", devices[0], "fall_cleared", {})

    def _on_fall_repeat(self, t: float, device_id: str, confidence: float) -> Iterator[Emission]:
        """docs/devices.md: the fall again, with a new seq, while not cleared."""
        if self._fall_until.get(device_id, 0) > t:
            yield from self._send(t, device_id, "fall", {"confidence": confidence})
            self._push(t + FALL_REPEAT_S, "fall_repeat", device_id, confidence)

    def _on_fall_cleared(self, t: float, device_id: str) -> Iterator[Emission]:
        """The resident is up again; the device is reset."""
        yield from self._send(t, device_id, "fall_cleared")

    def _on_void(self, t: float, rid: str, step: float) -> Iterator[Emission]:
        """The diaper gets wetter; reported at once on a rise of 10 points."""
        for device_id in self.devices_of(rid, "diaper", t):
            dev = self.devices[device_id]
            if not dev.worn:
                continue
            dev.saturation = min(100.0, dev.saturation + step)
            if dev.model != "carehub-v1":
                yield from self._send(t, device_id, "saturation", {"level": dev.saturation})
            elif abs(dev.saturation - dev.extra.get("reported", 0)) >= SATURATION_STEP:
                yield from self._report_saturation(t, dev)

    def _diaper_seen(self, t: float, dev: DeviceState, level: float) -> None:
        """The hub has just read `level`: at the resident's threshold, its alarm brings
        someone, who changes the diaper and closes the alarm."""
        binding = self.binding(dev.device_id, t)
        rid = binding.resident if binding is not None else None
        if rid is None or dev.device_id in self._change_pending or not dev.worn:
            return
        if level < self._rules[rid].diaper_change.threshold:
            return
        self._change_pending.add(dev.device_id)
        rng = random.Random(f"{self.seed}:chg:{dev.device_id}:{t:.0f}")
        ack = t + rng.uniform(2, 12) * 60
        change = ack + rng.uniform(4, 20) * 60
        self._staff(ack, dev.device_id, "ack", "diaper_change")
        self._staff(change, dev.device_id, "resolve", "diaper_change", "changed")
        self._push(change, "change", rid)

    def _on_change(self, t: float, rid: str) -> Iterator[Emission]:
        """Staff change the diaper: sensor off, a fresh diaper on, reading ≈ 0."""
        rng = random.Random(f"{self.seed}:change:{rid}:{t:.0f}")
        for device_id in self.devices_of(rid, "diaper", t):
            dev = self.devices[device_id]
            if not dev.worn:
                continue
            self._change_pending.discard(device_id)
            dev.worn = False
            yield from self._send(t, device_id, "detached")
            self._push(t + rng.uniform(60, 240), "attach", device_id, round(rng.uniform(0, 4)))

    def _on_attach(self, t: float, device_id: str, level: int) -> Iterator[Emission]:
        """A fresh diaper with the sensor on it."""
        dev = self.devices[device_id]
        dev.worn, dev.saturation = True, float(level)
        yield from self._send(t, device_id, "attached")
        self._push(t + 1, "fresh", device_id)

    def _on_fresh(self, t: float, device_id: str) -> Iterator[Emission]:
        """The first reading of a fresh diaper, a second after the sensor is on."""
        dev = self.devices[device_id]
        if dev.model == "carehub-v1":
            yield from self._report_saturation(t, dev)
        else:
            yield from self._send(t, device_id, "saturation", {"level": dev.saturation})

    def _on_dose(
        self, t: float, rid: str, dose_id: str, outcome: str, u: float
    ) -> Iterator[Emission]:
        """The night dose: offered, dispensed, then taken, late, missed or a fault."""
        devices = self.devices_of(rid, "medication", t)
        if not devices:
            return
        device_id = devices[0]
        rng = random.Random(f"{self.seed}:dose:{device_id}:{dose_id}:{outcome}")
        if outcome == "fault":  # jammed or empty: someone comes, fixes it, then the dose
            code = ("jam", "empty", "lid_open")[int(u * 3) % 3]
            yield from self._send(t, device_id, "fault", {"code": code})
            ack = t + rng.uniform(2, 8) * 60
            fixed = ack + rng.uniform(3, 12) * 60
            self._staff(ack, device_id, "ack", "device_fault")
            self._staff(fixed, device_id, "resolve", "device_fault", "other")
            self._push(fixed + 60, "dose", rid, dose_id, "on_time", u)
            return
        yield from self._send(
            t, device_id, "dose_due", {"dose_id": dose_id, "due": firmware_time(t)}
        )
        self._push(t + 20, "send", device_id, "dispensed", {"dose_id": dose_id})
        if outcome == "on_time":
            self._push(t + (1 + u * 19) * 60, "send", device_id, "taken", {"dose_id": dose_id})
            return
        # not taken within 30 min: the alarm brings someone
        ack = t + (30 + rng.uniform(1, 5)) * 60
        given = ack + rng.uniform(2, 10) * 60
        self._staff(ack, device_id, "ack", "dose_missed")
        self._staff(given, device_id, "resolve", "dose_missed", "dose_given")
        if outcome == "late":  # taken from the cup with someone beside them
            self._push(given + 5, "send", device_id, "taken", {"dose_id": dose_id})
        else:  # given by hand; the dispenser's own window runs out
            self._push(t + 3600, "send", device_id, "missed", {"dose_id": dose_id})

    def _on_send(
        self, t: float, device_id: str, etype: str, fields: dict[str, Any]
    ) -> Iterator[Emission]:
        """A message planned earlier (dispensed, taken, ...)."""
        yield from self._send(t, device_id, etype, fields)


def _kind(channel: Channel) -> EmissionKind:
    """The emission channel of an encoder's wire channel."""
    return "webhook" if channel == "webhook" else "mqtt"
