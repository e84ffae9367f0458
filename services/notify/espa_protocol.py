"""ESPA 4.4.4 framing, with no I/O: control characters, the selecting sequence, data blocks and
their block check character, and display-text encoding (docs/espa.md).

Kept apart from the channel so the bytes can be checked by hand and so the test simulator of a
paging system parses with the very same rules it is checked against.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

SOH: Final = 0x01
STX: Final = 0x02
ETX: Final = 0x03
EOT: Final = 0x04
ENQ: Final = 0x05
ACK: Final = 0x06
NAK: Final = 0x15
RS: Final = 0x1E
"""Record separator: between records."""
US: Final = 0x1F
"""Unit separator: between a record's code and its value."""

CALL_TO_PAGER: Final = "1"
"""Block function 1; 2 is status information, 3 a status request, 4 a call to a subscriber line."""


class Record(StrEnum):
    """Record codes of a call to pager."""

    CALL_ADDRESS = "1"
    DISPLAY_TEXT = "2"
    BEEPS = "3"
    CALL_TYPE = "4"
    TRANSMISSION = "5"
    PRIORITY = "6"


class TextEncoding(StrEnum):
    """How display text becomes bytes: paging systems differ, so the site chooses."""

    ASCII = "ascii"
    """7-bit ASCII; æ ø å become ae oe aa, other letters lose their accents, the rest `?`."""
    LATIN1 = "latin-1"
    UTF8 = "utf-8"


class FramingError(ValueError):
    """Bytes that are not a well-formed data block (bad structure or BCC)."""


_DANISH: Final = str.maketrans(
    {"æ": "ae", "ø": "oe", "å": "aa", "Æ": "Ae", "Ø": "Oe", "Å": "Aa", "ß": "ss"}
)
MAX_ADDRESS: Final = 16
"""Call addresses longer than this are refused: pagers and handsets are numbered, not named."""


def bcc(data: bytes) -> int:
    """XOR of `data`: pass every byte after SOH up to and including ETX."""
    check = 0
    for byte in data:
        check ^= byte
    return check


def selecting(own: str, peer: str) -> bytes:
    """`<own> ENQ <peer> ENQ`: the control station polls itself, becoming the temporary master,
    then selects the paging system, which answers ACK when it is ready for a block."""
    return _address(own) + bytes([ENQ]) + _address(peer) + bytes([ENQ])


def _address(address: str) -> bytes:
    if len(address) != 1 or not address.isdigit():
        raise ValueError(f"an ESPA station address is one digit 0-9, not {address!r}")
    return address.encode("ascii")


def transliterate(text: str) -> str:
    """Text that 7-bit ASCII can carry: Danish letters spelt out, accents dropped, the rest `?`."""
    spelt = unicodedata.normalize("NFKD", text.translate(_DANISH))
    out = []
    for char in spelt:
        if unicodedata.combining(char):
            continue
        out.append(char if ord(char) < 0x80 else "?")
    return "".join(out)


def display_text(text: str, encoding: TextEncoding, max_chars: int) -> bytes:
    """The display text as bytes: control characters become spaces (they would end the record
    or the block), then transliteration for ASCII, then at most `max_chars` characters."""
    clean = "".join(" " if unicodedata.category(c) == "Cc" else c for c in text)
    if encoding is TextEncoding.ASCII:
        clean = transliterate(clean)
    return clean[:max_chars].encode(encoding.value, errors="replace")


def call_address(address: str) -> bytes:
    """A call address as bytes: printable ASCII, 1 to 16 characters."""
    if not 0 < len(address) <= MAX_ADDRESS or not all(0x20 < ord(c) < 0x7F for c in address):
        raise ValueError(f"not an ESPA call address: {address!r}")
    return address.encode("ascii")


def data_block(function: str, records: Sequence[tuple[str, bytes]]) -> bytes:
    """`SOH <function> STX <code> US <value> (RS <code> US <value>)... ETX <BCC>`."""
    for code, value in records:
        if any(b < 0x20 for b in value) or not code.isdigit():
            raise ValueError(f"record {code!r} carries a control character")
    body = bytes([RS]).join(code.encode("ascii") + bytes([US]) + value for code, value in records)
    checked = function.encode("ascii") + bytes([STX]) + body + bytes([ETX])
    return bytes([SOH]) + checked + bytes([bcc(checked)])


@dataclass(frozen=True, slots=True)
class Block:
    """A parsed data block: its function and its records, values still as bytes."""

    function: str
    records: tuple[tuple[str, bytes], ...]

    def get(self, code: str) -> bytes | None:
        """The value of the first record with this code, or None."""
        return next((value for c, value in self.records if c == code), None)


def parse_block(frame: bytes) -> Block:
    """Parse `SOH ... ETX BCC`, checking structure and BCC; raises `FramingError`."""
    if len(frame) < 4 or frame[0] != SOH or frame[-2] != ETX:
        raise FramingError("a data block runs SOH ... ETX BCC")
    checked = frame[1:-1]
    if bcc(checked) != frame[-1]:
        raise FramingError(f"BCC {frame[-1]:#04x} != {bcc(checked):#04x}")
    function, stx, body = checked[:-1].partition(bytes([STX]))
    if not stx or not function:
        raise FramingError("no function before STX")
    records = []
    for raw in body.split(bytes([RS])) if body else []:
        code, us, value = raw.partition(bytes([US]))
        if not us or not code.isdigit():
            raise FramingError(f"malformed record {raw!r}")
        records.append((code.decode("ascii"), value))
    return Block(function.decode("ascii", errors="replace"), tuple(records))
