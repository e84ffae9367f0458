"""The simulated devices on a real broker: one MQTT connection per device, as firmware has.

Each device connects with its own client id (and its own credential when `carehub
broker-config` made them), announces itself `online` (retained) with an `offline` last will,
reconnects with exponential backoff and jitter when the broker goes away, and keeps its QoS 1
messages in a local queue until it is back — they go out late, in order, with their original
device time. Vendor-cloud devices (medcloud) are POSTed to the hub's webhook instead.

The stream comes from `firmware_sim.world` (with `firmware_sim.faults` applied); this module
only paces and delivers it. Status messages in the stream are left to the connections, which
announce `online` after every (re)connect and leave their will with the broker. Pacing follows
the clock: a `ScaledClock` runs the home X times faster than real time (shared with the hub in
the demo); `fastest=True` sends as fast as the broker takes it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as paho

from carehub.clock import Clock
from carehub.mqtt import ClientOptions, Protocol, close, connect_properties, make_client
from carehub.settings import MqttTarget
from carehub.site import Site
from firmware_sim.faults import DISCONNECT, SILENCE, Faults, inject
from firmware_sim.world import CareHome, Emission

_LOGGER = logging.getLogger(__name__)

MAX_INFLIGHT = 200
"""Per device: unacknowledged QoS 1 messages before the sender waits (paho refuses > 65,535)."""
BACKOFF_BASE_S = 1
BACKOFF_CAP_S = 30
"""Reconnect waits: a random whole number of seconds in [1, min(cap, base·2^n)]."""
KEEPALIVE_S = 30
SESSION_EXPIRY_S = 3600
"""MQTT 5: the broker keeps a device's session this long while it is away."""
WEBHOOK_RETRIES = 5
DRAIN_TIMEOUT_S = 30.0
"""At the end of a bounded run, how long devices may take to send what they still hold."""


@dataclass(frozen=True, slots=True)
class SimStats:
    """For the one-line status: how the simulated home is doing."""

    devices: int
    online: int
    sent: int
    queued: int
    webhook_posts: int
    sim_time: datetime | None


class Backoff:
    """Exponential backoff with full jitter, so a home's devices do not reconnect in lockstep
    when the broker comes back (whole seconds: paho's reconnect delay is an int)."""

    def __init__(
        self, rng: random.Random, base: int = BACKOFF_BASE_S, cap: int = BACKOFF_CAP_S
    ) -> None:
        self.rng = rng
        self.base = base
        self.cap = cap
        self.attempt = 0

    def next(self) -> int:
        """The wait before the next attempt."""
        ceiling = min(self.cap, self.base * 2**self.attempt)
        self.attempt = min(self.attempt + 1, 16)
        return self.rng.randint(self.base, max(self.base, ceiling))

    def reset(self) -> None:
        """Connected again: the next outage starts from the shortest wait."""
        self.attempt = 0


