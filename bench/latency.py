"""Fall → alarm latency under background load, to the broker and to a staff screen.

The hub runs as a care home runs it (`carehub run all`: gateway, rules and web app in one
process) on a fresh Mosquitto and SQLite file, with a generated site of many devices. A load
generator in its own process offers heartbeats and saturation readings from those devices;
meanwhile this process publishes one fall at a time from a fall sensor not in the background
set and times (monotonic clock) until the alarm is on `carehub/{site}/alarms/#` and until a
Server-Sent Events client of `GET /api/alarms/stream` sees it.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from app.broker import MosquittoBroker
from bench.loadgen import LoadConfig
from bench.messages import fall_payload, uplink_topic
from bench.procs import BenchError, HubProcess, LoadProcess, start_broker
from bench.sites import SiteFile
from bench.wire import RawPublisher
from carehub.mqtt import Client
from services.web.users import Role, UserStore

USER = "bench-staff"
PASSWORD = "bench-password-2026"  # noqa: S105 - a throwaway login in a temporary database
FALL_TIMEOUT_S = 5.0
WARMUP_S = 2.0


def percentiles(values: list[float]) -> dict[str, float | None]:
    """{p50, p99, max} in ms, rounded; None when there are no values."""
    if not values:
        return {"p50": None, "p99": None, "max": None}
    arr = np.asarray(values)
    return {
        "p50": round(float(np.percentile(arr, 50)), 2),
        "p99": round(float(np.percentile(arr, 99)), 2),
        "max": round(float(arr.max()), 2),
    }


class Arrivals:
    """First arrival time (monotonic) per device id, from any thread."""

    def __init__(self) -> None:
        self._times: dict[str, float] = {}
        self._cond = threading.Condition()

    def note(self, device_id: str | None) -> None:
        """Record now for a device, if it is the first time."""
        now = time.monotonic()
        if device_id is None:
            return
        with self._cond:
            if device_id not in self._times:
                self._times[device_id] = now
                self._cond.notify_all()

    def wait(self, device_id: str, timeout: float) -> float | None:
        """When the device's alarm arrived, waiting up to `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while device_id not in self._times:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return self._times[device_id]


class AlarmSubscriber:
    """paho (as the hub's own clients: MQTT 5, TCP_NODELAY) on `{prefix}/{site}/alarms/#`."""

    def __init__(self, host: str, port: int, topic: str, arrivals: Arrivals) -> None:
        self.arrivals = arrivals
        ready = threading.Event()
        self.client = Client(
            CallbackAPIVersion.VERSION2, client_id="bench-alarms", protocol=paho.MQTTv5
        )
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: ready.set()
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.connect(host, port)
        sock = self.client.socket()
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.loop_start()
        if not ready.wait(10):
            msg = "could not subscribe to the alarm topics"
            raise BenchError(msg)

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        if not msg.payload:
            return  # a cleared retained alarm
        try:
            alarm = json.loads(msg.payload)
        except ValueError:
            return
        if alarm.get("rule") == "fall":
            self.arrivals.note(alarm.get("device_id"))

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


class ScreenClient:
    """What a staff board does: a bearer token, then `GET /api/alarms/stream` (SSE)."""

    def __init__(self, base: str, arrivals: Arrivals) -> None:
        r = httpx.post(f"{base}/api/token", data={"username": USER, "password": PASSWORD})
        if r.status_code != 200:
            msg = f"could not log in to the web app: {r.status_code} {r.text[:200]}"
            raise BenchError(msg)
        self.headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        self.base = base
        self.arrivals = arrivals
        self.connected = threading.Event()
        self._stop = False
        self._client = httpx.Client(timeout=httpx.Timeout(10.0, read=None))
        self._thread = threading.Thread(target=self._run, name="bench-sse", daemon=True)
        self._thread.start()
        if not self.connected.wait(10):
            msg = "the alarm stream did not open"
            raise BenchError(msg)

    def _run(self) -> None:
        event = ""
        try:
            with self._client.stream(
                "GET", f"{self.base}/api/alarms/stream", headers=self.headers
            ) as response:
                for line in response.iter_lines():
                    if self._stop:
                        return
                    if line.startswith("event:"):
                        event = line[6:].strip()
                        self.connected.set()
                    elif line.startswith("data:") and event == "alarm":
                        envelope = json.loads(line[5:])
                        alarm = envelope.get("alarm", {})
                        if envelope.get("type") == "new" and alarm.get("rule") == "fall":
                            self.arrivals.note(alarm.get("device_id"))
        except httpx.HTTPError:
            if not self._stop:
                raise

    def close(self) -> None:
        """Stop reading and close the stream."""
        self._stop = True
        self._client.close()
        self._thread.join(timeout=5)


