"""The backfill's second process: it generates the home while the first one ingests.

Run as `python -m firmware_sim.worker`: reads one pickle `(site, start, end, seed, prefix,
pacing)` from stdin and writes pickled batches of rows to stdout, then `None` (or a string
saying what failed). A process of its own rather than a `multiprocessing` child: spawning one
would run the caller's main module again (a script without a `__main__` guard runs twice),
and forking a process that has threads (the demo's) can deadlock the child.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import BinaryIO

from carehub.site import Site
from firmware_sim.world import CareHome, Pacing

BATCH = 4000
"""Rows per hand-over."""
Row = tuple[float, str, bytes, str, str]
"""(Unix seconds, topic, payload, what, device id): an emission, cheap to pickle."""


def rows(
    site: Site, start: datetime, end: datetime, seed: int, prefix: str, pacing: Pacing
) -> Iterator[list[Row]]:
    """The home's messages and staff markers in batches of plain tuples."""
    home = CareHome(site, start, seed=seed, prefix=prefix, pacing=pacing)
    batch: list[Row] = []
    for e in home.emissions(end):
        if e.channel == "control" and not e.what.startswith("staff:"):
            continue
        batch.append((e.t, e.topic, e.payload, e.what, e.device_id))
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def serve(source: BinaryIO, sink: BinaryIO) -> int:
    """Generate what `source` asks for into `sink`; the exit status."""
    site, start, end, seed, prefix, pacing = pickle.load(source)  # noqa: S301 - our parent
    try:
        for batch in rows(site, start, end, seed, prefix, pacing):
            pickle.dump(batch, sink, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.dump(None, sink)
        sink.flush()
    except BrokenPipeError:
        return 0  # the ingesting side stopped (Ctrl-C, an error): nothing more to do
    except Exception as err:  # noqa: BLE001 - reported to the parent, which raises it
        pickle.dump(f"{type(err).__name__}: {err}", sink)
        sink.flush()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(serve(sys.stdin.buffer, sys.stdout.buffer))