class Device:
    """One device's MQTT connection and its local queue of messages not yet handed over."""

    def __init__(
        self,
        device_id: str,
        target: MqttTarget,
        protocol: Protocol,
        status: tuple[str, bytes, bytes] | None,
        password: str | None,
        rng: random.Random,
        ca_file: str | None = None,
    ) -> None:
        self.device_id = device_id
        self.target = target
        self.status = status
        self.queue: deque[tuple[str, bytes, int, bool]] = deque()
        self.lock = threading.Lock()
        self.sent = 0
        self.dead = False
        self.backoff = Backoff(rng)
        self.inflight: deque[paho.MQTTMessageInfo] = deque()
        self.options = ClientOptions(
            client_id=device_id,
            protocol=protocol,
            clean_start=False,
            session_expiry_s=SESSION_EXPIRY_S,
            keepalive_s=KEEPALIVE_S,
            max_inflight=MAX_INFLIGHT,
            will=(status[0], status[2], 1, True) if status else None,
            ca_file=ca_file,
        )
        self.client = make_client(target, self.options)
        if password is not None:  # its own credential from `carehub broker-config`
            self.client.username_pw_set(device_id, password)
        self.client.reconnect_delay_set(self.backoff.next(), BACKOFF_CAP_S)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_connect_fail = self._on_connect_fail

    # --- connection -------------------------------------------------------------------------

    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        """(Re)connected: announce `online`, send what waited; never raise into paho."""
        if reason.is_failure:
            _LOGGER.warning("%s: broker refused the connection: %s", self.device_id, reason)
            return
        if self.dead:  # it died while paho was reconnecting: go again, will and all
            self.drop_link()
            return
        self.backoff.reset()
        sock = client.socket()
        if isinstance(sock, socket.socket):  # Nagle would add milliseconds to every message
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.status is not None:
            client.publish(self.status[0], self.status[1], qos=1, retain=True)
        try:
            self.flush()
        except Exception:  # never raise into paho's thread
            _LOGGER.exception("%s: could not send its queue", self.device_id)

    def _next_wait(self) -> None:
        """The next reconnect wait, with jitter (paho waits it before retrying)."""
        if not self.dead:
            self.client.reconnect_delay_set(self.backoff.next(), BACKOFF_CAP_S)

    def _on_disconnect(self, _c: paho.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        """The link is gone: paho reconnects after the next wait."""
        _LOGGER.debug("%s: disconnected (%s)", self.device_id, reason)
        self._next_wait()

    def _on_connect_fail(self, _c: paho.Client, _u: Any) -> None:
        """A reconnect attempt failed: wait longer before the next."""
        self._next_wait()

    def connect(self) -> None:
        """Start connecting in paho's network thread (it retries until the broker answers)."""
        self.client.connect_async(
            self.target.host,
            self.target.port,
            keepalive=self.options.keepalive_s,
            clean_start=False if self.options.protocol == "5" else paho.MQTT_CLEAN_START_FIRST_ONLY,
            properties=connect_properties(self.options),
        )
        self.client.loop_start()

    @property
    def connected(self) -> bool:
        """Whether the device is up and connected."""
        return not self.dead and self.client.is_connected()

    # --- messages ---------------------------------------------------------------------------

    def send(self, e: Emission, wait: bool) -> None:
        """Queue one message and send what the link allows; `wait` bounds what is in flight."""
        with self.lock:
            self.queue.append((e.topic, e.payload, e.qos, e.retain))
        self.flush(wait)

    def flush(self, wait: bool = False) -> None:
        """Hand what waits to paho, oldest first, while the link is up."""
        overdue: list[paho.MQTTMessageInfo] = []
        with self.lock:
            while self.queue and self.connected:
                topic, payload, qos, retain = self.queue[0]
                info = self.client.publish(topic, payload, qos=qos, retain=retain)
                if info.rc != paho.MQTT_ERR_SUCCESS:
                    break  # the link just dropped: keep it for the next connect
                self.queue.popleft()
                self.sent += 1
                self.inflight.append(info)
            while self.inflight and (
                self.inflight[0].is_published() or len(self.inflight) > MAX_INFLIGHT
            ):
                info = self.inflight.popleft()
                if not info.is_published():
                    overdue.append(info)
        if wait:  # outside the lock: paho's thread needs it to resend after a reconnect
            for info in overdue:
                with contextlib.suppress(RuntimeError, ValueError):
                    info.wait_for_publish(timeout=5)

    def drop_link(self) -> None:
        """A flaky radio: the socket dies under the client, which notices and reconnects."""
        sock = self.client.socket()
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def die(self) -> None:
        """A flat battery: the connection is cut, never resumed; the broker sends the will."""
        self.dead = True
        with self.lock:
            self.queue.clear()  # what it had not sent dies with it
        self.client.reconnect_delay_set(86_400, 86_400)
        self.drop_link()

    def close(self) -> None:
        """Say `offline` (a clean disconnect sends no will) and disconnect."""
        if self.status is not None and self.connected:
            info = self.client.publish(self.status[0], self.status[2], qos=1, retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(2)
        close(self.client)


class Simulator:
    """A simulated care home publishing to a broker until stopped (or its nights are over).

    Runs in background threads: `start()`, `stats()`, `stop()`; `done` is set when a bounded
    run has sent everything.
    """

    def __init__(
        self,
        site: Site,
        target: MqttTarget,
        *,
        clock: Clock,
        seed: int = 1,
        faults: Faults | None = None,
        prefix: str = "carehub",
        protocol: Protocol = "5",
        start: datetime | None = None,
        until: datetime | None = None,
        fastest: bool = False,
        credentials: dict[str, str] | None = None,
        webhook_url: str | None = None,
        webhook_token: str | None = None,
        ca_file: str | None = None,
    ) -> None:
        """`start` defaults to the clock's now; `until` None runs until stopped."""
        self.site = site
        self.target = target
        self.clock = clock
        self.seed = seed
        self.faults = faults or Faults()
        self.fastest = fastest
        self.until = until
        self.start_at = start or clock.now()
        self.prefix = prefix
        self.webhook_url = webhook_url
        self.webhook_token = webhook_token
        self.done = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sim_time: datetime | None = None
        self._webhook_posts = 0
        self._warned_webhook = False
        self._http: httpx.Client | None = None
        home = CareHome(site, self.start_at, seed=seed, prefix=prefix)
        rng = random.Random(f"{seed}:runtime")
        self.devices: dict[str, Device] = {}
        for device_id, dev in home.devices.items():
            if dev.model == "medcloud-webhook":
                continue  # its vendor's cloud speaks for it, over HTTP
            status = None
            if dev.status_topic is not None:
                status = (dev.status_topic, *dev.status_words)
            password = (credentials or {}).get(device_id)
            self.devices[device_id] = Device(
                device_id, target, protocol, status, password, rng, ca_file
            )

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> Simulator:
        """Connect every device and start sending, in background threads."""
        for device in self.devices.values():
            device.connect()
        self._thread = threading.Thread(target=self._run, name="simulator", daemon=True)
        self._thread.start()
        return self

    def wait_connected(self, timeout: float = 15) -> bool:
        """Wait until every living device is connected (tests, the demo's start-up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(d.connected for d in self.devices.values() if not d.dead):
                return True
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        """Stop sending, say `offline` and disconnect every device."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for device in self.devices.values():
            try:
                device.close()
            except Exception:  # one broken connection must not keep the others open
                _LOGGER.exception("%s: close failed", device.device_id)
        if self._http is not None:
            self._http.close()

    def stats(self) -> SimStats:
        """Devices online, messages sent (MQTT and webhook), queued, and the simulated time."""
        return SimStats(
            devices=len(self.devices),
            online=sum(d.connected for d in self.devices.values()),
            sent=sum(d.sent for d in self.devices.values()),
            queued=sum(len(d.queue) for d in self.devices.values()),
            webhook_posts=self._webhook_posts,
            sim_time=self._sim_time,
        )

    def emissions(self) -> Iterator[Emission]:
        """The home's messages with the faults applied: what `_run` delivers."""
        home = CareHome(self.site, self.start_at, seed=self.seed, prefix=self.prefix)
        return inject(home.emissions(self.until), self.faults, self.seed)

    # --- the loop -------------------------------------------------------------------------

    def _wait_until(self, when: datetime) -> bool:
        """Sleep until the clock reaches `when`; False when stopped."""
        if self.fastest:
            return not self._stop.is_set()
        speed = float(getattr(self.clock, "speed", 1.0))
        while True:
            ahead = (when - self.clock.now()).total_seconds()
            if ahead <= 0:
                return not self._stop.is_set()
            if self._stop.wait(min(0.5, ahead / speed)):
                return False

    def _run(self) -> None:
        """Deliver the stream, paced by the clock; `done` when it is over."""
        try:
            for e in self.emissions():
                if not self._wait_until(e.at):
                    return
                self._sim_time = e.at
                device = self.devices.get(e.device_id)
                if e.channel == "control":
                    if device is not None and e.what == DISCONNECT:
                        device.drop_link()
                    elif device is not None and e.what == SILENCE:
                        device.die()
                elif e.channel == "webhook":
                    self._post(e)
                elif e.what != "status" and device is not None and not device.dead:
                    device.send(e, wait=self.fastest)
            self._drain()
        except Exception:
            _LOGGER.exception("the simulator stopped")
        finally:
            self.done.set()

    def _drain(self) -> None:
        """The stream is over: wait (a while) until every queued message has gone out."""
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        for device in self.devices.values():
            while not device.dead and device.queue and time.monotonic() < deadline:
                if self._stop.wait(0.05):
                    return
            if not device.dead:
                device.flush(wait=True)

    def _post(self, e: Emission) -> None:
        """Deliver a vendor-cloud event to the hub's webhook, at least once."""
        if not self.webhook_url or not self.webhook_token:
            if not self._warned_webhook:
                self._warned_webhook = True
                _LOGGER.warning(
                    "webhook devices (medcloud) are skipped: give --webhook URL and set "
                    "CAREHUB_WEBHOOK_TOKEN to send them"
                )
            return
        if self._http is None:
            self._http = httpx.Client(
                timeout=5,
                headers={
                    "Authorization": f"Bearer {self.webhook_token}",
                    "Content-Type": "application/json",
                },
            )
        for attempt in range(WEBHOOK_RETRIES):  # the vendor cloud delivers at least once
            try:
                r = self._http.post(self.webhook_url, content=e.payload)
            except httpx.HTTPError as err:
                _LOGGER.debug("webhook post failed: %s", err)
            else:
                if r.status_code < 500:
                    self._webhook_posts += 1
                    if r.status_code >= 400:
                        _LOGGER.warning(
                            "webhook refused %s (%s): %s", e.device_id, r.status_code, r.text[:200]
                        )
                    return
            if self._stop.wait(min(5.0, 0.5 * 2**attempt)):
                return


def load_credentials(path: Path | None) -> dict[str, str]:
    """`credentials.json` from `carehub broker-config`: {client_id: password}."""
    if path is None:
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        msg = f"{path}: expected a JSON object {{client_id: password}}"
        raise ValueError(msg)
    return {str(k): str(v) for k, v in data.items()}
