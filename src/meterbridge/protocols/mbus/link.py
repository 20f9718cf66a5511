"""EN 13757-2 link layer: frames, master requests, and the streaming ``MBusLink``.

Frames (frozen values, each with ``encode()`` and one ``decode`` classmethod):

* :class:`SingleCharacter` ``E5`` (acknowledge),
* :class:`ShortFrame` ``10 C A CS 16``,
* :class:`ControlFrame` ``68 03 03 68 C A CI CS 16``,
* :class:`LongFrame` ``68 L L 68 C A CI data CS 16``.

Master requests (:class:`SndNke`, :class:`ReqUd2`, :class:`ReqUd1`, :class:`SelectSecondary`,
:class:`ApplicationReset`, :class:`SetBaudRate`, :class:`SetPrimaryAddress`,
:class:`SendUserData`) turn into frames with ``to_frame()`` and back with
:func:`decode_request` (the slave role).

:class:`MBusLink` is the sans-IO stream: ``receive_data(bytes)``, ``next_event()`` ->
a frame, :class:`LinkNoise` (bytes that are not a frame: line noise, a collision, a bad
checksum) or ``NEED_DATA``; ``send(request) -> bytes``. It drops the echo of our own
request, resynchronises after noise and refuses to buffer more than ``max_buffer`` bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from meterbridge.errors import ChecksumError, FramingError, ProtocolError, UnsupportedError
from meterbridge.protocols.events import NEED_DATA, NeedData

__all__ = [
    "ACK",
    "ADDRESS_BROADCAST_NO_REPLY",
    "ADDRESS_BROADCAST_REPLY",
    "ADDRESS_NETWORK_LAYER",
    "ADDRESS_UNCONFIGURED",
    "BAUD_RATE_CI",
    "C_REQ_UD1",
    "C_REQ_UD2",
    "C_RSP_UD",
    "C_SND_NKE",
    "C_SND_UD",
    "ApplicationReset",
    "ControlFrame",
    "Frame",
    "LinkNoise",
    "LongFrame",
    "MBusLink",
    "ReqUd1",
    "ReqUd2",
    "Request",
    "SecondaryAddress",
    "SelectSecondary",
    "SendUserData",
    "SetBaudRate",
    "SetPrimaryAddress",
    "ShortFrame",
    "SingleCharacter",
    "SndNke",
    "checksum",
    "decode_frame",
    "decode_request",
    "frame_length",
]

LAYER: Final = "mbus"
ACK: Final = 0xE5
START_SHORT: Final = 0x10
START_LONG: Final = 0x68
STOP: Final = 0x16

C_SND_NKE: Final = 0x40
C_SND_UD: Final = 0x53
C_REQ_UD2: Final = 0x5B
C_REQ_UD1: Final = 0x5A
C_RSP_UD: Final = 0x08
FCB: Final = 0x20
FCV: Final = 0x10

ADDRESS_UNCONFIGURED: Final = 0
ADDRESS_NETWORK_LAYER: Final = 253  # the slave selected by secondary address
ADDRESS_BROADCAST_REPLY: Final = 254
ADDRESS_BROADCAST_NO_REPLY: Final = 255

BAUD_RATE_CI: Final[dict[int, int]] = {
    300: 0xB8,
    600: 0xB9,
    1200: 0xBA,
    2400: 0xBB,
    4800: 0xBC,
    9600: 0xBD,
    19200: 0xBE,
    38400: 0xBF,
}
_CI_BAUD_RATE: Final[dict[int, int]] = {ci: baud for baud, ci in BAUD_RATE_CI.items()}

CI_APPLICATION_RESET: Final = 0x50
CI_DATA_SEND: Final = 0x51
CI_SELECT: Final = 0x52


def checksum(data: bytes | bytearray | memoryview, start: int = 0, end: int | None = None) -> int:
    """Arithmetic sum modulo 256 of ``data[start:end]`` (EN 60870-5-2)."""
    return sum(data[start:end]) & 0xFF


# --------------------------------------------------------------------------- frames


@dataclass(frozen=True, slots=True)
class SingleCharacter:
    """``E5``: the acknowledgement."""

    def encode(self) -> bytes:
        return b"\xe5"

    @classmethod
    def decode(cls, buffer: bytes, offset: int = 0) -> SingleCharacter:
        if len(buffer) <= offset or buffer[offset] != ACK:
            raise FramingError("expected single character E5", offset=offset, layer=LAYER)
        return SINGLE_CHARACTER


SINGLE_CHARACTER: Final = SingleCharacter()


def _check_byte(name: str, value: int) -> None:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"{name} must be 0..255, got {value}")


@dataclass(frozen=True, slots=True)
class ShortFrame:
    """``10 C A CS 16``."""

    c: int
    address: int

    def __post_init__(self) -> None:
        _check_byte("c", self.c)
        _check_byte("address", self.address)

    def encode(self) -> bytes:
        return bytes((START_SHORT, self.c, self.address, (self.c + self.address) & 0xFF, STOP))

    @classmethod
    def decode(cls, buffer: bytes, offset: int = 0) -> ShortFrame:
        if len(buffer) - offset < 5:
            raise FramingError(
                f"short frame needs 5 bytes, got {len(buffer) - offset}", offset=len(buffer), layer=LAYER
            )
        if buffer[offset] != START_SHORT:
            raise FramingError("expected start byte 10", offset=offset, layer=LAYER)
        c, a, cs, stop = buffer[offset + 1], buffer[offset + 2], buffer[offset + 3], buffer[offset + 4]
        if (c + a) & 0xFF != cs:
            raise ChecksumError(
                f"short frame checksum 0x{cs:02X}, expected 0x{(c + a) & 0xFF:02X}",
                offset=offset + 3,
                layer=LAYER,
            )
        if stop != STOP:
            raise FramingError(f"expected stop byte 16, got 0x{stop:02X}", offset=offset + 4, layer=LAYER)
        return cls(c, a)


@dataclass(frozen=True, slots=True)
class ControlFrame:
    """``68 03 03 68 C A CI CS 16``."""

    c: int
    address: int
    ci: int

    def __post_init__(self) -> None:
        _check_byte("c", self.c)
        _check_byte("address", self.address)
        _check_byte("ci", self.ci)

    def encode(self) -> bytes:
        return bytes(
            (
                START_LONG,
                3,
                3,
                START_LONG,
                self.c,
                self.address,
                self.ci,
                (self.c + self.address + self.ci) & 0xFF,
                STOP,
            )
        )

    @classmethod
    def decode(cls, buffer: bytes, offset: int = 0) -> ControlFrame:
        frame = decode_frame(buffer, offset)
        if not isinstance(frame, ControlFrame):
            raise FramingError("expected a control frame (L = 3)", offset=offset, layer=LAYER)
        return frame


@dataclass(frozen=True, slots=True)
class LongFrame:
    """``68 L L 68 C A CI data CS 16`` with L = 3 + len(data) (4..255)."""

    c: int
    address: int
    ci: int
    data: bytes = b""

    def __post_init__(self) -> None:
        _check_byte("c", self.c)
        _check_byte("address", self.address)
        _check_byte("ci", self.ci)
        if not 1 <= len(self.data) <= 252:
            raise ValueError(f"long frame data must be 1..252 bytes, got {len(self.data)}")

    def encode(self) -> bytes:
        length = 3 + len(self.data)
        body = bytes((self.c, self.address, self.ci)) + self.data
        return bytes((START_LONG, length, length, START_LONG)) + body + bytes((sum(body) & 0xFF, STOP))

    @classmethod
    def decode(cls, buffer: bytes, offset: int = 0) -> LongFrame:
        frame = decode_frame(buffer, offset)
        if not isinstance(frame, LongFrame):
            raise FramingError("expected a long frame", offset=offset, layer=LAYER)
        return frame


Frame = SingleCharacter | ShortFrame | ControlFrame | LongFrame
_new_object = object.__new__
_set = object.__setattr__


def frame_length(buffer: bytes, offset: int = 0) -> int:
    """Total length of the frame starting at ``offset`` (0 when more bytes are needed to tell).

    Raises ``FramingError`` when the start is not a frame start.
    """
    n = len(buffer) - offset
    if n <= 0:
        return 0
    start = buffer[offset]
    if start == ACK:
        return 1
    if start == START_SHORT:
        return 5
    if start == START_LONG:
        if n < 4:
            if n >= 3 and buffer[offset + 1] != buffer[offset + 2]:
                raise FramingError(
                    f"length fields differ: 0x{buffer[offset + 1]:02X} and 0x{buffer[offset + 2]:02X}",
                    offset=offset + 2,
                    layer=LAYER,
                )
            return 0
        length = buffer[offset + 1]
        if buffer[offset + 2] != length:
            raise FramingError(
                f"length fields differ: 0x{length:02X} and 0x{buffer[offset + 2]:02X}",
                offset=offset + 2,
                layer=LAYER,
            )
        if buffer[offset + 3] != START_LONG:
            raise FramingError(
                f"expected second start byte 68, got 0x{buffer[offset + 3]:02X}",
                offset=offset + 3,
                layer=LAYER,
            )
        if length < 3:
            raise FramingError(f"length field 0x{length:02X} below 3", offset=offset + 1, layer=LAYER)
        return length + 6
    raise FramingError(f"expected start byte E5, 10 or 68, got 0x{start:02X}", offset=offset, layer=LAYER)


def decode_frame(buffer: bytes, offset: int = 0) -> Frame:
    """Decode the one frame at ``buffer[offset:]``; bytes after it are ignored.

    Raises ``FramingError`` (structure, truncation), ``ChecksumError``.
    """
    # the common case first: a complete, well-formed long frame
    if buffer[offset : offset + 1] == b"\x68" and len(buffer) - offset >= 9:
        length = buffer[offset + 1]
        end = offset + length + 6
        if (
            buffer[offset + 2] == length
            and buffer[offset + 3] == START_LONG
            and length > 3
            and end <= len(buffer)
            and buffer[end - 1] == STOP
            and sum(buffer[offset + 4 : end - 2]) & 0xFF == buffer[end - 2]
        ):
            frame = _new_object(LongFrame)
            _set(frame, "c", buffer[offset + 4])
            _set(frame, "address", buffer[offset + 5])
            _set(frame, "ci", buffer[offset + 6])
            _set(frame, "data", bytes(buffer[offset + 7 : end - 2]))
            return frame
    total = frame_length(buffer, offset)
    available = len(buffer) - offset
    if total == 0 or total > available:
        raise FramingError(
            f"premature end of frame: expected {total or 'more'} bytes, got {available}",
            offset=len(buffer),
            layer=LAYER,
        )
    start = buffer[offset]
    if start == ACK:
        return SINGLE_CHARACTER
    if start == START_SHORT:
        return ShortFrame.decode(buffer, offset)
    end = offset + total
    body_start = offset + 4
    cs = buffer[end - 2]
    expected = sum(buffer[body_start : end - 2]) & 0xFF
    if cs != expected:
        raise ChecksumError(f"checksum 0x{cs:02X}, expected 0x{expected:02X}", offset=end - 2, layer=LAYER)
    if buffer[end - 1] != STOP:
        raise FramingError(f"expected stop byte 16, got 0x{buffer[end - 1]:02X}", offset=end - 1, layer=LAYER)
    c, a, ci = buffer[body_start], buffer[body_start + 1], buffer[body_start + 2]
    if total == 9:
        return ControlFrame(c, a, ci)
    # every field is a byte of a checked frame: skip __post_init__'s validation (hot path)
    frame = _new_object(LongFrame)
    _set(frame, "c", c)
    _set(frame, "address", a)
    _set(frame, "ci", ci)
    _set(frame, "data", bytes(buffer[body_start + 3 : end - 2]))
    return frame


# --------------------------------------------------------------------------- requests


@dataclass(frozen=True, slots=True)
class SecondaryAddress:
    """Secondary address: identification number (8 BCD digits), manufacturer, version, medium.

    ``str()`` gives libmbus's 16 hex digit form ``IIIIIIIIMMMMVVDD`` (manufacturer id as
    a 16-bit hex number, version, medium).
    """

    identification: str  # 8 digits, as printed (most significant first)
    manufacturer: int  # 16-bit manufacturer id
    version: int
    medium: int

    def __post_init__(self) -> None:
        if len(self.identification) != 8 or any(
            ch not in "0123456789ABCDEFabcdef" for ch in self.identification
        ):
            raise ValueError(f"identification must be 8 hex/BCD digits, got {self.identification!r}")
        if not 0 <= self.manufacturer <= 0xFFFF:
            raise ValueError("manufacturer must be 16 bits")
        _check_byte("version", self.version)
        _check_byte("medium", self.medium)

    def __str__(self) -> str:
        return f"{self.identification.upper()}{self.manufacturer:04X}{self.version:02X}{self.medium:02X}"

    @classmethod
    def parse(cls, text: str) -> SecondaryAddress:
        text = text.strip()
        if len(text) != 16 or any(ch not in "0123456789ABCDEFabcdef" for ch in text):
            raise ValueError(f"a secondary address is 16 hex digits, got {text!r}")
        return cls(text[:8].upper(), int(text[8:12], 16), int(text[12:14], 16), int(text[14:16], 16))

    def to_bytes(self) -> bytes:
        """The 8 bytes as on the wire (identification LSB first, manufacturer LE, version, medium)."""
        return (
            bytes.fromhex(self.identification)[::-1]
            + self.manufacturer.to_bytes(2, "little")
            + bytes((self.version, self.medium))
        )

    @property
    def manufacturer_code(self) -> str:
        from meterbridge.protocols.mbus.tables import manufacturer_code

        return manufacturer_code(self.manufacturer)


@dataclass(frozen=True, slots=True)
class SndNke:
    """SND_NKE: link reset (resets the slave's FCB); the slave answers E5."""

    address: int

    def to_frame(self) -> Frame:
        return ShortFrame(C_SND_NKE, self.address)


@dataclass(frozen=True, slots=True)
class ReqUd2:
    """REQ_UD2: request class 2 data. ``fcb`` alternates per slave when ``fcv`` is set."""

    address: int
    fcb: bool = False
    fcv: bool = True

    def to_frame(self) -> Frame:
        return ShortFrame(
            C_REQ_UD2 & ~FCV | (FCV if self.fcv else 0) | (FCB if self.fcb else 0), self.address
        )


@dataclass(frozen=True, slots=True)
class ReqUd1:
    """REQ_UD1: request class 1 (alarm) data."""

    address: int
    fcb: bool = False
    fcv: bool = True

    def to_frame(self) -> Frame:
        return ShortFrame(
            C_REQ_UD1 & ~FCV | (FCV if self.fcv else 0) | (FCB if self.fcb else 0), self.address
        )


@dataclass(frozen=True, slots=True)
class SelectSecondary:
    """SND_UD to 253 with CI 52: select the slave(s) matching a secondary address pattern.

    ``pattern`` is 16 hex digits as in :class:`SecondaryAddress`; an ``F`` digit is a
    wildcard (in the identification digits and, nibble by nibble, in manufacturer,
    version and medium).
    """

    pattern: str
    fcb: bool = False

    def __post_init__(self) -> None:
        if len(self.pattern) != 16 or any(ch not in "0123456789ABCDEFabcdef" for ch in self.pattern):
            raise ValueError(f"select pattern must be 16 hex digits (F = wildcard), got {self.pattern!r}")

    def to_frame(self) -> Frame:
        p = self.pattern.upper()
        data = bytes.fromhex(p[:8])[::-1] + bytes.fromhex(p[8:12])[::-1] + bytes.fromhex(p[12:16])
        return LongFrame(C_SND_UD | (FCB if self.fcb else 0), ADDRESS_NETWORK_LAYER, CI_SELECT, data)

    def matches(self, address: SecondaryAddress) -> bool:
        """Whether a slave with ``address`` is selected (F digits match anything)."""
        return all(p in ("F", a) for p, a in zip(self.pattern.upper(), str(address), strict=True))


@dataclass(frozen=True, slots=True)
class ApplicationReset:
    """SND_UD with CI 50, optionally with a subcode."""

    address: int
    subcode: int | None = None

    def to_frame(self) -> Frame:
        if self.subcode is None:
            return ControlFrame(C_SND_UD, self.address, CI_APPLICATION_RESET)
        return LongFrame(C_SND_UD, self.address, CI_APPLICATION_RESET, bytes((self.subcode,)))


@dataclass(frozen=True, slots=True)
class SetBaudRate:
    """SND_UD control frame with CI B8..BF: the slave switches baud rate after its E5."""

    address: int
    baud: int

    def __post_init__(self) -> None:
        if self.baud not in BAUD_RATE_CI:
            raise ValueError(f"baud rate must be one of {sorted(BAUD_RATE_CI)}, got {self.baud}")

    def to_frame(self) -> Frame:
        return ControlFrame(C_SND_UD, self.address, BAUD_RATE_CI[self.baud])


@dataclass(frozen=True, slots=True)
class SetPrimaryAddress:
    """SND_UD with CI 51 and the record ``01 7A <new>``: change the primary address."""

    address: int
    new_address: int

    def __post_init__(self) -> None:
        if not 0 <= self.new_address <= 250:
            raise ValueError(f"a primary address is 0..250, got {self.new_address}")

    def to_frame(self) -> Frame:
        return LongFrame(C_SND_UD, self.address, CI_DATA_SEND, bytes((0x01, 0x7A, self.new_address)))


@dataclass(frozen=True, slots=True)
class SendUserData:
    """Any other SND_UD (CI and data as given)."""

    address: int
    ci: int
    data: bytes = b""
    fcb: bool = False

    def to_frame(self) -> Frame:
        c = C_SND_UD | (FCB if self.fcb else 0)
        if not self.data:
            return ControlFrame(c, self.address, self.ci)
        return LongFrame(c, self.address, self.ci, self.data)


Request = (
    SndNke
    | ReqUd2
    | ReqUd1
    | SelectSecondary
    | ApplicationReset
    | SetBaudRate
    | SetPrimaryAddress
    | SendUserData
)


def decode_request(frame: Frame) -> Request:
    """What a master asked for (slave role). Raises ``UnsupportedError`` for other frames."""
    if isinstance(frame, ShortFrame):
        c = frame.c
        function = c & 0x4F
        if c == C_SND_NKE:
            return SndNke(frame.address)
        if function == C_REQ_UD2 & 0x4F:
            return ReqUd2(frame.address, fcb=bool(c & FCB), fcv=bool(c & FCV))
        if function == C_REQ_UD1 & 0x4F:
            return ReqUd1(frame.address, fcb=bool(c & FCB), fcv=bool(c & FCV))
        raise UnsupportedError(
            f"short frame with C field 0x{c:02X} is not a master request", offset=1, layer=LAYER
        )
    if isinstance(frame, (ControlFrame, LongFrame)):
        if frame.c & 0x4F != C_SND_UD & 0x4F:
            raise UnsupportedError(f"C field 0x{frame.c:02X} is not SND_UD", offset=4, layer=LAYER)
        data = frame.data if isinstance(frame, LongFrame) else b""
        ci = frame.ci
        fcb = bool(frame.c & FCB)
        if ci == CI_APPLICATION_RESET:
            if len(data) > 1:
                raise FramingError(
                    "application reset carries at most one subcode byte", offset=8, layer=LAYER
                )
            return ApplicationReset(frame.address, data[0] if data else None)
        if ci in _CI_BAUD_RATE and not data:
            return SetBaudRate(frame.address, _CI_BAUD_RATE[ci])
        if ci == CI_SELECT:
            if len(data) != 8:
                raise FramingError(f"selection needs 8 data bytes, got {len(data)}", offset=7, layer=LAYER)
            pattern = data[3::-1].hex().upper() + data[5:3:-1].hex().upper() + data[6:8].hex().upper()
            return SelectSecondary(pattern, fcb=fcb)
        if ci == CI_DATA_SEND and len(data) == 3 and data[0] == 0x01 and data[1] == 0x7A and data[2] <= 250:
            return SetPrimaryAddress(frame.address, data[2])
        return SendUserData(frame.address, ci, data, fcb=fcb)
    raise UnsupportedError("a single character is not a master request", offset=0, layer=LAYER)


# --------------------------------------------------------------------------- stream


@dataclass(frozen=True, slots=True)
class LinkNoise:
    """Bytes that did not form a valid frame (noise, collision, bad checksum, truncation).

    ``error`` is the precise reason found at the first byte; a master treats a reply
    that came as noise as garbled (a collision on a scan).
    """

    data: bytes
    error: ProtocolError = field(compare=False)


LinkEvent = Frame | LinkNoise | NeedData


class MBusLink:
    """Streaming frame decoder and request encoder (sans-IO; either role).

    ``receive_data(b"")`` says the reply window closed (or the line ended): bytes kept for
    an unfinished frame come out as :class:`LinkNoise`. ``send()`` remembers the bytes so
    that an echo of them (level converters that echo the master) is dropped.
    """

    def __init__(self, *, max_buffer: int = 4096, drop_echo: bool = True) -> None:
        self._buffer = bytearray()
        self._max_buffer = max_buffer
        self._drop_echo = drop_echo
        self._echo = b""
        self._closed = False
        self._consumed = 0  # stream offset of _buffer[0]

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def send(self, request: Request | Frame) -> bytes:
        frame = (
            request
            if isinstance(request, SingleCharacter | ShortFrame | ControlFrame | LongFrame)
            else request.to_frame()
        )
        wire = frame.encode()
        if self._drop_echo:
            self._echo = wire
        return wire

    def receive_data(self, data: bytes) -> None:
        if not data:
            self._closed = True
            return
        self._closed = False
        if len(self._buffer) + len(data) > self._max_buffer:
            raise FramingError(
                f"more than {self._max_buffer} bytes buffered without a complete frame",
                offset=self._consumed + len(self._buffer),
                layer=LAYER,
            )
        self._buffer += data

    def _take(self, n: int) -> bytes:
        chunk = bytes(self._buffer[:n])
        del self._buffer[:n]
        self._consumed += n
        return chunk

    def next_event(self) -> LinkEvent:
        buf = self._buffer
        if self._echo:
            echo = self._echo
            if buf[: len(echo)] == echo:
                self._take(len(echo))
                self._echo = b""
            elif echo.startswith(buf):
                if not self._closed:
                    return NEED_DATA
                self._echo = b""
            elif buf:
                self._echo = b""
        if not buf:
            self._closed = False
            return NEED_DATA
        start = buf[0]
        if start not in (ACK, START_SHORT, START_LONG):
            i = 1
            n = len(buf)
            while i < n and buf[i] not in (ACK, START_SHORT, START_LONG):
                i += 1
            error: ProtocolError = FramingError(
                f"expected start byte E5, 10 or 68, got 0x{start:02X}", offset=self._consumed, layer=LAYER
            )
            return LinkNoise(self._take(i), error)
        data = bytes(buf)
        try:
            total = frame_length(data)
            if total and total <= len(data):
                frame = decode_frame(data)
                self._take(total)
                return frame
        except ProtocolError as exc:
            error = type(exc)(exc.message, offset=(exc.offset or 0) + self._consumed, layer=LAYER)
            return LinkNoise(self._take(self._skip(1)), error)
        if self._closed:
            self._closed = False
            error = FramingError(
                f"premature end of frame: {len(data)} of {total or 'more'} bytes",
                offset=self._consumed,
                layer=LAYER,
            )
            return LinkNoise(self._take(len(data)), error)
        return NEED_DATA

    def _skip(self, at_least: int) -> int:
        """Number of bytes up to the next possible start byte after ``at_least``."""
        buf = self._buffer
        i = at_least
        n = len(buf)
        while i < n and buf[i] not in (ACK, START_SHORT, START_LONG):
            i += 1
        return i

    def clear(self) -> None:
        """Forget buffered input (e.g. after switching baud rate)."""
        self._consumed += len(self._buffer)
        self._buffer.clear()
        self._echo = b""
        self._closed = False
