"""Fault injection (`carehub sim --faults ...`): what goes wrong with real devices, on purpose.

Each fault has a rate and seeded randomness of its own, and acts on the stream of emissions,
so the same seed gives the same faults. Every message a fault touched says so in
`Emission.what` (`fault:duplicate`, ...), which is how tests check that a fault did what it
says and that the gateway noticed.

- `silent` (per device): from a random moment on, the device sends nothing (a flat battery, a
  hung firmware); the broker announces its last will, `offline`.
- `flaky` (per device): the link drops now and then, for 10-120 s; messages wait in the device
  and go out, in order and with their original time, once it is back.
- `duplicate` (per message): delivered twice, as a QoS 1 redelivery is: same seq, same bytes.
- `reorder` (per message): held back until the device's next message has gone out.
- `late` (per message): arrives 1-10 minutes after it was made, with its original time.
- `malformed` (per message): the payload is broken: not JSON, wrong types, binary, oversize.
- `clock_skew` (per device): the device's clock is 2-6 hours off (the gateway's is not).
"""

from __future__ import annotations

import heapq
import itertools
import json
import math
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta

from firmware_sim.world import Emission

DISCONNECT = "fault:disconnect"
"""Control: the runtime drops that device's connection (it reconnects by itself)."""
SILENCE = "fault:silent"
"""Control: the device dies; the runtime cuts its connection for good (its will fires)."""
MALFORMED_PAYLOADS = (
    b"{not json",
    b"\xff\xfe\x00binary junk\x00",
    b"[]",
    # wrong types for every model's fields at once
    b'{"v": "one", "seq": -1, "ts": 5, "type": 7, "water_leak": "yes", "presence": "x",'
    b' "occupancy": "x", "fall_state": "x", "state": 3, "cnt": "x", "event": 9, "device": 1}',
    b'{"blob": "' + b"x" * 5000 + b'"}',  # over the 4 KiB limit
)


@dataclass(frozen=True, slots=True)
class Faults:
    """Rates of each fault, 0..1; all zero means a well-behaved home."""

    silent: float = 0.0
    flaky: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    late: float = 0.0
    malformed: float = 0.0
    clock_skew: float = 0.0

    @classmethod
    def parse(cls, text: str | None) -> Faults:
        """`silent=0.05,duplicate=0.02` (a bare name means 0.1); ValueError says what is wrong."""
        if not text:
            return cls()
        known = {f.name for f in fields(cls)}
        values: dict[str, float] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            name, _, rate = part.partition("=")
            name = name.strip().replace("-", "_")
            if name not in known:
                msg = f"unknown fault {name!r}; known: {', '.join(sorted(known))}"
                raise ValueError(msg)
            try:
                value = float(rate) if rate else 0.1
            except ValueError:
                msg = f"fault {name}: rate {rate!r} is not a number"
                raise ValueError(msg) from None
            if not 0 <= value <= 1:
                msg = f"fault {name}: rate {value} is not between 0 and 1"
                raise ValueError(msg)
            values[name] = value
        return cls(**values)

    @property
    def any(self) -> bool:
        """Whether any fault is on."""
        return any(getattr(self, f.name) for f in fields(self))

    def __str__(self) -> str:
        on = [f"{f.name}={getattr(self, f.name):g}" for f in fields(self) if getattr(self, f.name)]
        return ",".join(on) or "none"


def _shift(stamp: str, hours: float) -> str:
    """An RFC 3339 time moved by `hours`."""
    when = datetime.fromisoformat(stamp.replace("Z", "+00:00")) + timedelta(hours=hours)
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def skew(payload: bytes, hours: float) -> bytes:
    """The payload with its device time moved by `hours` (native `ts`, wetsense `time`,
    medcloud `occurred_at`); payloads without a device time are left alone."""
    try:
        body = json.loads(payload)
    except ValueError:
        return payload
    if not isinstance(body, dict):
        return payload
    if isinstance(body.get("ts"), str):
        body["ts"] = _shift(body["ts"], hours)
    elif isinstance(body.get("time"), int):
        body["time"] += int(hours * 3600)
    elif isinstance(body.get("occurred_at"), str):
        body["occurred_at"] = _shift(body["occurred_at"], hours)
    else:
        return payload
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass(slots=True)
class _DeviceFaults:
    """What is wrong with one device, drawn when it first speaks."""

    silent_from: float
    skew_h: float
    flaky: bool
    next_drop: float
    up_at: float = 0.0
    dead: bool = False
    status: Emission | None = None
    """Its last `online` announcement, from which its will is made."""