@dataclass(slots=True)
class LatencyResult:
    """Per-fall latencies (ms) to MQTT and to the screen, and the background achieved."""

    to_alarm: list[float] = field(default_factory=list)
    to_screen: list[float] = field(default_factory=list)
    lost_alarm: int = 0
    lost_screen: int = 0
    background: dict[str, Any] = field(default_factory=dict)


def measure(
    workdir: Path,
    site: SiteFile,
    falls: int,
    background_rate: float,
    gap_s: tuple[float, float] = (0.05, 0.15),
    prefix: str = "carehub",
) -> LatencyResult:
    """`falls` falls, each from its own fall sensor, over `background_rate` msg/s."""
    fall_devices = site.device_ids("fall")[:falls]
    if len(fall_devices) < falls:
        msg = f"the site has {len(fall_devices)} fall sensors; {falls} falls need as many"
        raise BenchError(msg)
    probes = set(fall_devices)
    background = [(d.id, d.kind.value) for d in site.site.devices if d.id not in probes]
    broker = start_broker(workdir / "mosquitto")
    db = workdir / "latency.db"
    users = UserStore(db)
    users.upsert(USER, PASSWORD, Role.STAFF)
    users.close()
    hub = HubProcess("all", site.path, db, broker, workdir / "hub.log")
    result = LatencyResult()
    load: LoadProcess | None = None
    closers: list[Any] = []
    try:
        hub.wait_healthy()
        alarms, screen = Arrivals(), Arrivals()
        name = site.site.site
        closers.append(
            AlarmSubscriber(broker.host, broker.port, f"{prefix}/{name}/alarms/#", alarms)
        )
        closers.append(ScreenClient(hub.url, screen))
        load = background_load(broker, name, background, background_rate, falls, gap_s, prefix)
        time.sleep(WARMUP_S)
        pub = RawPublisher(broker.host, broker.port, "bench-falls")
        closers.append(pub)
        rng = random.Random(9)
        for device_id in fall_devices:
            topic = uplink_topic(prefix, name, device_id).encode()
            payload = fall_payload(1_000)
            sent = time.monotonic()
            pub.publish([(topic, payload)])
            at_alarm = alarms.wait(device_id, FALL_TIMEOUT_S)
            at_screen = screen.wait(device_id, max(0.1, sent + FALL_TIMEOUT_S - time.monotonic()))
            if at_alarm is None:
                result.lost_alarm += 1
            else:
                result.to_alarm.append(1e3 * (at_alarm - sent))
            if at_screen is None:
                result.lost_screen += 1
            else:
                result.to_screen.append(1e3 * (at_screen - sent))
            time.sleep(rng.uniform(*gap_s))
        result.background = load.result(stop=True)
    finally:
        for closer in reversed(closers):
            closer.close()
        if load is not None:
            load.kill()
        hub.stop()
        broker.cleanup()
    return result


def background_load(
    broker: MosquittoBroker,
    site: str,
    devices: list[tuple[str, str]],
    rate: float,
    falls: int,
    gap_s: tuple[float, float],
    prefix: str,
) -> LoadProcess:
    """The background traffic of a latency run: `rate` msg/s from `devices` devices, for as
    long as the falls take (warm-up, the falls at their mean gap, and 30 s to drain)."""
    return LoadProcess(
        LoadConfig(
            host=broker.host,
            port=broker.port,
            site=site,
            devices=devices,
            rate=rate,
            duration=WARMUP_S + falls * (sum(gap_s) / 2 + 0.3) + 30,
            client_id="bench-background",
            prefix=prefix,
        )
    )
