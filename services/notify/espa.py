"""The ESPA 4.4.4 channel: CareHub as the control station calling a DECT or paging system's
handsets over a serial line or a TCP serial converter (docs/espa.md).

One exchange runs at a time on the line: select the paging system, send one "call to pager"
block, resend it on NAK a few times, end with EOT. The paging system's ACK says only that it
took the block, never that a person accepted the call, so the ladder keeps going until someone
acknowledges on CareHub. Every step waits a bounded time; silence, a NAK beyond the retries or a
lost link raise `ChannelError`, and a broken link is reopened on the next send.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final
from urllib.parse import parse_qs, urlsplit

import serial

from services.notify.channel import ChannelError, Notice, Target, Urgency
from services.notify.espa_protocol import (
    ACK,
    CALL_TO_PAGER,
    EOT,
    NAK,
    Record,
    TextEncoding,
    call_address,
    data_block,
    display_text,
    selecting,
)

_LOGGER = logging.getLogger(__name__)

DEFAULT_PRIORITIES: Final[Mapping[Urgency, str]] = MappingProxyType(
    {Urgency.HIGH: "2", Urgency.MEDIUM: "1", Urgency.LOW: "1"}
)
"""Record 6: `2` (high) for high alarms, `1` (normal) otherwise."""

_POLL: Final = 0.05
"""How long one read waits before the step's own deadline is checked again."""

_PARITIES: Final = {
    "N": serial.PARITY_NONE,
    "E": serial.PARITY_EVEN,
    "O": serial.PARITY_ODD,
    "M": serial.PARITY_MARK,
    "S": serial.PARITY_SPACE,
}


@dataclass(frozen=True, slots=True)
class EspaSettings:
    """How to reach the paging system and what to put in a call (docs/espa.md)."""

    target: str
    """`tcp://host:port`, `serial:///dev/ttyUSB0?baud=9600&bytesize=8&parity=N&stopbits=1`,
    or any pyserial URL (`socket://`, `loop://`, `rfc2217://`)."""
    own_address: str = "1"
    """CareHub's station address (the control station)."""
    paging_address: str = "2"
    """The paging system's station address."""
    step_timeout: float = 3.0
    """Seconds to wait for each answer (to the selection, to each block)."""
    retries: int = 3
    """How often a NAKed selection or block is sent again before giving up."""
    encoding: TextEncoding = TextEncoding.ASCII
    max_text: int = 80
    """Display text is cut to this many characters (after transliteration)."""
    show_code: bool = True
    """End the display text with ` #` and the alarm's short code (`short_code`)."""
    priorities: Mapping[Urgency, str] = field(default_factory=lambda: dict(DEFAULT_PRIORITIES))
    """Record 6 per urgency."""
    beeps: Mapping[Urgency, str] = field(default_factory=dict)
    """Record 3 per urgency; an urgency not listed sends no beep record (the handset's own)."""
    call_type: str | None = None
    """Record 4, sent only when set: its values differ between paging systems."""
    transmission: str | None = None
    """Record 5, sent only when set."""

    def __post_init__(self) -> None:
        # Accept the site file's plain strings ("ascii", {"high": "2"}) as well as the enums.
        object.__setattr__(self, "encoding", TextEncoding(self.encoding))
        missing = set(Urgency) - set(self.priorities)
        if missing:
            raise ValueError(f"ESPA priorities: no value for {sorted(missing)}")
        selecting(self.own_address, self.paging_address)  # validates both addresses
        if self.step_timeout <= 0 or self.retries < 0 or self.max_text < 1:
            raise ValueError("step_timeout > 0, retries >= 0 and max_text >= 1 are required")
        _port_spec(self.target)  # validates the URL


def short_code(alarm_id: str) -> str:
    """Four characters a handset shows so the alarm can be found on the board."""
    return alarm_id.replace("-", "")[:4].upper()


@dataclass(frozen=True, slots=True)
class _PortSpec:
    url: str
    baudrate: int = 9600
    bytesize: int = 8
    parity: str = serial.PARITY_NONE
    stopbits: float = 1.0


