"""A paging system for tests: speaks ESPA 4.4.4 as the selected station, over TCP or a
pseudo-terminal, checks every block's BCC, answers ACK or NAK, and records the calls it took.

It can be told to NAK the next N blocks, to go silent (read, never answer), or to drop the TCP
connection, so the channel's retries, timeouts and reconnects can be tested without hardware.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass

from services.notify.espa_protocol import (
    ACK,
    ENQ,
    EOT,
    ETX,
    NAK,
    SOH,
    FramingError,
    Record,
    parse_block,
)


@dataclass(frozen=True)
class Call:
    """One call-to-pager block the paging system took."""

    function: str
    address: str
    text: str
    priority: str | None
    records: dict[str, bytes]
    raw: bytes


class EspaPager:
    """The paging system (address `2` by default; the control station is `1`)."""

    def __init__(self, *, address: str = "2", control: str = "1", encoding: str = "ascii") -> None:
        self.address = address.encode()
        self.control = control.encode()
        self.encoding = encoding
        self.calls: list[Call] = []
        self.selections = 0
        self.polls = 0
        self.bad_blocks = 0
        self.received = bytearray()
        """Every byte the control station sent, for checking exact sequences."""
        self.nak_next = 0
        """NAK this many blocks (good or not) before taking one."""
        self.refuse_selections = 0
        """Answer NAK to this many selections."""
        self.silent = False
        """Read everything, answer nothing."""
        self._changed = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._conn: socket.socket | None = None
        self._master: int | None = None
        self._slave: int | None = None
        self.url = ""
        """Where the channel connects: `tcp://127.0.0.1:<port>` or `serial://<pty>`."""

    # Transports.

    def start_tcp(self) -> EspaPager:
        """Listen on a free local port; one connection at a time, a new one replaces the old."""
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.url = f"tcp://127.0.0.1:{self._listener.getsockname()[1]}"
        self._spawn(self._accept_loop)
        return self

    def start_pty(self) -> EspaPager:
        """Open a pseudo-terminal; the channel opens its slave side as a serial port."""
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.url = f"serial://{os.ttyname(self._slave)}?baud=9600"
        master = self._master
        self._spawn(lambda: self._serve(lambda: _read_fd(master), lambda b: _write_fd(master, b)))
        return self

    def drop(self) -> None:
        """Close the current TCP connection, as a converter losing power would."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def stop(self) -> None:
        """Stop serving and release the port or pty."""
        self._stop.set()
        self.drop()
        for thread in self._threads:
            thread.join(timeout=2)
        if self._listener is not None:
            self._listener.close()
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)

    def wait_calls(self, count: int, timeout: float = 5.0) -> list[Call]:
        """Block until `count` calls were taken; returns them all."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.calls) >= count, timeout):
                raise AssertionError(f"{len(self.calls)} calls, wanted {count}")
            return list(self.calls)

    def _spawn(self, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.drop()
            self._conn = conn
            conn.settimeout(0.1)
            self._spawn(lambda c=conn: self._serve(lambda: _read_sock(c), c.sendall))

    # The protocol, as the selected station.

    def _serve(self, read: Callable[[], bytes | None], write: Callable[[bytes], None]) -> None:
        selected = False
        polled_self = False  # the control station sent `1 ENQ`: it is the temporary master
        last = b""
        frame = bytearray()
        in_block = False
        while not self._stop.is_set():
            try:
                data = read()
            except OSError:
                return
            if data is None:
                return  # connection closed
            for byte in data:
                self.received.append(byte)
                if in_block:
                    frame.append(byte)
                    if len(frame) >= 2 and frame[-2] == ETX:
                        in_block = False
                        self._answer(self._take(bytes(frame)), write)
                    continue
                if byte == SOH and selected:
                    frame = bytearray([byte])
                    in_block = True
                elif byte == EOT:
                    selected = polled_self = False
                elif byte == ENQ:
                    if last == self.address and polled_self:
                        selected = self._on_selected(write)
                    elif last == self.address:
                        self.polls += 1  # polled: nothing to send
                        self._answer(bytes([EOT]), write)
                    polled_self = last == self.control
                last = bytes([byte])

    def _on_selected(self, write: Callable[[bytes], None]) -> bool:
        with self._changed:
            self.selections += 1
            refuse = self.refuse_selections > 0
            if refuse:
                self.refuse_selections -= 1
        if refuse:
            self._answer(b"1" + bytes([NAK]), write)
            return False
        self._answer(bytes([ACK]), write)
        return True

    def _take(self, frame: bytes) -> bytes:
        with self._changed:
            try:
                block = parse_block(frame)
            except FramingError:
                self.bad_blocks += 1
                return b"1" + bytes([NAK])  # error code 1: transmission error
            if self.nak_next > 0:
                self.nak_next -= 1
                return b"1" + bytes([NAK])
            records = dict(block.records)
            self.calls.append(
                Call(
                    function=block.function,
                    address=records.get(Record.CALL_ADDRESS, b"").decode("ascii"),
                    text=records.get(Record.DISPLAY_TEXT, b"").decode(self.encoding),
                    priority=(
                        records[Record.PRIORITY].decode("ascii")
                        if Record.PRIORITY in records
                        else None
                    ),
                    records=records,
                    raw=frame,
                )
            )
            self._changed.notify_all()
            return bytes([ACK])

    def _answer(self, reply: bytes, write: Callable[[bytes], None]) -> None:
        if not self.silent:
            write(reply)


def _read_sock(conn: socket.socket) -> bytes | None:
    try:
        data = conn.recv(4096)
    except TimeoutError:
        return b""
    return data or None


def _read_fd(fd: int) -> bytes | None:
    ready, _, _ = select.select([fd], [], [], 0.1)
    if not ready:
        return b""
    return os.read(fd, 4096) or None


def _write_fd(fd: int, data: bytes) -> None:
    while data:
        written = os.write(fd, data)
        data = data[written:]


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll until `predicate` holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)
