"""Just enough MQTT 3.1.1 on a raw socket to publish fast from many device ids at once.

paho spends tens of microseconds of Python per QoS-1 publish; a load generator that must
offer 20,000 msg/s on a 2-core machine next to the hub cannot afford that. Here a PUBLISH is
a few bytes of header in front of the payload, sent in batches; PUBACKs are counted, not
matched (the broker acknowledges in order). Only what the benchmarks need: CONNECT (clean
session, no keepalive), QoS 0/1 PUBLISH, SUBSCRIBE-free, DISCONNECT.
"""

from __future__ import annotations

import socket
import struct

CONNACK = b"\x20\x02\x00\x00"
PUBACK_LEN = 4
DISCONNECT = b"\xe0\x00"
MAX_INFLIGHT = 60_000
"""Unacknowledged QoS-1 publishes allowed before waiting: packet ids are 16 bits."""


class WireError(Exception):
    """The broker refused or closed the connection."""


def remaining_length(n: int) -> bytes:
    """MQTT's variable-length integer."""
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _string(value: bytes) -> bytes:
    return struct.pack("!H", len(value)) + value


def connect_packet(client_id: str, will: tuple[str, bytes] | None = None) -> bytes:
    """CONNECT, MQTT 3.1.1, clean session, keepalive 0 (the broker never times us out);
    `will` = (topic, payload) retained at QoS 1, as a device announces `offline`."""
    flags = 0x02
    payload = _string(client_id.encode())
    if will is not None:
        flags |= 0x04 | 0x08 | 0x20  # will, will QoS 1, will retain
        payload += _string(will[0].encode()) + _string(will[1])
    body = _string(b"MQTT") + bytes([4, flags]) + struct.pack("!H", 0) + payload
    return b"\x10" + remaining_length(len(body)) + body


def publish_packet(
    topic: bytes, payload: bytes, packet_id: int, qos: int = 1, retain: bool = False
) -> bytes:
    """PUBLISH at QoS 0 or 1 (`packet_id` ignored at QoS 0)."""
    head = 0x30 | (qos << 1) | int(retain)
    body = _string(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return bytes([head]) + remaining_length(len(body)) + body


def read_exact(sock: socket.socket, n: int) -> bytes:
    """Exactly n bytes, or WireError if the broker closes."""
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            msg = "broker closed the connection"
            raise WireError(msg)
        buf += chunk
    return buf


class RawPublisher:
    """One MQTT connection that publishes QoS-1 messages in batches and counts PUBACKs."""

    def __init__(self, host: str, port: int, client_id: str, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(connect_packet(client_id))
        if read_exact(self.sock, 4) != CONNACK:
            msg = "broker refused the CONNECT"
            raise WireError(msg)
        self.sock.setblocking(False)
        self.sent = 0
        self.acked = 0
        self._pending = b""
        self._next_id = 0

    def publish(self, items: list[tuple[bytes, bytes]]) -> None:
        """Send (topic, payload) pairs at QoS 1 in one write."""
        parts = []
        for topic, payload in items:
            self._next_id = self._next_id % 65_535 + 1
            parts.append(publish_packet(topic, payload, self._next_id))
        self._send(b"".join(parts))
        self.sent += len(items)
        self.drain()
        while self.sent - self.acked > MAX_INFLIGHT:
            self.wait_acked(timeout=5.0, upto=self.sent - MAX_INFLIGHT // 2)

    def _send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = self.sock.send(view)
            except BlockingIOError:
                self.drain(block=0.01)
                continue
            view = view[n:]

    def drain(self, block: float = 0.0) -> None:
        """Count the PUBACKs that have arrived (waiting up to `block` seconds for some)."""
        if block:
            self.sock.settimeout(block)
        try:
            while True:
                chunk = self.sock.recv(65_536)
                if not chunk:
                    msg = "broker closed the connection"
                    raise WireError(msg)
                self._pending += chunk
                whole = len(self._pending) // PUBACK_LEN
                self.acked += whole
                self._pending = self._pending[whole * PUBACK_LEN :]
                if block:
                    break
        except (BlockingIOError, TimeoutError):
            pass
        finally:
            if block:
                self.sock.setblocking(False)

    def wait_acked(self, timeout: float, upto: int | None = None) -> bool:
        """Wait until every publish (or the first `upto`) is acknowledged."""
        import time

        goal = self.sent if upto is None else upto
        deadline = time.monotonic() + timeout
        while self.acked < goal and time.monotonic() < deadline:
            self.drain(block=0.05)
        return self.acked >= goal

    def close(self) -> None:
        """DISCONNECT and close."""
        try:
            self.sock.setblocking(True)
            self.sock.sendall(DISCONNECT)
        except OSError:
            pass
        self.sock.close()
