"""Peak memory of the hub (`carehub run all`) with N simulated devices connected.

Each device is a raw MQTT connection of its own, as a real sensor's is: CONNECT with its last
will (`status` = `offline`, retained), `online` retained, then heartbeats. Connections are
opened one after another from this one process (a paho client per device would cost more memory
here than the hub uses). Mosquitto gets `max_connections -1` and both processes a raised
open-file limit. The figure is the hub's VmHWM (peak resident set) from /proc/<pid>/status
after every device has connected and its messages were ingested.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.messages import Stream, rfc3339
from bench.procs import BenchError, HubProcess, raise_fd_limit, start_broker
from bench.sites import SiteFile
from bench.wire import PUBACK_LEN, connect_packet, publish_packet, read_exact

INGEST_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class RssResult:
    """Memory of the hub, kB → MB."""

    devices: int
    peak_rss_mb: float
    rss_mb: float
    idle_rss_mb: float
    connect_s: float


def _wait_ingested(hub: HubProcess, count: int) -> None:
    deadline = time.monotonic() + INGEST_TIMEOUT_S
    seen = 0.0
    while time.monotonic() < deadline:
        seen = hub.metrics().get("carehub_gateway_messages_in_total", 0.0)
        if seen >= count:
            return
        time.sleep(0.5)
    msg = f"the hub ingested {seen:.0f} of {count} messages within {INGEST_TIMEOUT_S:.0f} s"
    raise BenchError(msg)


def measure(workdir: Path, site: SiteFile, prefix: str = "carehub") -> RssResult:
    """Connect every device of `site`, let each say online and send two heartbeats."""
    devices = [(d.id, d.kind.value) for d in site.site.devices]
    raise_fd_limit(len(devices) + 2_000)
    broker = start_broker(workdir / "mosquitto")
    hub = HubProcess("all", site.path, workdir / "rss.db", broker, workdir / "hub.log")
    socks: list[socket.socket] = []
    name = site.site.site
    try:
        hub.wait_healthy(timeout=120)
        idle = hub.status()["VmRSS"]
        began = time.monotonic()
        ts = rfc3339()
        for device_id, kind in devices:
            status = f"{prefix}/{name}/devices/{device_id}/status"
            sock = socket.create_connection((broker.host, broker.port), timeout=30)
            socks.append(sock)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            (topic, payload) = Stream(prefix, name, [(device_id, kind)]).take(1, ts)[0]
            sock.sendall(
                connect_packet(f"dev-{device_id}", will=(status, b"offline"))
                + publish_packet(status.encode(), b"online", 1, retain=True)
                + publish_packet(topic, payload, 2)
            )
            # Wait for CONNACK and both PUBACKs before the next device: connections opened
            # faster than Mosquitto accepts them overflow the listen backlog, and the kernel
            # then retries each SYN only after a second.
            read_exact(sock, 4 + 2 * PUBACK_LEN)
        connect_s = time.monotonic() - began
        _wait_ingested(hub, 2 * len(devices))
        ts = rfc3339()
        for sock, (device_id, kind) in zip(socks, devices, strict=True):
            (topic, payload) = Stream(prefix, name, [(device_id, kind)], seq_start=2).take(1, ts)[0]
            sock.sendall(publish_packet(topic, payload, 3))
        for sock in socks:
            read_exact(sock, PUBACK_LEN)
        _wait_ingested(hub, 3 * len(devices))
        time.sleep(1.0)
        memory: dict[str, Any] = hub.status()
    finally:
        for sock in socks:
            sock.close()
        hub.stop()
        broker.cleanup()
    return RssResult(
        devices=len(devices),
        peak_rss_mb=round(memory["VmHWM"] / 1024, 1),
        rss_mb=round(memory["VmRSS"] / 1024, 1),
        idle_rss_mb=round(idle / 1024, 1),
        connect_s=round(connect_s, 2),
    )
