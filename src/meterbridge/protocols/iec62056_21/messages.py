"""The messages of IEC 62056-21 (the optical port) and their wire form.

=====================  ================================================  =============
message                wire                                              sent by
=====================  ================================================  =============
``SignOn``             ``/ ? [address] ! CR LF``                         client
``Identification``     ``/ XXX Z [\\W] ident CR LF``                      meter
``OptionSelect``       ``ACK V Z Y CR LF``                               client
``DataMessage``        ``STX data-lines [! CR LF] ETX|EOT BCC``          meter
``PasswordOperand``    ``SOH P 0 STX (operand) ETX BCC``                 meter
``Password``           ``SOH P 1|2 STX (password) ETX BCC``              client
``ReadRequest``        ``SOH R 1..6 STX address(argument) ETX BCC``      client
``WriteRequest``       ``SOH W 1|2 STX address(value) ETX BCC``          client
``Break``              ``SOH B 0 ETX BCC``                               both
``Ack`` / ``Nak``      ``ACK`` / ``NAK``                                 both
=====================  ================================================  =============

The BCC is the XOR of every byte after the first SOH or STX up to and including
ETX (or EOT). Each message is a frozen dataclass with ``encode()`` and one
``decode`` classmethod that takes exactly the message's bytes; the stream logic
(where a message starts and ends) lives in ``session``.

The baud tables: mode A stays at 300 baud; mode B announces ``A``-``F``
(600-19200) and switches by itself after the identification; mode C and E use
``0``-``6`` (300-19200) chosen by the client's ``OptionSelect``; mode D always
sends its data at 2400 baud. Everything runs 7E1 except the HDLC hand-over of mode
E, which is 8N1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ClassVar, Final, Literal

from meterbridge.errors import ChecksumError, FramingError, UnsupportedError
from meterbridge.protocols.iec62056_21.datasets import (
    LAYER,
    DataLine,
    DataSet,
    DataValue,
    ParsedValue,
    block_values,
    encode_data_block,
    parse_data_block,
)

__all__ = [
    "ACK",
    "BAUD_MODE_B",
    "BAUD_MODE_C",
    "EOT",
    "ETX",
    "INITIAL_LINE",
    "MODE_D_BAUD",
    "NAK",
    "SOH",
    "STX",
    "Ack",
    "Break",
    "CommandMessage",
    "DataMessage",
    "Identification",
    "LineSettings",
    "Nak",
    "OptionSelect",
    "Password",
    "PasswordOperand",
    "ProtocolMode",
    "ReadRequest",
    "SignOn",
    "WriteRequest",
    "baud_char_for",
    "baud_for",
    "bcc",
    "decode_command",
    "hdlc_line",
    "readout_values",
]

SOH: Final = 0x01
STX: Final = 0x02
ETX: Final = 0x03
EOT: Final = 0x04
ACK: Final = 0x06
NAK: Final = 0x15

ProtocolMode = Literal["A", "B", "C", "D", "E"]

BAUD_MODE_C: Final[dict[str, int]] = {
    "0": 300,
    "1": 600,
    "2": 1200,
    "3": 2400,
    "4": 4800,
    "5": 9600,
    "6": 19200,
}
BAUD_MODE_B: Final[dict[str, int]] = {"A": 600, "B": 1200, "C": 2400, "D": 4800, "E": 9600, "F": 19200}
MODE_D_BAUD: Final = 2400
_BAUD_TO_C: Final = {v: k for k, v in BAUD_MODE_C.items()}
_BAUD_TO_B: Final = {v: k for k, v in BAUD_MODE_B.items()}

MAX_ADDRESS: Final = 32
MAX_IDENT_LINE: Final = 64  # '/' + 3 + 1 + enhanced + 16 ident + CR LF, with room for long identifications
_TEXT_OK: Final = frozenset(range(0x20, 0x7F))


@dataclass(frozen=True, slots=True)
class LineSettings:
    """Character format of the line: what a serial port must be set to."""

    baud: int
    bytesize: int = 7
    parity: Literal["E", "N", "O"] = "E"
    stopbits: int = 1

    @property
    def bits_per_char(self) -> int:
        return 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits


INITIAL_LINE: Final = LineSettings(300)


def hdlc_line(baud: int) -> LineSettings:
    """The 8N1 line of the mode E hand-over at ``baud``."""
    return LineSettings(baud, 8, "N", 1)


def baud_for(mode: ProtocolMode, char: str) -> int:
    """The baud rate a baud character announces in ``mode``; raise ``UnsupportedError`` if none."""
    if mode == "A":
        return 300
    if mode == "D":
        return MODE_D_BAUD
    table = BAUD_MODE_B if mode == "B" else BAUD_MODE_C
    try:
        return table[char]
    except KeyError:
        raise UnsupportedError(
            f"baud character {char!r} is not defined for mode {mode} (expected one of {''.join(table)})",
            layer=LAYER,
        ) from None


def baud_char_for(mode: ProtocolMode, baud: int) -> str:
    """The baud character for ``baud`` in ``mode`` (B: A-F, C/E: 0-6; A and D have fixed rates)."""
    table = _BAUD_TO_B if mode == "B" else _BAUD_TO_C
    if mode == "A":
        return "0" if baud == 300 else _no_baud(mode, baud)
    if mode == "D":
        return "3" if baud == MODE_D_BAUD else _no_baud(mode, baud)
    return table.get(baud) or _no_baud(mode, baud)


def _no_baud(mode: str, baud: int) -> str:
    raise ValueError(f"mode {mode} has no baud character for {baud} baud")


def bcc(data: bytes | bytearray | memoryview) -> int:
    """XOR of all bytes (the block check character), folded as one big integer."""
    width = len(data)
    if width == 0:
        return 0
    x = int.from_bytes(data, "little")
    while width > 1:
        half = (width + 1) // 2
        bits = half * 8
        x = (x >> bits) ^ (x & ((1 << bits) - 1))
        width = half
    return x


def _text(raw: bytes | memoryview, start: int, stop: int, what: str, base: int = 0) -> str:
    chunk = bytes(raw[start:stop])
    for i, b in enumerate(chunk):
        if b not in _TEXT_OK:
            raise FramingError(
                f"{what}: expected a printable ASCII character, got 0x{b:02X}",
                offset=base + start + i,
                layer=LAYER,
            )
    return chunk.decode("ascii")


def _check_bcc(raw: bytes | memoryview, first: int) -> None:
    """Check the last byte of ``raw`` against the XOR of ``raw[first:-1]``."""
    expected = bcc(raw[first:-1])
    actual = raw[-1]
    if expected != actual:
        raise ChecksumError(
            f"BCC mismatch: computed 0x{expected:02X}, message carries 0x{actual:02X}",
            offset=len(raw) - 1,
            layer=LAYER,
        )


@dataclass(frozen=True, slots=True)
class SignOn:
    """Request message ``/?address!`` CR LF; an empty address asks any meter."""

    address: str = ""

    def __post_init__(self) -> None:
        if len(self.address) > MAX_ADDRESS or not all(c.isalnum() or c == " " for c in self.address):
            raise ValueError(f"device address {self.address!r}: up to 32 of 0-9 A-Z a-z and space")
        if not self.address.isascii():
            raise ValueError(f"device address {self.address!r} must be ASCII")

    def encode(self) -> bytes:
        return b"/?" + self.address.encode("ascii") + b"!\r\n"

    @classmethod
    def decode(cls, raw: bytes | memoryview) -> SignOn:
        if bytes(raw[:2]) != b"/?" or bytes(raw[-3:]) != b"!\r\n":
            raise FramingError("expected a sign-on '/?[address]!' CR LF", offset=0, layer=LAYER)
        address = _text(raw, 2, len(raw) - 3, "device address")
        try:
            return cls(address)
        except ValueError as exc:
            raise FramingError(str(exc), offset=2, layer=LAYER) from None


@dataclass(frozen=True, slots=True)
class Identification:
    """``/XXXZ[\\W]ident`` CR LF.

    ``manufacturer`` is the three-letter flag (a lowercase third letter means the
    meter answers within 20 ms), ``baud_char`` the highest rate it offers,
    ``enhanced`` the characters after backslashes (``"2"`` = mode E, HDLC
    capable), ``identification`` the rest.
    """

    manufacturer: str
    baud_char: str
    identification: str
    enhanced: str = ""

    def __post_init__(self) -> None:
        m = self.manufacturer
        if len(m) != 3 or not (m[:2].isalpha() and m[:2].isupper() and m[2].isalpha()) or not m.isascii():
            raise ValueError(f"manufacturer {m!r}: three letters, the first two upper case")
        if len(self.baud_char) != 1 or self.baud_char in "/!\\" or not self.baud_char.isprintable():
            raise ValueError(f"baud character {self.baud_char!r} is not a single printable character")
        ident = self.identification
        if not ident.isascii() or not ident.isprintable() or any(c in ident for c in "/!"):
            raise ValueError(f"identification {ident!r}: printable ASCII without '/' and '!'")
        if ident.startswith("\\"):
            raise ValueError("identification must not start with '\\' (put those in enhanced)")
        if not all(c.isascii() and c.isprintable() and c not in "/!\\" for c in self.enhanced):
            raise ValueError(f"enhanced capability characters {self.enhanced!r} are not printable")
        if len(self.encode()) > MAX_IDENT_LINE:
            raise ValueError(f"identification line longer than {MAX_IDENT_LINE} bytes")

    @property
    def text(self) -> str:
        """The line without '/' and CR LF, as meters print it (``LGZ4ZMF100AC.M26``)."""
        return self.encode()[1:-2].decode("ascii")

    @property
    def mode_e(self) -> bool:
        """The meter offers mode E (HDLC hand-over): enhanced capability ``\\2``."""
        return "2" in self.enhanced

    @property
    def fast_reaction(self) -> bool:
        """Third manufacturer letter in lower case: reaction time 20 ms instead of 200 ms."""
        return self.manufacturer[2].islower()

    def encode(self) -> bytes:
        enhanced = "".join("\\" + c for c in self.enhanced)
        return f"/{self.manufacturer}{self.baud_char}{enhanced}{self.identification}\r\n".encode("ascii")

    @classmethod
    def decode(cls, raw: bytes | memoryview) -> Identification:
        n = len(raw)
        if n < 7 or raw[0] != 0x2F or bytes(raw[-2:]) != b"\r\n":
            raise FramingError("expected an identification '/XXXZident' CR LF", offset=0, layer=LAYER)
        text = _text(raw, 1, n - 2, "identification")
        manufacturer, baud_char, rest = text[:3], text[3], text[4:]
        enhanced = []
        while len(rest) >= 2 and rest[0] == "\\":
            enhanced.append(rest[1])
            rest = rest[2:]
        try:
            return cls(manufacturer, baud_char, rest, "".join(enhanced))
        except ValueError as exc:
            raise FramingError(f"identification {text!r}: {exc}", offset=1, layer=LAYER) from None


@dataclass(frozen=True, slots=True)
class OptionSelect:
    """``ACK V Z Y`` CR LF: protocol ``V`` ('0' normal, '1' secondary, '2' HDLC), baud ``Z``, mode ``Y``.

    ``Y``: '0' data readout, '1' programming mode, '2' binary (HDLC) mode.
    """

    baud_char: str
    mode: str = "0"
    protocol: str = "0"

    def __post_init__(self) -> None:
        for name in ("baud_char", "mode", "protocol"):
            value = getattr(self, name)
            if len(value) != 1 or not ("0" <= value <= "9" or "A" <= value <= "Z"):
                raise ValueError(f"option select {name} {value!r} must be one character 0-9 or A-Z")

    @property
    def hdlc(self) -> bool:
        return self.protocol == "2"

    @property
    def programming(self) -> bool:
        return self.mode == "1" and not self.hdlc

    def encode(self) -> bytes:
        return bytes((ACK, ord(self.protocol), ord(self.baud_char), ord(self.mode), 0x0D, 0x0A))

    @classmethod
    def decode(cls, raw: bytes | memoryview) -> OptionSelect:
        if len(raw) != 6 or raw[0] != ACK or bytes(raw[4:]) != b"\r\n":
            raise FramingError("expected an option select ACK V Z Y CR LF", offset=0, layer=LAYER)
        v, z, y = (chr(b) for b in raw[1:4])
        try:
            return cls(baud_char=z, mode=y, protocol=v)
        except ValueError as exc:
            raise FramingError(str(exc), offset=1, layer=LAYER) from None


@dataclass(frozen=True, slots=True)
class DataMessage:
    """``STX`` data lines ``ETX BCC``.

    ``readout``: the block ends with ``!`` CR LF (a data readout; answers to R1
    have no end mark). ``final``: ETX; ``False`` for a partial block ending in EOT.
    """

    lines: tuple[DataLine, ...]
    readout: bool = True
    final: bool = True

    @property
    def data_sets(self) -> tuple[DataSet, ...]:
        return tuple(s for line in self.lines for s in line)

    def encode(self) -> bytes:
        body = encode_data_block(self.lines)
        if self.readout:
            body += "!\r\n"
        elif body.endswith("\r\n") and len(self.lines) == 1:
            body = body[:-2]  # a single answer line goes without CR LF
        block = body.encode("ascii") + (b"\x03" if self.final else b"\x04")
        return b"\x02" + block + bytes((bcc(block),))

    @classmethod
    def answer(cls, address: str, *values: DataValue) -> DataMessage:
        """An answer to a read request: one data set, no readout end mark."""
        return cls(((DataSet(address, values),),), readout=False)

    @classmethod
    def decode(cls, raw: bytes | memoryview) -> DataMessage:
        text, readout, final = _open_block(raw)
        end = len(text) - 3 if readout else len(text)
        return cls(parse_data_block(text, end=end, base=1), readout=readout, final=final)


def _open_block(raw: bytes | memoryview) -> tuple[str, bool, bool]:
    """Check ``STX ... ETX|EOT BCC`` and return (block text, ends with '!' CR LF, ends with ETX)."""
    n = len(raw)
    if n < 3 or raw[0] != STX or raw[-2] not in (ETX, EOT):
        raise FramingError("expected STX data ETX|EOT BCC", offset=0, layer=LAYER)
    _check_bcc(raw, 1)
    block = bytes(raw[1:-2])
    if not block.isascii():
        bad = next(i for i, b in enumerate(block) if b > 0x7F)
        raise FramingError(f"data byte 0x{block[bad]:02X} is not 7-bit ASCII", offset=1 + bad, layer=LAYER)
    text = block.decode("ascii")
    return text, text.endswith("!\r\n"), raw[-2] == ETX


def readout_values(raw: bytes | memoryview) -> list[tuple[str, ParsedValue, str | None]]:
    """A readout ``STX ... ! CR LF ETX BCC`` straight to ``(address, exact value, unit)``.

    Same checks as ``DataMessage.decode`` (BCC, ASCII, data set grammar, the
    ``!`` end mark) without building the message objects: the fast path from the
    wire to values.
    """
    text, readout, final = _open_block(raw)
    if not readout or not final:
        raise FramingError("a data readout ends with '!' CR LF ETX", offset=len(raw) - 2, layer=LAYER)
    return block_values(text[:-3], base=1)


@dataclass(frozen=True, slots=True)
class Ack:
    """``ACK``: positive acknowledgement."""

    def encode(self) -> bytes:
        return b"\x06"


@dataclass(frozen=True, slots=True)
class Nak:
    """``NAK``: repeat request (the last message arrived with a wrong BCC)."""

    def encode(self) -> bytes:
        return b"\x15"


def _command(letter: str, kind: str, payload: str | None) -> bytes:
    body = (letter + kind).encode("ascii")
    if payload is not None:
        body += b"\x02" + payload.encode("ascii")
    body += b"\x03"
    return b"\x01" + body + bytes((bcc(body),))


def _one_set(payload: str | None, what: str) -> DataSet:
    if payload is None:
        raise FramingError(f"{what}: expected STX data set ETX", offset=3, layer=LAYER)
    lines = parse_data_block(payload, base=4)
    if len(lines) != 1 or len(lines[0]) != 1:
        raise FramingError(f"{what}: expected exactly one data set", offset=4, layer=LAYER)
    return lines[0][0]


@dataclass(frozen=True, slots=True)
class PasswordOperand:
    """``P0``: the meter enters programming mode and sends the operand (seed) for the password."""

    operand: str = ""
    letter: ClassVar[str] = "P"

    def encode(self) -> bytes:
        return _command("P", "0", DataValue(self.operand).encode())

    @classmethod
    def from_payload(cls, kind: str, payload: str | None) -> PasswordOperand:
        s = _one_set(payload, "P0")
        return cls(s.values[0].text)


@dataclass(frozen=True, slots=True)
class Password:
    """``P1`` (plain password) or ``P2`` (result of the secure algorithm). Never printed."""

    password: str = field(repr=False)
    kind: Literal["1", "2"] = "1"
    letter: ClassVar[str] = "P"

    def __post_init__(self) -> None:
        pw = self.password
        if len(pw) > 128 or not pw.isascii() or not pw.isprintable() or any(c in pw for c in "()*"):
            raise ValueError("password: up to 128 printable ASCII characters without ( ) * (not shown)")
        if self.kind not in ("1", "2"):
            raise ValueError(f"password command type {self.kind!r} must be '1' or '2'")

    def encode(self) -> bytes:
        return _command("P", self.kind, f"({self.password})")

    @classmethod
    def from_payload(cls, kind: str, payload: str | None) -> Password:
        s = _one_set(payload, "P" + kind)
        return cls(s.values[0].text, "1" if kind == "1" else "2")


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """``R1`` (ASCII read; ``R2``-``R6`` formatted and partial reads) of ``address(argument)``."""

    address: str
    argument: str = ""
    kind: str = "1"
    letter: ClassVar[str] = "R"

    def __post_init__(self) -> None:
        DataSet(self.address, (DataValue(self.argument),))
        if self.kind not in "123456" or len(self.kind) != 1:
            raise ValueError(f"read command type {self.kind!r} must be 1-6")

    def encode(self) -> bytes:
        return _command("R", self.kind, f"{self.address}({self.argument})")

    @classmethod
    def from_payload(cls, kind: str, payload: str | None) -> ReadRequest:
        s = _one_set(payload, "R" + kind)
        return cls(s.address, s.values[0].text, kind)


@dataclass(frozen=True, slots=True)
class WriteRequest:
    """``W1`` (ASCII write; ``W2`` formatted) of ``address(value)``."""

    address: str
    values: tuple[DataValue, ...]
    kind: str = "1"
    letter: ClassVar[str] = "W"

    def __post_init__(self) -> None:
        DataSet(self.address, self.values)
        if self.kind not in ("1", "2"):
            raise ValueError(f"write command type {self.kind!r} must be '1' or '2'")

    def encode(self) -> bytes:
        return _command("W", self.kind, DataSet(self.address, self.values).encode())

    @classmethod
    def from_payload(cls, kind: str, payload: str | None) -> WriteRequest:
        s = _one_set(payload, "W" + kind)
        return cls(s.address, s.values, kind)


@dataclass(frozen=True, slots=True)
class Break:
    """``B0``: complete sign-off; both sides return to 300 baud and wait for a sign-on."""

    letter: ClassVar[str] = "B"

    def encode(self) -> bytes:
        return _command("B", "0", None)

    @classmethod
    def from_payload(cls, kind: str, payload: str | None) -> Break:
        if kind != "0":
            raise UnsupportedError(f"break command type B{kind} (only B0 is defined)", offset=2, layer=LAYER)
        return cls()


CommandMessage = PasswordOperand | Password | ReadRequest | WriteRequest | Break


def decode_command(raw: bytes | memoryview) -> CommandMessage:
    """Decode ``SOH C D [STX data] ETX BCC`` (P0/P1/P2, R1-R6, W1/W2, B0)."""
    n = len(raw)
    if n < 5 or raw[0] != SOH or raw[-2] != ETX:
        raise FramingError("expected SOH C D [STX data] ETX BCC", offset=0, layer=LAYER)
    _check_bcc(raw, 1)
    letter, kind = chr(raw[1]), chr(raw[2])
    if not "0" <= kind <= "9":
        raise FramingError(f"command type {kind!r} is not a digit", offset=2, layer=LAYER)
    payload: str | None = None
    if n > 5:
        if raw[3] != STX:
            raise FramingError("expected STX after the command", offset=3, layer=LAYER)
        payload = _text(raw, 4, n - 2, "command data", 0)
    if letter == "P" and kind not in "012":
        raise UnsupportedError(f"password command P{kind} (P0, P1, P2 are defined)", offset=2, layer=LAYER)
    decoder = _COMMANDS.get(letter)
    if decoder is None:
        raise UnsupportedError(
            f"command {letter}{kind} (meterbridge knows P, R, W, B)", offset=1, layer=LAYER
        )
    try:
        return decoder(kind, payload)
    except ValueError as exc:
        if isinstance(exc, FramingError | UnsupportedError):
            raise
        raise UnsupportedError(f"command {letter}{kind}: {exc}", offset=2, layer=LAYER) from None


def _password_command(kind: str, payload: str | None) -> PasswordOperand | Password:
    if kind == "0":
        return PasswordOperand.from_payload(kind, payload)
    return Password.from_payload(kind, payload)


_COMMANDS: Final[dict[str, Callable[[str, str | None], CommandMessage]]] = {
    "P": _password_command,
    "R": ReadRequest.from_payload,
    "W": WriteRequest.from_payload,
    "B": Break.from_payload,
}
