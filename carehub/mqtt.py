"""paho-mqtt 2.x clients set up the way every CareHub process needs them.

paho rather than aiomqtt: the gateway must acknowledge a message only after it is stored
(`manual_ack`, which aiomqtt 2.x cannot do). Its network loop is made to read in batches
(`Client`, docs/performance.md "The MQTT client's reads").
"""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from carehub.errors import CareHubError
from carehub.settings import MqttTarget

_LOGGER = logging.getLogger(__name__)

Protocol = Literal["5", "3.1.1"]
CONNECT_TIMEOUT_S = 10.0


class MqttConnectError(CareHubError):
    """The broker refused us or could not be reached."""


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """How to open one client connection."""

    client_id: str
    protocol: Protocol = "5"
    clean_start: bool = True
    session_expiry_s: int = 0
    keepalive_s: int = 30
    manual_ack: bool = False
    max_inflight: int = 1000
    will: tuple[str, bytes, int, bool] | None = None
    ca_file: str | None = None

    def __post_init__(self) -> None:
        """A client with a persistent session (session expiry, or acknowledging by hand) must
        never start clean: that would wipe what the broker keeps for it."""
        if self.clean_start and (self.session_expiry_s or self.manual_ack):
            msg = f"client {self.client_id!r} keeps a persistent session: it cannot start clean"
            raise ValueError(msg)


SESSION_TAKEN_OVER = 0x8E
"""MQTT 5 DISCONNECT reason: another connection came with our client id."""


def taken_over(reason: Any) -> bool:
    """Whether a disconnect reason says another client took our session over."""
    return getattr(reason, "value", None) == SESSION_TAKEN_OVER


READ_CHUNK = 65_536
"""Bytes asked of the socket per read: a few hundred device messages."""


class Client(paho.Client):
    """paho's client with a network loop that reads in batches.

    paho 2.2 reads a packet with three or more `recv` calls (one byte of type, each byte of
    length, then the body), handles one packet per `select`, and wakes its own loop through a
    socket pair for every packet queued, even an acknowledgement queued by its own network
    thread from inside `on_message`. That is about seven system calls per QoS 1 message and
    held a bare subscriber to 12-15k msg/s on the 2-core bench machine; this one reads up to
    `READ_CHUNK` bytes at a time, handles every packet already read before the next `select`,
    and queues from the network thread without the wake-up (the loop writes what is queued
    before its next `select` anyway). Measured in docs/performance.md.

    Publishing, paho scans every message in flight after each PUBACK; `_update_inflight`
    skips that while nothing waits behind the in-flight limit.

    It overrides four private methods of paho (`_sock_recv`, `_sock_close`, `_packet_queue`,
    `_update_inflight`) and `loop_read`; the lock file pins paho, and
    `tests/test_mqtt_client.py` fails if a new paho changes what they look like.
    """

    _read_buffer: bytes = b""
    _read_pos: int = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        """Serve paho's small reads from one big read; an empty read (closed) passes through."""
        buf, pos = self._read_buffer, self._read_pos
        if pos >= len(buf):
            buf = super()._sock_recv(READ_CHUNK)  # BlockingIOError when nothing is there
            if not buf:
                return buf
            self._read_buffer, pos = buf, 0
        end = pos + bufsize
        self._read_pos = end
        return buf[pos:end]

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """Handle every packet already read: the socket will not wake `select` for them."""
        rc = super().loop_read(max_packets)
        while (
            rc == MQTTErrorCode.MQTT_ERR_SUCCESS
            and self._read_pos < len(self._read_buffer)
            and self._sock is not None
        ):
            rc = super().loop_read(1)
        return rc

    def _sock_close(self) -> None:
        """Bytes read from a connection that is gone must never reach the next one."""
        self._read_buffer, self._read_pos = b"", 0
        super()._sock_close()

    def _update_inflight(self) -> MQTTErrorCode:
        """paho looks for a queued message after every PUBACK by scanning all messages in
        flight, quadratic in a burst (~45 of ~90 µs a QoS 1 publish in the gateway's bursts
        of 200). While every stored message is in flight, nothing is queued to look for."""
        if len(self._out_messages) <= self._inflight_messages:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        return super()._update_inflight()

    def _packet_queue(
        self,
        command: int,
        packet: bytes | bytearray,
        mid: int,
        qos: int,
        info: paho.MQTTMessageInfo | None = None,
    ) -> MQTTErrorCode:
        """From the network thread, queue without waking it: it is awake."""
        if self._thread is None or threading.current_thread() is not self._thread:
            return super()._packet_queue(command, packet, mid, qos, info)
        self._out_packet.append(
            {
                "command": command,
                "mid": mid,
                "qos": qos,
                "pos": 0,
                "to_process": len(packet),
                "packet": packet,
                "info": info,
            }
        )
        self._call_socket_register_write()
        return MQTTErrorCode.MQTT_ERR_SUCCESS


def _nodelay(client: paho.Client) -> None:
    """Turn Nagle off on our end; without it each hop waits milliseconds for nothing."""
    sock = client.socket()
    if isinstance(sock, socket.socket):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # pragma: no cover - e.g. a closed socket during reconnect
            _LOGGER.debug("could not set TCP_NODELAY", exc_info=True)