def _port_spec(target: str) -> _PortSpec:
    parts = urlsplit(target)
    if parts.scheme == "tcp":
        if not parts.hostname or parts.port is None:
            raise ValueError(f"ESPA target {target!r}: tcp://host:port")
        return _PortSpec(f"socket://{parts.hostname}:{parts.port}")
    if parts.scheme == "serial":
        if not parts.path:
            raise ValueError(f"ESPA target {target!r}: serial:///dev/ttyUSB0?baud=9600")
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        unknown = set(query) - {"baud", "bytesize", "parity", "stopbits"}
        if unknown:
            raise ValueError(f"ESPA target {target!r}: unknown settings {sorted(unknown)}")
        parity = query.get("parity", "N").upper()
        if parity not in _PARITIES:
            raise ValueError(f"ESPA target {target!r}: parity is one of {''.join(_PARITIES)}")
        return _PortSpec(
            parts.path,
            baudrate=int(query.get("baud", "9600")),
            bytesize=int(query.get("bytesize", "8")),
            parity=_PARITIES[parity],
            stopbits=float(query.get("stopbits", "1")),
        )
    if parts.scheme in {"socket", "loop", "rfc2217"}:
        return _PortSpec(target)
    raise ValueError(f"ESPA target {target!r}: use tcp://host:port or serial:///dev/...")


class _SilenceError(ChannelError):
    """No answer within the step timeout."""