def inject(stream: Iterable[Emission], faults: Faults, seed: int = 1) -> Iterator[Emission]:
    """The stream with the faults applied, still in send order."""
    if not faults.any:
        yield from stream
        return
    rng = random.Random(f"{seed}:faults")
    devices: dict[str, _DeviceFaults] = {}
    delayed: list[tuple[float, int, Emission]] = []
    held: dict[str, Emission] = {}
    order = itertools.count()

    def device(e: Emission) -> _DeviceFaults:
        state = devices.get(e.device_id)
        if state is None:
            drng = random.Random(f"{seed}:faults:{e.device_id}")
            t = e.t
            silent = drng.random() < faults.silent
            silent_from = t + drng.uniform(600, 4 * 3600) if silent else math.inf
            skewed = drng.random() < faults.clock_skew
            skew_h = drng.choice((-1, 1)) * drng.uniform(2, 6) if skewed else 0.0
            flaky = drng.random() < faults.flaky
            state = _DeviceFaults(silent_from, skew_h, flaky, t + drng.uniform(300, 1800))
            devices[e.device_id] = state
        return state

    def later(e: Emission) -> None:
        heapq.heappush(delayed, (e.t, next(order), e))

    last = [datetime.fromtimestamp(0, UTC)]

    def out(e: Emission) -> Iterator[Emission]:
        t = e.t
        while delayed and delayed[0][0] <= t:
            yield heapq.heappop(delayed)[2]
        last[0] = e.at
        yield e

    def will(st: _DeviceFaults, at: datetime) -> Emission | None:
        if st.status is None:
            return None
        offline = st.status.payload.replace(b"online", b"offline")
        return replace(st.status, at=at, payload=offline, what="status")

    for e in stream:
        if e.channel == "control":  # what the staff did is not a message: nothing goes wrong
            yield from out(e)
            continue
        st = device(e)
        if st.dead:
            continue
        t = e.t
        if t >= st.silent_from:
            st.dead = True
            held.pop(e.device_id, None)  # it died before sending that one
            yield from out(_control(e, SILENCE, b""))
            lwt = will(st, e.at)
            if lwt is not None:
                yield from out(lwt)
            continue
        if e.what == "status":
            st.status = e
            yield from out(e)
            continue
        if st.skew_h:
            e = replace(e, payload=skew(e.payload, st.skew_h), what="fault:clock_skew")
        if st.flaky and e.channel == "mqtt":
            if t >= st.next_drop:
                outage = rng.uniform(10, 120)
                st.up_at = t + outage
                st.next_drop = st.up_at + rng.uniform(600, 3600)
                yield from out(_control(e, DISCONNECT, f"{outage:.1f}".encode()))
                lwt = will(st, e.at)
                if lwt is not None:
                    yield from out(lwt)
                    back = datetime.fromtimestamp(st.up_at, UTC)
                    assert st.status is not None
                    later(replace(st.status, at=back))
            if t < st.up_at:  # waits in the device until the link is back
                later(replace(e, at=datetime.fromtimestamp(st.up_at, UTC)))
                continue
        if rng.random() < faults.malformed:
            e = replace(e, payload=rng.choice(MALFORMED_PAYLOADS), what="fault:malformed")
        if rng.random() < faults.late:
            at = datetime.fromtimestamp(t + rng.uniform(60, 600), UTC)
            later(replace(e, at=at, what="fault:late"))
            continue
        before = held.pop(e.device_id, None)
        if before is not None:  # this one overtakes the one held back
            yield from out(e)
            yield from out(replace(before, at=e.at, what="fault:reorder"))
            continue
        if rng.random() < faults.reorder:
            held[e.device_id] = e
            continue
        yield from out(e)
        if rng.random() < faults.duplicate:
            yield from out(replace(e, what="fault:duplicate"))
    for e in held.values():  # the stream ended before these devices spoke again
        later(replace(e, at=max(e.at, last[0]), what="fault:reorder"))
    while delayed:
        yield heapq.heappop(delayed)[2]


def _control(e: Emission, what: str, payload: bytes) -> Emission:
    """An instruction to the runtime, in the stream at `e`'s time."""
    return Emission(e.at, e.device_id, "", payload, 0, False, what, "control")