def make_client(target: MqttTarget, options: ClientOptions) -> paho.Client:
    """A configured, not yet connected paho client."""
    v5 = options.protocol == "5"
    client = Client(
        CallbackAPIVersion.VERSION2,
        client_id=options.client_id,
        protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
        clean_session=None if v5 else options.clean_start,
        manual_ack=options.manual_ack,
    )
    if target.username:
        client.username_pw_set(target.username, target.password)
    if target.tls:
        context = ssl.create_default_context(cafile=options.ca_file)
        client.tls_set_context(context)
    client.max_inflight_messages_set(options.max_inflight)
    client.max_queued_messages_set(0)
    if options.will is not None:
        topic, payload, qos, retain = options.will
        client.will_set(topic, payload, qos=qos, retain=retain)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client


SESSIONS_LOST: dict[str, int] = {}
"""Per client id, reconnects that found the broker had lost the persistent session."""


def connect_properties(options: ClientOptions) -> Properties | None:
    """MQTT 5 CONNECT properties (session expiry), None for 3.1.1."""
    if options.protocol != "5":
        return None
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    if options.session_expiry_s:
        props.SessionExpiryInterval = options.session_expiry_s
    return props


def connect_blocking(
    target: MqttTarget,
    options: ClientOptions,
    on_connect: Callable[[paho.Client], None] | None = None,
) -> paho.Client:
    """Connect, start paho's network thread, and wait for the broker's CONNACK.

    `on_connect` runs after every successful (re)connect, which is where subscriptions belong:
    a broker that lost our session must be told again what we want.
    """
    client = make_client(target, options)
    connected = threading.Event()
    failure: list[str] = []
    persistent = not options.clean_start and bool(options.session_expiry_s or options.manual_ack)

    def _on_connect(c: paho.Client, _userdata: Any, flags: Any, reason: Any, _props: Any) -> None:
        if reason.is_failure:
            failure.append(str(reason))
            _LOGGER.warning("broker refused connection: %s", reason)
            connected.set()
            return
        if persistent and connected.is_set() and not getattr(flags, "session_present", True):
            # A reconnect that found no session: the broker lost it (a crash before its
            # autosave, docs/deployment.md), and what it received for us meanwhile is gone.
            SESSIONS_LOST[options.client_id] = SESSIONS_LOST.get(options.client_id, 0) + 1
            _LOGGER.error(
                "the broker lost the persistent session of %s: messages published while it "
                "was away may be lost (a broker crash before its autosave?)",
                options.client_id,
            )
        _nodelay(c)
        if on_connect is not None:
            try:
                on_connect(c)
            except Exception:
                _LOGGER.exception("on_connect handler failed")
        connected.set()

    client.on_connect = _on_connect
    try:
        client.connect(
            target.host,
            target.port,
            keepalive=options.keepalive_s,
            clean_start=options.clean_start
            if options.protocol == "5"
            else paho.MQTT_CLEAN_START_FIRST_ONLY,
            properties=connect_properties(options),
        )
    except OSError as err:
        msg = f"cannot reach MQTT broker at {target.url()}: {err}"
        raise MqttConnectError(msg) from err
    client.loop_start()
    if not connected.wait(CONNECT_TIMEOUT_S) or failure:
        client.loop_stop()
        client.disconnect()
        why = failure[0] if failure else "no answer"
        msg = f"MQTT broker at {target.url()} refused the connection: {why}"
        raise MqttConnectError(msg)
    return client


def close(client: paho.Client) -> None:
    """Disconnect cleanly and stop the network thread."""
    try:
        client.disconnect()
    finally:
        client.loop_stop()
        release_sockets(client)


def release_sockets(client: paho.Client) -> None:
    """Close the connection's socket and the wake-up socket pair paho's `loop_start` opens
    and does not always close (a client stopped before its first connection leaks it). No
    DISCONNECT is sent: after `close` it is already gone, after a simulated crash it must
    not be."""
    reset = getattr(client, "_reset_sockets", None)
    if callable(reset):
        reset()


CONNECT_BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
"""Waits between first-connect attempts; paho's own reconnect takes over once connected."""


def connect_until_stopped(
    target: MqttTarget,
    options: ClientOptions,
    stopping: threading.Event,
    on_connect: Callable[[paho.Client], None] | None = None,
    name: str = "client",
) -> paho.Client | None:
    """`connect_blocking`, retried with backoff until it works or `stopping` is set (→ None).

    Services start before the broker does in a compose stack; they must wait, not die.
    """
    attempt = 0
    while not stopping.is_set():
        try:
            return connect_blocking(target, options, on_connect=on_connect)
        except MqttConnectError as err:
            delay = CONNECT_BACKOFF_S[min(attempt, len(CONNECT_BACKOFF_S) - 1)]
            attempt += 1
            _LOGGER.warning("%s cannot connect (%s); retrying in %s s", name, err, delay)
            stopping.wait(delay)
    return None
