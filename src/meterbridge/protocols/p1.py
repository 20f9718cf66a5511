"""DSMR P1 telegrams (the Dutch/Belgian/Luxembourg smart-meter port), sans-IO.

A telegram::

    /ISK5\\2M550T-1012           header: '/', manufacturer (3), '5' (baud char), identification
    (empty line)
    1-0:1.8.1(000992.992*kWh)    data lines, read by the IEC 62056-21 data-line reader
    0-1:24.2.1(231128104500W)(12785.123*m3)   M-Bus channel 1: timestamp, value
    !1E4A                        '!' and CRC-16/ARC (poly 0xA001 reflected, init 0) in hex

The CRC covers every byte from ``/`` to ``!`` inclusive. DSMR 2.2/3 telegrams end
with a bare ``!`` and carry no CRC (``Telegram.crc`` is ``None``). Timestamps
``YYMMDDhhmmssW|S`` become aware datetimes (W = UTC+1, S = UTC+2); equipment
identifiers (``0-n:96.1.0``/``96.1.1``) and text messages (``96.13.0``), which DSMR
sends as hex, are decoded to text in readings. ``P1Reader`` cuts telegrams out of a
byte stream (noise between telegrams is skipped).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from meterbridge.errors import ChecksumError, FramingError, ProtocolError
from meterbridge.obis import ObisCode
from meterbridge.protocols.events import NEED_DATA, NeedData
from meterbridge.protocols.iec62056_21.conversion import meter_id_of, reading_of
from meterbridge.protocols.iec62056_21.datasets import (
    DataLine,
    DataSet,
    encode_data_block,
    obis_of,
    parse_data_block,
)
from meterbridge.readings import Reading

__all__ = ["MAX_TELEGRAM", "P1Reader", "Telegram", "crc16_arc", "decode_hex_text", "to_readings"]

LAYER: Final = "p1"
MAX_TELEGRAM: Final = 16384  # DSMR 5 telegrams are 1-3 KiB; a text message adds up to 2 KiB


def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


_CRC_TABLE: Final = _crc_table()


def crc16_arc(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-16/ARC (IBM): reflected polynomial 0xA001, initial value 0, no final XOR."""
    table = _CRC_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


_HEX_TEXT_CODES: Final = frozenset({(96, 1, 0), (96, 1, 1), (96, 13, 0), (96, 13, 1)})


def decode_hex_text(code: ObisCode | None, text: str) -> str:
    """DSMR sends equipment ids and text messages as hex of ASCII: decode those, leave others as they are."""
    if code is None or (code.c, code.d, code.e) not in _HEX_TEXT_CODES or len(text) % 2 or not text:
        return text
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        return text
    decoded = raw.decode("latin-1")
    return decoded if decoded.isprintable() and raw.isascii() else text


@dataclass(frozen=True, slots=True)
class Telegram:
    """One P1 telegram: the header after ``/``, its data lines, and the CRC it carried (``None``: none)."""

    header: str
    lines: tuple[DataLine, ...]
    crc: int | None = None

    def __post_init__(self) -> None:
        if len(self.header) < 5 or not self.header.isascii() or not self.header.isprintable():
            raise ValueError(f"P1 header {self.header!r}: at least 5 printable ASCII characters")

    @property
    def manufacturer(self) -> str:
        return self.header[:3]

    @property
    def identification(self) -> str:
        return self.header[4:].lstrip("\\2")

    @property
    def data_sets(self) -> tuple[DataSet, ...]:
        return tuple(s for line in self.lines for s in line)

    @property
    def timestamp(self) -> datetime | None:
        """The meter's clock (``0-0:1.0.0``) when the telegram carries it."""
        for s in self.data_sets:
            code = obis_of(s.address)
            if code is not None and (code.c, code.d, code.e) == (1, 0, 0) and code.a == 0:
                value = s.value
                if isinstance(value, datetime):
                    return value
        return None

    def encode(self, *, with_crc: bool = True) -> bytes:
        """The wire form; the CRC is computed (``with_crc=False``: DSMR 2.2/3 style, none)."""
        body = f"/{self.header}\r\n\r\n{encode_data_block(self.lines)}!".encode("ascii")
        if not with_crc:
            return body + b"\r\n"
        return body + f"{crc16_arc(body):04X}\r\n".encode("ascii")

    @classmethod
    def decode(cls, raw: bytes | bytearray | memoryview) -> Telegram:
        """Decode one telegram from ``/`` to the CRC (the final CR LF may be missing)."""
        data = bytes(raw)
        if not data.startswith(b"/"):
            raise FramingError("a P1 telegram starts with '/'", offset=0, layer=LAYER)
        head_end = data.find(b"\r\n")
        if head_end < 0:
            raise FramingError("header line has no CR LF", offset=len(data), layer=LAYER)
        bang = data.find(b"\r\n!", head_end) + 2
        if bang < 2:
            raise FramingError("no '!' line ends the telegram", offset=len(data), layer=LAYER)
        tail = data[bang + 1 :]
        if tail.endswith(b"\r\n"):
            tail = tail[:-2]
        crc: int | None = None
        if tail:
            if len(tail) != 4 or not all(c in b"0123456789ABCDEFabcdef" for c in tail):
                raise FramingError(
                    f"expected 4 hex digits of CRC after '!', got {tail[:8]!r}", offset=bang + 1, layer=LAYER
                )
            crc = int(tail, 16)
            computed = crc16_arc(memoryview(data)[: bang + 1])
            if computed != crc:
                raise ChecksumError(
                    f"CRC-16 mismatch: computed {computed:04X}, telegram carries {crc:04X}",
                    offset=bang + 1,
                    layer=LAYER,
                )
        try:
            text = data[:bang].decode("ascii")
        except UnicodeDecodeError as exc:
            raise FramingError(
                f"byte 0x{data[exc.start]:02X} is not ASCII", offset=exc.start, layer=LAYER
            ) from None
        header = text[1:head_end]
        start = head_end + 2
        while text.startswith("\r\n", start):  # the empty line after the header
            start += 2
        try:
            return cls(header, parse_data_block(text, start=start, base=0), crc)
        except ValueError as exc:
            if isinstance(exc, FramingError):
                raise
            raise FramingError(str(exc), offset=1, layer=LAYER) from None


