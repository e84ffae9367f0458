"""Reconnect waits: exponential, capped, jittered, and back to short once connected."""

from __future__ import annotations

import random

from firmware_sim.runtime import BACKOFF_CAP_S, Backoff


def test_backoff_grows_to_the_cap_with_jitter_and_resets() -> None:
    assert {Backoff(random.Random(i)).next() for i in range(50)} == {1}  # the first is quick
    b = Backoff(random.Random(1))
    seq = [b.next() for _ in range(12)]
    assert all(1 <= w <= min(BACKOFF_CAP_S, 2**n) for n, w in enumerate(seq))
    assert max(seq) > 8  # it grows ...
    assert max(seq) <= BACKOFF_CAP_S  # ... to the cap
    late = [Backoff(random.Random(i)) for i in range(40)]
    for x in late:
        for _ in range(8):
            x.next()
    assert len({x.next() for x in late}) > 10  # devices do not all come back at once
    b.reset()
    assert b.next() == 1
