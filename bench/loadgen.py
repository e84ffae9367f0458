"""A paced load generator in its own process: `python -m bench.loadgen CONFIG_JSON`.

Its own process so that building and sending messages never competes with the hub (or the
benchmark's probes) for a GIL. Offers `rate` msg/s of native uplinks from `devices` for
`duration` seconds (or until SIGTERM), then waits for the broker's PUBACKs and prints one
JSON line: {"sent", "acked", "seconds", "rate", "seq_end"}.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.messages import Stream, rfc3339
from bench.wire import RawPublisher

TICK_S = 0.005


@dataclass(frozen=True, slots=True)
class LoadConfig:
    """What to offer, where."""

    host: str
    port: int
    site: str
    devices: list[tuple[str, str]] = field(default_factory=list)
    rate: float = 1000.0
    duration: float = 10.0
    seq_start: int = 1
    prefix: str = "carehub"
    client_id: str = "bench-load"

    def to_json(self) -> str:
        """For the command line of the child process."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> LoadConfig:
        """Back from `to_json`."""
        data: dict[str, Any] = json.loads(text)
        data["devices"] = [(str(d), str(k)) for d, k in data["devices"]]
        return cls(**data)


def offer(config: LoadConfig, stop: threading.Event) -> dict[str, Any]:
    """Publish at `config.rate` until `config.duration` passes or `stop` is set."""
    pub = RawPublisher(config.host, config.port, config.client_id)
    stream = Stream(config.prefix, config.site, config.devices, config.seq_start)
    began = time.monotonic()
    end = began + config.duration
    try:
        while not stop.is_set():
            now = time.monotonic()
            if now >= end:
                break
            due = int(config.rate * (now - began)) - pub.sent
            if due > 0:
                pub.publish(stream.take(due, rfc3339()))
            else:
                pub.drain(block=TICK_S)
        seconds = time.monotonic() - began
        pub.wait_acked(timeout=30.0)
    finally:
        pub.close()
    return {
        "sent": pub.sent,
        "acked": pub.acked,
        "seconds": seconds,
        "rate": pub.sent / seconds if seconds else 0.0,
        "seq_end": stream.seq + 1,
    }


def main() -> None:
    """Entry point of the child process."""
    config = LoadConfig.from_json(sys.argv[1])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    result = offer(config, stop)
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
