"""carehub.mqtt.Client on a real broker: paho's network loop reading in batches.

What must hold: every message arrives whole and in order whatever the read boundaries (tiny
messages hundreds to a read, one message over several reads); an acknowledgement queued from
`on_message` leaves without any other traffic to wake the loop; bytes read on a connection
never reach the next one; and the private parts of paho it overrides still look as it expects.
"""

from __future__ import annotations

import inspect
import ipaddress
import os
import socket
import ssl
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from app.broker import LocalBroker, MosquittoBroker, free_port
from carehub.mqtt import READ_CHUNK, Client, ClientOptions, Protocol, connect_blocking, make_client
from carehub.settings import MqttTarget
from tests.support.mqttprobe import MqttProbe, until

pytestmark = pytest.mark.broker


class _CountingSocket:
    """The client's socket, counting `recv` calls; everything else passes through."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.recvs = 0

    def recv(self, size: int) -> bytes:
        self.recvs += 1
        return self._sock.recv(size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _Collector:
    """A manual-ack subscriber that acknowledges from `on_message`, as the gateway's shedding
    does, and keeps the payloads in arrival order."""

    def __init__(self, broker: LocalBroker, protocol: Protocol, topic: str) -> None:
        self.payloads: list[bytes] = []
        self.lock = threading.Lock()
        ready = threading.Event()
        options = ClientOptions(
            client_id=f"batched-{uuid.uuid4().hex[:8]}",
            protocol=protocol,
            clean_start=False,
            session_expiry_s=300,
            manual_ack=True,
        )

        def on_connect(c: paho.Client) -> None:
            c.subscribe(topic, qos=1)

        self.client = connect_blocking(
            MqttTarget(host=broker.host, port=broker.port), options, on_connect=on_connect
        )
        self.client.on_subscribe = lambda *_: ready.set()
        self.client.on_message = self._on_message
        self.client.subscribe(topic, qos=1)
        assert ready.wait(10), "no SUBACK"

    def _on_message(self, c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        with self.lock:
            self.payloads.append(bytes(msg.payload))
        c.ack(msg.mid, msg.qos)

    def count(self) -> int:
        with self.lock:
            return len(self.payloads)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_the_hub_builds_its_clients_from_the_batching_client() -> None:
    client = make_client(MqttTarget(host="127.0.0.1", port=1), ClientOptions(client_id="x"))
    assert isinstance(client, Client)


def test_a_burst_of_small_and_large_messages_arrives_whole_in_order_from_few_reads(
    broker: LocalBroker, mqtt_protocol: Protocol, probe: MqttProbe
) -> None:
    topic = f"batched/{uuid.uuid4().hex[:8]}"
    sub = _Collector(broker, mqtt_protocol, topic)
    sock = sub.client.socket()
    assert isinstance(sock, socket.socket)
    counting = _CountingSocket(sock)
    sub.client._sock = counting
    big = os.urandom(3 * READ_CHUNK + 17)  # one message over several reads
    sent = [f"m{i:05d}".encode() for i in range(3000)]
    sent[1500] = big
    try:
        for payload in sent:
            probe.client.publish(topic, payload, qos=1)
        until(lambda: sub.count() >= len(sent), "every message arrived", timeout=60)
        with sub.lock:
            assert sub.payloads == sent
        # paho alone makes at least three reads per message; batched, a read carries many
        assert counting.recvs < len(sent) / 2, counting.recvs
    finally:
        sub.close()


def test_an_acknowledgement_from_on_message_leaves_without_other_traffic(
    mosquitto: LocalBroker,
) -> None:
    """Receive Maximum 1: the broker sends the next message only after the last one's PUBACK,
    so 50 messages arrive only if each acknowledgement queued by the network thread itself is
    written without a wake-up from anywhere else (not after the 60 s keepalive)."""
    topic = f"one-at-a-time/{uuid.uuid4().hex[:8]}"
    got: list[bytes] = []
    subscribed = threading.Event()
    client = Client(
        CallbackAPIVersion.VERSION2,
        client_id=f"recvmax-{uuid.uuid4().hex[:8]}",
        protocol=paho.MQTTv5,
        manual_ack=True,
    )

    def on_message(c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
        got.append(bytes(msg.payload))
        c.ack(msg.mid, msg.qos)

    client.on_message = on_message
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.ReceiveMaximum = 1
    props.SessionExpiryInterval = 300
    client.connect(mosquitto.host, mosquitto.port, keepalive=60, properties=props)
    client.loop_start()
    try:
        assert subscribed.wait(10)
        publisher = MqttProbe(mosquitto.host, mosquitto.port)
        try:
            for i in range(50):
                publisher.client.publish(topic, f"{i}".encode(), qos=1)
            until(lambda: len(got) >= 50, "all 50 arrived one acknowledgement at a time", 20)
        finally:
            publisher.close()
        assert got == [f"{i}".encode() for i in range(50)]
    finally:
        client.disconnect()
        client.loop_stop()


def test_bytes_read_on_a_lost_connection_never_reach_the_next(
    broker: LocalBroker, mqtt_protocol: Protocol, probe: MqttProbe
) -> None:
    """A connection closed on a broken packet leaves what was read after it in the buffer;
    served to the next connection, it would be taken as that stream's first packets (here a
    whole PUBLISH, which would arrive as a message nobody sent)."""
    topic = f"afresh/{uuid.uuid4().hex[:8]}"
    sub = _Collector(broker, mqtt_protocol, topic)
    try:
        connected = threading.Event()
        previous = sub.client.on_connect

        def on_connect(c: paho.Client, *args: Any) -> None:
            if previous is not None:
                previous(c, *args)
            connected.set()

        sub.client.on_connect = on_connect
        broken = b"\x40\xff\xff\xff\xff\x7f"  # a length over 4 bytes: paho closes at once
        body = b"\x00\x03bad" + (b"\x00" if mqtt_protocol == "5" else b"") + b"stale"
        stale = broken + b"\x30" + bytes([len(body)]) + body  # then a whole QoS 0 PUBLISH
        sock = sub.client.socket()
        assert isinstance(sock, socket.socket)
        sub.client._read_buffer, sub.client._read_pos = stale, 0  # type: ignore[attr-defined]
        sock.shutdown(socket.SHUT_RDWR)
        assert connected.wait(15), "paho did not reconnect"
        sent = [f"after-{i}".encode() for i in range(200)]
        for payload in sent:
            probe.client.publish(topic, payload, qos=1)
        until(lambda: sub.count() >= len(sent), "the messages after the reconnect arrived")
        with sub.lock:
            assert sub.payloads == sent
    finally:
        sub.close()


def test_publishes_past_the_in_flight_limit_wait_their_turn_and_all_go_out(
    broker: LocalBroker, mqtt_protocol: Protocol, probe: MqttProbe
) -> None:
    """Five in flight at most: the other 495 are queued in the client and must each be sent
    as an earlier one's PUBACK frees a place, in order."""
    topic = f"queued/{uuid.uuid4().hex[:8]}"
    probe.subscribe(topic, qos=1)
    client = make_client(
        MqttTarget(host=broker.host, port=broker.port),
        ClientOptions(client_id=f"queued-{uuid.uuid4().hex[:8]}", protocol=mqtt_protocol),
    )
    client.max_inflight_messages_set(5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        sent = [f"q{i:03d}".encode() for i in range(500)]
        infos = [client.publish(topic, payload, qos=1) for payload in sent]
        for info in infos:
            info.wait_for_publish(timeout=20)
            assert info.is_published()
        got = probe.wait_for(topic, count=len(sent), timeout=20)
        assert [m.payload for m in got] == sent
    finally:
        client.disconnect()
        client.loop_stop()


@pytest.mark.parametrize(
    ("method", "parameters"),
    [
        ("_sock_recv", ["self", "bufsize"]),
        ("_sock_close", ["self"]),
        ("loop_read", ["self", "max_packets"]),
        ("_packet_queue", ["self", "command", "packet", "mid", "qos", "info"]),
        ("_update_inflight", ["self"]),
    ],
)
def test_the_paho_methods_it_overrides_keep_their_shape(method: str, parameters: list[str]) -> None:
    """A paho release that renames or reshapes these would leave the overrides unused or
    broken; this says so at once instead of as a slow hub."""
    assert list(inspect.signature(getattr(paho.Client, method)).parameters) == parameters
    client = paho.Client(CallbackAPIVersion.VERSION2)
    for attribute in (
        "_sock",
        "_thread",
        "_out_packet",
        "_sockpairW",
        "_out_messages",
        "_inflight_messages",
    ):
        assert hasattr(client, attribute), attribute


def _tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1, as docs/security.md has a home make them."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)

    def cert(
        subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: Any, ca: bool
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
            builder = builder.add_extension(san, critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test ca")])
    ca_cert = cert("test ca", ca_key, ca_name, ca_key, ca=True)
    server_cert = cert("127.0.0.1", server_key, ca_name, ca_key, ca=False)
    pem = serialization.Encoding.PEM
    paths = folder / "ca.crt", folder / "server.crt", folder / "server.key"
    paths[0].write_bytes(ca_cert.public_bytes(pem))
    paths[1].write_bytes(server_cert.public_bytes(pem))
    paths[2].write_bytes(
        server_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


@pytest.mark.mosquitto_only
def test_over_tls_a_burst_arrives_whole_and_in_order(tmp_path: Path) -> None:
    """TLS hands the client whole records and keeps decrypted bytes of its own (`pending()`),
    a second buffer under the client's: every message must still arrive, whole and in order,
    acknowledged from `on_message`, through `mqtts://` as a hub would connect."""
    ca, crt, key = _tls_files(tmp_path)
    tls_port = free_port("127.0.0.1")
    extra = f"listener {tls_port} 127.0.0.1\ncafile {ca}\ncertfile {crt}\nkeyfile {key}\n"
    broker = MosquittoBroker(workdir=tmp_path / "mosquitto", extra_config=extra)
    try:
        topic = f"tls/{uuid.uuid4().hex[:8]}"
        got: list[bytes] = []
        subscribed = threading.Event()
        target = MqttTarget.parse(f"mqtts://127.0.0.1:{tls_port}")
        options = ClientOptions(
            client_id=f"tls-{uuid.uuid4().hex[:8]}",
            clean_start=False,
            session_expiry_s=300,
            manual_ack=True,
            ca_file=str(ca),
        )
        client = connect_blocking(target, options)
        assert isinstance(client.socket(), ssl.SSLSocket)

        def on_message(c: paho.Client, _u: Any, msg: paho.MQTTMessage) -> None:
            got.append(bytes(msg.payload))
            c.ack(msg.mid, msg.qos)

        client.on_message = on_message
        client.on_subscribe = lambda *_: subscribed.set()
        client.subscribe(topic, qos=1)
        assert subscribed.wait(10)
        publisher = MqttProbe(broker.host, broker.port)
        big = os.urandom(2 * READ_CHUNK + 5)
        sent = [f"t{i:05d}".encode() for i in range(2000)]
        sent[1000] = big
        try:
            for payload in sent:
                publisher.client.publish(topic, payload, qos=1)
            until(lambda: len(got) >= len(sent), "every message arrived over TLS", 60)
        finally:
            publisher.close()
        assert got == sent
        client.disconnect()
        client.loop_stop()
    finally:
        broker.stop()
