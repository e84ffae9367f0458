"""The ceiling: Mosquitto's rate for the device messages, QoS 1, fast publisher → bare subscriber.

The publisher is `mosquitto_pub -l -q 1` reading prepared lines from a file (C, so it is never
the bottleneck); the subscriber is the gateway's own MQTT client (`carehub.mqtt.Client`:
paho-mqtt 2.x reading in batches) doing nothing but count. No consumer built on that client
can be faster than this on this machine, so every throughput figure is also given as a ratio
to it.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from bench.messages import Stream, rfc3339, uplink_topic
from bench.procs import BenchError, start_broker
from carehub.mqtt import Client

MAX_LINES = 60_000
"""`mosquitto_pub -l` at QoS 1 stops silently after 65,535 lines (its message ids wrap)."""
SITE = "benchhjem"
DEVICE = ("diaper-00001", "diaper")


def find_mosquitto_pub() -> str:
    """Path of mosquitto_pub, or a BenchError saying how to install it."""
    path = shutil.which("mosquitto_pub")
    if path is None:
        msg = "mosquitto_pub is not installed: apt-get install mosquitto-clients"
        raise BenchError(msg)
    return path


class CountingSubscriber:
    """The hub's client (MQTT 5, QoS 1, TCP_NODELAY) that only counts and times."""

    def __init__(self, host: str, port: int, topic: str) -> None:
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self._ready = threading.Event()
        self.client = Client(
            CallbackAPIVersion.VERSION2, client_id="bench-bare-sub", protocol=paho.MQTTv5
        )
        self.client.max_inflight_messages_set(1000)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self._ready.set()
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.connect(host, port)
        sock = self.client.socket()
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.loop_start()
        if not self._ready.wait(10):
            msg = "the bare subscriber could not subscribe"
            raise BenchError(msg)

    def _on_message(self, _c: Any, _u: Any, _m: Any) -> None:
        now = time.monotonic()
        if not self.count:
            self.first = now
        self.last = now
        self.count += 1

    def reset(self) -> None:
        """Start counting again."""
        self.count = 0

    def wait_for(self, n: int, timeout: float) -> bool:
        """Until n messages arrived (or timeout)."""
        deadline = time.monotonic() + timeout
        while self.count < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.count >= n

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


@dataclass(frozen=True, slots=True)
class BrokerLimit:
    """Messages per second at the subscriber, per repetition; the best is the ceiling."""

    runs: list[float]
    messages: int

    @property
    def best(self) -> float:
        """The ceiling."""
        return max(self.runs)


def measure(workdir: Path, messages: int, repeats: int, prefix: str = "carehub") -> BrokerLimit:
    """Publish `messages` (≤ 60,000) lines per repetition and time their arrival."""
    binary = find_mosquitto_pub()
    messages = min(messages, MAX_LINES)
    lines = workdir / "lines.txt"
    stream = Stream(prefix, SITE, [DEVICE])
    lines.write_bytes(b"\n".join(p for _t, p in stream.take(messages, rfc3339())) + b"\n")
    broker = start_broker(workdir / "mosquitto")
    topic = uplink_topic(prefix, SITE, DEVICE[0])
    sub = CountingSubscriber(broker.host, broker.port, f"{prefix}/{SITE}/devices/+/up")
    runs: list[float] = []
    command = [binary, "-h", broker.host, "-p", str(broker.port), "-i", "bench-pub"]
    command += ["-q", "1", "-t", topic, "-l"]  # QoS 1, one message per line of stdin
    try:
        for _ in range(repeats):
            sub.reset()
            with lines.open("rb") as stdin:
                pub = subprocess.run(
                    command,
                    stdin=stdin,
                    capture_output=True,
                    timeout=120,
                    check=False,
                )
            if pub.returncode != 0:
                msg = f"mosquitto_pub failed: {pub.stderr.decode()[-500:]}"
                raise BenchError(msg)
            if not sub.wait_for(messages, timeout=60):
                msg = f"the bare subscriber got {sub.count} of {messages} messages"
                raise BenchError(msg)
            runs.append((messages - 1) / (sub.last - sub.first))
    finally:
        sub.close()
        broker.cleanup()
    return BrokerLimit(runs, messages)