class P1Reader:
    """Cuts telegrams out of a P1 byte stream: ``receive_data`` then ``next_event`` -> ``Telegram``.

    Bytes before a ``/`` are noise and skipped; a telegram longer than
    ``MAX_TELEGRAM`` raises ``FramingError`` and the reader resynchronises on the
    next ``/``. A telegram with a wrong CRC raises ``ChecksumError`` (it is
    consumed; the next one decodes normally).
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self.skipped = 0  # noise bytes dropped before telegrams
        self.consumed = 0  # stream offset of the first byte still buffered

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        self._buf += data

    def _drop(self, count: int) -> None:
        del self._buf[:count]
        self.consumed += count

    def next_event(self) -> Telegram | NeedData:
        """The next telegram, or ``NEED_DATA``. Error offsets count from the start of the stream."""
        buf = self._buf
        start = buf.find(b"/")
        if start < 0:
            self.skipped += len(buf)
            self._drop(len(buf))
            return NEED_DATA
        if start:
            self.skipped += start
            self._drop(start)
        bang = buf.find(b"\r\n!")
        end = buf.find(b"\r\n", bang + 3) if bang >= 0 else -1
        if end < 0:
            if len(buf) > MAX_TELEGRAM:
                base = self.consumed
                self._drop(1)
                raise FramingError(
                    f"no end of telegram within {MAX_TELEGRAM} bytes", offset=base, layer=LAYER
                )
            return NEED_DATA
        raw = bytes(buf[: end + 2])
        base = self.consumed
        self._drop(end + 2)
        try:
            return Telegram.decode(raw)
        except ProtocolError as exc:
            raise type(exc)(exc.message, offset=base + (exc.offset or 0), layer=exc.layer) from None


def to_readings(telegram: Telegram, *, received_at: datetime) -> list[Reading]:
    """Readings of a telegram: the E-meter's under its equipment id, M-Bus channel n under the device's id.

    The timestamp is the telegram's clock (``0-0:1.0.0``) or ``received_at``; an
    M-Bus value carries its own capture time.
    """
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    sets = telegram.data_sets
    main_sets = [s for s in sets if (c := obis_of(s.address)) is None or c.b == 0]
    main = meter_id_of(main_sets, telegram.header, decode_hex_text) or telegram.header
    stamp = telegram.timestamp or received_at
    channel_ids: dict[int, str] = {}
    for s in sets:
        code = obis_of(s.address)
        if code is not None and code.b and (code.c, code.d) == (96, 1) and s.values[0].text.strip():
            channel_ids.setdefault(code.b, decode_hex_text(code, s.values[0].text.strip()))
    out = []
    for s in sets:
        code = obis_of(s.address)
        meter = main
        if code is not None and code.b:
            meter = channel_ids.get(code.b, f"{main}/{code.b}")
        reading = reading_of(s, meter, stamp, decode_hex_text)
        if reading is not None:
            out.append(reading)
    return out