class EspaChannel:
    """ESPA 4.4.4 to a paging system; `Target.address` is the handset's call address."""

    name = "espa"

    def __init__(self, settings: EspaSettings) -> None:
        self.settings = settings
        spec = _port_spec(settings.target)
        if spec.bytesize != 8 and settings.encoding is not TextEncoding.ASCII:
            raise ValueError("7-bit characters carry only the ascii encoding")
        self._spec = spec
        self._lock = threading.Lock()
        self._port: serial.Serial | None = None

    def send(self, target: Target, notice: Notice) -> None:
        """Page one handset; returns once the paging system ACKed the block."""
        try:
            block = self.block_for(target.address, notice)
        except ValueError as exc:
            raise ChannelError(f"espa: {target.phone_id}: {exc}") from exc
        with self._lock:
            self._exchange(block, f"call to {target.address} ({target.phone_id})")
        _LOGGER.info("espa: %s took the call to %s", self.settings.target, target.address)

    def check(self) -> None:
        """Select the paging system and end at once: answered by ACK, the link works.

        This is the same handshake every call starts with, and it needs no data from the paging
        system (a poll would hand it the line, and status blocks it then sent would need an
        answer)."""
        with self._lock:
            self._exchange(None, "link check")

    def close(self) -> None:
        """Close the port; the next send opens it again."""
        with self._lock:
            self._drop()

    def block_for(self, address: str, notice: Notice) -> bytes:
        """The call-to-pager block for one notice (public so the bytes can be inspected)."""
        s = self.settings
        text = f"{notice.title}: {notice.body}" if notice.body else notice.title
        suffix = f" #{short_code(notice.alarm_id)}" if s.show_code else ""
        room = max(s.max_text - len(suffix), 0)
        shown = display_text(text, s.encoding, room) + display_text(
            suffix, s.encoding, s.max_text - room
        )
        records: list[tuple[str, bytes]] = [
            (Record.CALL_ADDRESS, call_address(address)),
            (Record.DISPLAY_TEXT, shown),
        ]
        beeps = s.beeps.get(notice.urgency)
        if beeps is not None:
            records.append((Record.BEEPS, beeps.encode("ascii")))
        if s.call_type is not None:
            records.append((Record.CALL_TYPE, s.call_type.encode("ascii")))
        if s.transmission is not None:
            records.append((Record.TRANSMISSION, s.transmission.encode("ascii")))
        records.append((Record.PRIORITY, s.priorities[notice.urgency].encode("ascii")))
        return data_block(CALL_TO_PAGER, records)

    # The exchange, always under the lock.

    def _exchange(self, block: bytes | None, what: str) -> None:
        port = self._open()
        try:
            port.reset_input_buffer()
            self._select(port, what)
            if block is not None:
                self._deliver(port, block, what)
            self._write(port, bytes([EOT]))
        except _SilenceError:
            self._drop()
            raise
        except ChannelError:
            self._end(port)
            raise
        except (serial.SerialException, OSError) as exc:
            self._drop()
            raise ChannelError(f"espa: link to {self.settings.target} lost: {exc}") from exc

    def _open(self) -> serial.Serial:
        if self._port is not None:
            return self._port
        try:
            port = serial.serial_for_url(
                self._spec.url,
                timeout=_POLL,
                write_timeout=self.settings.step_timeout,
                baudrate=self._spec.baudrate,
                bytesize=self._spec.bytesize,
                parity=self._spec.parity,
                stopbits=self._spec.stopbits,
            )
            sock = getattr(port, "_socket", None)
            if isinstance(sock, socket.socket):  # one byte answers one byte: no Nagle delay
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            port.write(bytes([EOT]))  # a poll always follows EOT: start from a known state
            port.flush()
        except (serial.SerialException, OSError, ValueError) as exc:
            raise ChannelError(f"espa: cannot open {self.settings.target}: {exc}") from exc
        _LOGGER.info("espa: opened %s", self.settings.target)
        self._port = port
        return port

    def _select(self, port: serial.Serial, what: str) -> None:
        s = self.settings
        for attempt in range(s.retries + 1):
            self._write(port, selecting(s.own_address, s.paging_address))
            answer, prefix = self._answer(port, what)
            if answer == ACK:
                return
            _LOGGER.warning(
                "espa: paging system answered %s%s to selection (%s, attempt %d)",
                prefix.decode("ascii"),
                "NAK" if answer == NAK else "EOT",
                what,
                attempt + 1,
            )
            self._write(port, bytes([EOT]))
        raise ChannelError(
            f"espa: the paging system refused selection {s.retries + 1} times ({what})"
        )

    def _deliver(self, port: serial.Serial, block: bytes, what: str) -> None:
        s = self.settings
        for attempt in range(s.retries + 1):
            self._write(port, block)
            answer, prefix = self._answer(port, what)
            if answer == ACK:
                return
            if answer == EOT:
                raise ChannelError(f"espa: the paging system ended the exchange ({what})")
            _LOGGER.warning(
                "espa: paging system answered %sNAK (%s, attempt %d)",
                prefix.decode("ascii"),
                what,
                attempt + 1,
            )
        raise ChannelError(f"espa: NAK {s.retries + 1} times ({what})")

    def _answer(self, port: serial.Serial, what: str) -> tuple[int, bytes]:
        """The next ACK, NAK or EOT, with any digits before it (an address or error code)."""
        deadline = time.monotonic() + self.settings.step_timeout
        prefix = bytearray()
        while time.monotonic() < deadline:
            chunk = port.read(1)
            if not chunk:
                continue
            byte = chunk[0]
            if byte in (ACK, NAK, EOT):
                return byte, bytes(prefix[-2:])
            if 0x30 <= byte <= 0x39:
                prefix.append(byte)
            else:
                _LOGGER.debug("espa: ignoring %#04x while waiting (%s)", byte, what)
        raise _SilenceError(
            f"espa: no answer from {self.settings.target} within "
            f"{self.settings.step_timeout:g} s ({what})"
        )

    def _write(self, port: serial.Serial, data: bytes) -> None:
        port.write(data)
        port.flush()

    def _end(self, port: serial.Serial) -> None:
        """EOT after a refused exchange, so the line is back where a poll may start."""
        try:
            self._write(port, bytes([EOT]))
        except (serial.SerialException, OSError):
            self._drop()

    def _drop(self) -> None:
        if self._port is None:
            return
        port, self._port = self._port, None
        # pyserial's socket:// skips closing its socket when shutdown() fails on a dead peer.
        sock = getattr(port, "_socket", None)
        try:
            port.close()
        except (serial.SerialException, OSError) as exc:
            _LOGGER.debug("espa: closing %s: %s", self.settings.target, exc)
        if isinstance(sock, socket.socket):
            sock.close()
