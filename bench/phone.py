"""Fall → phone latency under background load: from a fall being published to the ntfy
server receiving the ward phone's notice (docs/performance.md, docs/notifications.md).

The hub runs as `carehub run all` on a fresh Mosquitto and SQLite file, with a generated site
whose wards each have a phone on an ntfy server. The server is a stand-in in this process: it
takes ntfy's JSON publish (POSTed to its root URL) and answers `/v1/health`, as a self-hosted
ntfy does, and notes when each room's notice arrived (the notice's title ends with the room).
A load generator offers background heartbeats and readings meanwhile, as in `bench.latency`.
"""

from __future__ import annotations

import json
import random
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.latency import FALL_TIMEOUT_S, WARMUP_S, Arrivals, background_load
from bench.messages import fall_payload, uplink_topic
from bench.procs import HubProcess, LoadProcess, start_broker
from bench.sites import native_site
from bench.wire import RawPublisher


class NtfyReceiver:
    """A local ntfy server: JSON publishes to `/`, `/v1/health`; notes arrivals by room."""

    def __init__(self, arrivals: Arrivals) -> None:
        self.arrivals = arrivals
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: object) -> None:
                pass

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._answer(200 if self.path == "/v1/health" else 404, {"healthy": True})

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                message = json.loads(raw) if self.path == "/" else {}
                title = str(message.get("title", ""))
                if message.get("tags") and "white_check_mark" not in message["tags"]:
                    receiver.arrivals.note(title.rsplit(" ", 1)[-1])  # "Fald – stue w000-01"
                self._answer(200, {"id": "1", "event": "message"})

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        """Where the hub publishes."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()


@dataclass(slots=True)
class PhoneResult:
    """Per-fall latencies (ms) to the ward phone's ntfy server, and the background achieved."""

    to_phone: list[float] = field(default_factory=list)
    lost: int = 0
    background: dict[str, Any] = field(default_factory=dict)


def measure(
    workdir: Path,
    residents: int,
    falls: int,
    background_rate: float,
    gap_s: tuple[float, float] = (0.05, 0.15),
    prefix: str = "carehub",
) -> PhoneResult:
    """`falls` falls, each from its own fall sensor in its own room, over `background_rate`
    msg/s; each timed until its ward phone's notice reaches the ntfy server."""
    arrivals = Arrivals()
    ntfy = NtfyReceiver(arrivals)
    site = native_site(workdir, residents, ntfy_url=ntfy.url)
    fall_devices = site.device_ids("fall")[:falls]
    rooms = {d.id: d.room for d in site.site.devices if d.id in set(fall_devices)}
    probes = set(fall_devices)
    background = [(d.id, d.kind.value) for d in site.site.devices if d.id not in probes]
    broker = start_broker(workdir / "mosquitto")
    hub = HubProcess("all", site.path, workdir / "phone.db", broker, workdir / "hub.log")
    result = PhoneResult()
    load: LoadProcess | None = None
    try:
        hub.wait_healthy()
        name = site.site.site
        load = background_load(broker, name, background, background_rate, falls, gap_s, prefix)
        time.sleep(WARMUP_S)
        pub = RawPublisher(broker.host, broker.port, "bench-falls")
        try:
            rng = random.Random(9)
            for device_id in fall_devices:
                room = str(rooms[device_id])
                sent = time.monotonic()
                pub.publish([(uplink_topic(prefix, name, device_id).encode(), fall_payload(1_000))])
                at_phone = arrivals.wait(room, FALL_TIMEOUT_S)
                if at_phone is None:
                    result.lost += 1
                else:
                    result.to_phone.append(1e3 * (at_phone - sent))
                time.sleep(rng.uniform(*gap_s))
        finally:
            pub.close()
        result.background = load.result(stop=True)
    finally:
        if load is not None:
            load.kill()
        hub.stop()
        broker.cleanup()
        ntfy.close()
    return result
