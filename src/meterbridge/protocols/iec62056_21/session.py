"""IEC 62056-21 sessions, sans-IO, in both roles.

``Iec62056Client`` is the reading side (hand-held unit, optical head);
``Iec62056Meter`` answers like a meter (the simulator drives it). Both follow
h11's shape: ``receive_data(bytes)``, ``next_event()`` -> event or ``NEED_DATA``;
the client turns its intentions into bytes with ``send(message)``.

Line changes are events: ``SwitchLine(line)`` means "after the bytes you have
already been given are on the wire, set the port to this baud rate and format";
``HdlcHandOver(line)`` means "the line now belongs to the HDLC codec".

Every transition is in the two tables ``CLIENT_TRANSITIONS`` and
``METER_TRANSITIONS`` ``{state: {input: next_state}}``. An input that a table does
not allow raises (``LocalProtocolError`` for our own ``send``, ``ProtocolError``
for what the peer sent) and moves the machine to ``ERROR``; ``reset()`` leaves it.
A message with a wrong BCC raises ``ChecksumError``: in programming mode the state
is kept, so the client may answer ``Nak()`` and the meter repeats its message (the
meter role sends the NAK itself); in a data readout the session is over (there is
no repeat in readout mode) and the state is ``ERROR``.
"""

from __future__ import annotations

import enum
import re
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from meterbridge.errors import (
    ChecksumError,
    FramingError,
    LocalProtocolError,
    ProtocolError,
    UnsupportedError,
)
from meterbridge.obis import ObisCode
from meterbridge.protocols.events import NEED_DATA, NeedData
from meterbridge.protocols.iec62056_21.datasets import LAYER, DataLine, DataValue, obis_of
from meterbridge.protocols.iec62056_21.messages import (
    ACK,
    BAUD_MODE_C,
    INITIAL_LINE,
    NAK,
    SOH,
    STX,
    Ack,
    Break,
    CommandMessage,
    DataMessage,
    Identification,
    LineSettings,
    Nak,
    OptionSelect,
    Password,
    PasswordOperand,
    ProtocolMode,
    ReadRequest,
    SignOn,
    WriteRequest,
    baud_for,
    decode_command,
    hdlc_line,
)

__all__ = [
    "CLIENT_TRANSITIONS",
    "MAX_BUFFER",
    "METER_TRANSITIONS",
    "CaptureReader",
    "CapturedMessage",
    "ClientEvent",
    "ClientState",
    "HdlcHandOver",
    "Iec62056Client",
    "Iec62056Meter",
    "MeterEvent",
    "MeterState",
    "RegisterWritten",
    "SwitchLine",
    "Transmit",
]

MAX_BUFFER: Final = 65536  # unfinished input a session holds before it calls the peer broken


@dataclass(frozen=True, slots=True)
class SwitchLine:
    """Set the port to ``line`` once the bytes already handed out have been sent."""

    line: LineSettings


@dataclass(frozen=True, slots=True)
class HdlcHandOver:
    """Mode E: from now on the line (at ``line``) belongs to the HDLC codec."""

    line: LineSettings


@dataclass(frozen=True, slots=True)
class Transmit:
    """Meter role: put these bytes on the line."""

    data: bytes


@dataclass(frozen=True, slots=True)
class RegisterWritten:
    """Meter role: the client wrote ``values`` to ``address`` (W1) and the meter acknowledged it."""

    address: str
    values: tuple[DataValue, ...]


ClientEvent = Identification | DataMessage | PasswordOperand | Ack | Nak | Break | SwitchLine | HdlcHandOver
MeterEvent = Transmit | SwitchLine | HdlcHandOver | RegisterWritten


class ClientState(enum.Enum):
    IDLE = "idle"
    AWAIT_IDENTIFICATION = "await identification"
    IDENTIFIED = "identified"  # mode C/E: our turn to select options
    AWAIT_READOUT = "await readout"
    AWAIT_OPERAND = "await P0 operand"
    PASSWORD_REQUIRED = "password required"
    AWAIT_PASSWORD_ACK = "await password acknowledgement"
    PROGRAMMING = "programming"
    AWAIT_ANSWER = "await answer"
    PARTIAL_ANSWER = "partial answer"
    AWAIT_WRITE_ACK = "await write acknowledgement"
    COMPLETE = "complete"
    HANDED_OVER = "handed over to HDLC"
    ERROR = "error"


class MeterState(enum.Enum):
    IDLE = "idle"
    AWAIT_OPTION = "await option select"
    AWAIT_PASSWORD = "await password"
    PROGRAMMING = "programming"
    HANDED_OVER = "handed over to HDLC"
    ERROR = "error"


C = ClientState
M = MeterState

# Inputs: "send:<what>" for our own messages, "recv:<what>" for the peer's.
CLIENT_TRANSITIONS: Final[dict[ClientState, dict[str, ClientState]]] = {
    C.IDLE: {"send:sign_on": C.AWAIT_IDENTIFICATION},
    C.AWAIT_IDENTIFICATION: {
        "recv:identification": C.IDENTIFIED,  # mode C, E
        "recv:identification_auto": C.AWAIT_READOUT,  # mode A, B, D: the meter goes on by itself
    },
    C.IDENTIFIED: {
        "send:option_readout": C.AWAIT_READOUT,
        "send:option_programming": C.AWAIT_OPERAND,
        "send:option_hdlc": C.HANDED_OVER,
    },
    C.AWAIT_READOUT: {"recv:readout": C.COMPLETE},
    C.AWAIT_OPERAND: {
        "recv:operand": C.PASSWORD_REQUIRED,
        "recv:break": C.COMPLETE,
        "send:nak": C.AWAIT_OPERAND,
    },
    C.PASSWORD_REQUIRED: {"send:password": C.AWAIT_PASSWORD_ACK, "send:break": C.COMPLETE},
    C.AWAIT_PASSWORD_ACK: {
        "recv:ack": C.PROGRAMMING,
        "recv:nak": C.AWAIT_PASSWORD_ACK,  # repeat request: call repeat()
        "recv:answer": C.PASSWORD_REQUIRED,  # (ERxx): refused
        "recv:break": C.COMPLETE,  # refused, meter signed off
    },
    C.PROGRAMMING: {
        "send:read": C.AWAIT_ANSWER,
        "send:write": C.AWAIT_WRITE_ACK,
        "send:break": C.COMPLETE,
    },
    C.AWAIT_ANSWER: {
        "recv:answer": C.PROGRAMMING,
        "recv:partial": C.PARTIAL_ANSWER,
        "recv:nak": C.AWAIT_ANSWER,
        "recv:break": C.COMPLETE,
        "send:nak": C.AWAIT_ANSWER,
    },
    C.PARTIAL_ANSWER: {"send:ack": C.AWAIT_ANSWER, "send:break": C.COMPLETE},
    C.AWAIT_WRITE_ACK: {
        "recv:ack": C.PROGRAMMING,
        "recv:answer": C.PROGRAMMING,  # (ERxx): write refused
        "recv:nak": C.AWAIT_WRITE_ACK,
        "recv:break": C.COMPLETE,
        "send:nak": C.AWAIT_WRITE_ACK,
    },
    C.COMPLETE: {"send:sign_on": C.AWAIT_IDENTIFICATION},
    C.HANDED_OVER: {},
    C.ERROR: {},
}

METER_TRANSITIONS: Final[dict[MeterState, dict[str, MeterState]]] = {
    M.IDLE: {
        "recv:sign_on": M.AWAIT_OPTION,  # mode C, E
        "recv:sign_on_auto": M.IDLE,  # mode A, B: identification and readout at once
        "recv:sign_on_other": M.IDLE,  # another device address: stay silent
    },
    M.AWAIT_OPTION: {
        "recv:option_readout": M.IDLE,
        "recv:option_programming": M.AWAIT_PASSWORD,
        "recv:option_hdlc": M.HANDED_OVER,
        "recv:sign_on": M.AWAIT_OPTION,
        "recv:sign_on_other": M.IDLE,
    },
    M.AWAIT_PASSWORD: {
        "recv:password_ok": M.PROGRAMMING,
        "recv:password_bad": M.IDLE,
        "recv:break": M.IDLE,
        "recv:nak": M.AWAIT_PASSWORD,
    },
    M.PROGRAMMING: {
        "recv:read": M.PROGRAMMING,
        "recv:write": M.PROGRAMMING,
        "recv:break": M.IDLE,
        "recv:nak": M.PROGRAMMING,
    },
    M.HANDED_OVER: {},
    M.ERROR: {},
}

# What each state listens for: the bytes a message may start with (everything else is line noise).
_HUNT_CLIENT: Final[dict[ClientState, re.Pattern[bytes]]] = {
    C.AWAIT_IDENTIFICATION: re.compile(rb"/"),
    C.AWAIT_READOUT: re.compile(rb"\x02"),
    C.AWAIT_OPERAND: re.compile(rb"[\x01\x02\x15]"),
    C.AWAIT_PASSWORD_ACK: re.compile(rb"[\x01\x02\x06\x15]"),
    C.AWAIT_ANSWER: re.compile(rb"[\x01\x02\x15]"),
    C.AWAIT_WRITE_ACK: re.compile(rb"[\x01\x02\x06\x15]"),
}
_HUNT_METER: Final[dict[MeterState, re.Pattern[bytes]]] = {
    M.IDLE: re.compile(rb"/"),
    M.AWAIT_OPTION: re.compile(rb"[/\x06]"),
    M.AWAIT_PASSWORD: re.compile(rb"[\x01\x15]"),
    M.PROGRAMMING: re.compile(rb"[\x01\x15]"),
}
_BLOCK_END: Final = re.compile(rb"[\x03\x04]")
_OPTION_SELECT: Final = re.compile(rb"\x06[0-9][0-9][0-9A-Z]\r\n")
_HUNT_ANY: Final = re.compile(rb"[/\x01\x02\x06\x15]")
_MAX_LINE: Final = 64


class _Receiver:
    """Receive buffer with a read cursor: finds message boundaries without copying or rescanning."""

    __slots__ = ("_buf", "_pos", "_scan", "base", "last_start", "skipped")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._scan = 0  # where the search for the current message's end resumes
        self.skipped = 0  # noise bytes dropped while hunting for a message start
        self.base = 0  # stream offset of _buf[0]
        self.last_start = 0  # stream offset of the last message returned

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._pos and self._pos >= len(self._buf) // 2:
            del self._buf[: self._pos]
            self.base += self._pos
            self._scan = max(0, self._scan - self._pos)
            self._pos = 0
        self._buf += data
        if len(self._buf) - self._pos > MAX_BUFFER:
            raise FramingError(
                f"more than {MAX_BUFFER} bytes without a complete message", offset=self._pos, layer=LAYER
            )

    def clear(self) -> None:
        self.base += len(self._buf)
        self._buf.clear()
        self._pos = self._scan = 0

    def remaining(self) -> bytes:
        return bytes(self._buf[self._pos :])

    def next_message(self, hunt: re.Pattern[bytes], option_select: bool | None = False) -> memoryview | None:
        """The next complete message starting with a byte ``hunt`` matches, or ``None`` (need more).

        ``option_select``: an ACK starts ``ACK V Z Y CR LF``; ``None``: decide by looking
        (a sniffer's capture holds both directions).
        """
        buf = self._buf
        pos = self._pos
        if self._scan <= pos:
            m = hunt.search(buf, pos)
            if m is None:
                self.skipped += len(buf) - pos
                self._pos = self._scan = len(buf)
                return None
            self.skipped += m.start() - pos
            pos = self._pos = m.start()
            self._scan = pos + 1
        first = buf[pos]
        if first == 0x2F:  # '/' ... CR LF
            end = buf.find(b"\n", self._scan)
            if end < 0:
                if len(buf) - pos > _MAX_LINE:
                    self._pos = self._scan = pos + 1  # resynchronise on the next '/'
                    raise FramingError(f"no CR LF within {_MAX_LINE} bytes of '/'", offset=pos, layer=LAYER)
                self._scan = len(buf)
                return None
            end += 1
        elif first in (STX, SOH):
            m = _BLOCK_END.search(buf, self._scan)
            if m is None or m.end() >= len(buf):
                self._scan = len(buf) if m is None else m.start()
                return None
            end = m.end() + 1
        elif first == ACK and option_select is not False:
            if len(buf) - pos < 6:
                return None
            if option_select is None and not _OPTION_SELECT.fullmatch(buf, pos, pos + 6):
                end = pos + 1
            else:
                end = pos + 6
        else:  # ACK, NAK
            end = pos + 1
        self._pos = self._scan = end
        self.last_start = self.base + pos
        return memoryview(bytes(buf[pos:end]))


def _data_kind(msg: DataMessage) -> str:
    if msg.readout:
        return "recv:readout"
    return "recv:answer" if msg.final else "recv:partial"


class Iec62056Client:
    """The reading side of IEC 62056-21 (modes A to E).

    ``mode`` says how the meter behaves after the identification: A stays at
    300 baud, B and D switch by themselves, C and E wait for ``OptionSelect``.
    A mode D meter needs no sign-on (the client starts listening).
    """

    def __init__(self, mode: ProtocolMode = "C") -> None:
        if mode not in ("A", "B", "C", "D", "E"):
            raise ValueError(f"protocol mode {mode!r} must be one of A, B, C, D, E")
        self.mode: ProtocolMode = mode
        self._rx = _Receiver()
        self._events: deque[ClientEvent] = deque()
        self._state = C.AWAIT_IDENTIFICATION if mode == "D" else C.IDLE
        self._line = INITIAL_LINE
        self._identification: Identification | None = None
        self._last_sent = b""

    @property
    def state(self) -> ClientState:
        return self._state

    @property
    def line(self) -> LineSettings:
        """The line settings the session is at (after the switches handed out so far)."""
        return self._line

    @property
    def identification(self) -> Identification | None:
        return self._identification

    @property
    def skipped(self) -> int:
        """Noise bytes dropped so far while waiting for a message."""
        return self._rx.skipped

    def trailing_data(self) -> bytes:
        """Bytes received but not consumed (after a mode E hand-over: the first HDLC bytes)."""
        return self._rx.remaining()

    def reset(self) -> None:
        """Abandon the session (timeout, error): back to IDLE at 300 baud.

        Queues ``SwitchLine(300 7E1)`` when the line is elsewhere: handle it before
        sending the next sign-on.
        """
        self._events.clear()
        self._rx.clear()
        self._state = C.AWAIT_IDENTIFICATION if self.mode == "D" else C.IDLE
        self._to_initial_line()

    def _to_initial_line(self) -> None:
        if self._line != INITIAL_LINE:
            self._line = INITIAL_LINE
            self._events.append(SwitchLine(INITIAL_LINE))

    def _transition(self, what: str, error: type[Exception]) -> ClientState:
        allowed = CLIENT_TRANSITIONS[self._state]
        target = allowed.get(what)
        if target is None:
            old = self._state
            self._state = C.ERROR
            if error is LocalProtocolError:
                raise LocalProtocolError(
                    f"iec62056-21 client: cannot {what.split(':')[1]} in state {old.value!r} "
                    f"(allowed: {', '.join(sorted(allowed)) or 'nothing'})"
                )
            raise ProtocolError(
                f"meter sent {what.split(':')[1]} in state {old.value!r} (expected: "
                f"{', '.join(k for k in sorted(allowed) if k.startswith('recv:')) or 'nothing'})",
                layer=LAYER,
            )
        self._state = target
        return target

    def send(
        self, message: SignOn | OptionSelect | Password | ReadRequest | WriteRequest | Break | Ack | Nak
    ) -> bytes:
        """Bytes to write for ``message``; raise ``LocalProtocolError`` if the state does not allow it."""
        if isinstance(message, SignOn):
            what = "send:sign_on"
        elif isinstance(message, OptionSelect):
            what = self._option_kind(message)
        elif isinstance(message, Password):
            what = "send:password"
        elif isinstance(message, ReadRequest):
            what = "send:read"
        elif isinstance(message, WriteRequest):
            what = "send:write"
        elif isinstance(message, Break):
            what = "send:break"
        elif isinstance(message, Nak):
            what = "send:nak"
        elif isinstance(message, Ack):
            what = "send:ack"
        else:
            raise LocalProtocolError(f"iec62056-21 client cannot send {type(message).__name__}")
        if what == "send:sign_on" and self._line != INITIAL_LINE:
            raise LocalProtocolError("sign-on must go out at 300 baud: call reset() and apply its SwitchLine")
        target = self._transition(what, LocalProtocolError)
        wire = message.encode()
        if not isinstance(message, Nak):
            self._last_sent = wire
        if what == "send:sign_on":
            self._rx.clear()
            self._identification = None
        elif isinstance(message, OptionSelect):
            baud = baud_for("C", message.baud_char)
            if message.hdlc:
                self._line = hdlc_line(baud)
                self._events.append(SwitchLine(self._line))
                self._events.append(HdlcHandOver(self._line))
            elif baud != self._line.baud:
                self._line = LineSettings(baud)
                self._events.append(SwitchLine(self._line))
        if target is C.COMPLETE:
            self._to_initial_line()
        return wire

    def repeat(self) -> bytes:
        """The last message again (answer to the meter's NAK)."""
        if (
            self._state not in (C.AWAIT_PASSWORD_ACK, C.AWAIT_ANSWER, C.AWAIT_WRITE_ACK)
            or not self._last_sent
        ):
            raise LocalProtocolError(f"nothing to repeat in state {self._state.value!r}")
        return self._last_sent

    def _option_kind(self, option: OptionSelect) -> str:
        ident = self._identification
        if self.mode not in ("C", "E") or ident is None:
            return "send:option_select"  # not in any table: raises with the state named
        if option.baud_char not in BAUD_MODE_C:
            raise LocalProtocolError(f"baud character {option.baud_char!r} is not a mode C/E rate")
        offered = BAUD_MODE_C.get(ident.baud_char, 300)
        if BAUD_MODE_C[option.baud_char] > offered:
            raise LocalProtocolError(
                f"meter offers at most {offered} baud ({ident.baud_char!r}), asked for "
                f"{BAUD_MODE_C[option.baud_char]}"
            )
        if option.hdlc:
            if not ident.mode_e:
                raise LocalProtocolError("meter did not announce mode E (\\2): no HDLC hand-over")
            return "send:option_hdlc"
        if option.mode == "0":
            return "send:option_readout"
        if option.mode == "1":
            return "send:option_programming"
        raise LocalProtocolError(
            f"option select mode {option.mode!r} (manufacturer specific) is not supported"
        )

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes from the line."""
        if self._state is C.ERROR:
            raise LocalProtocolError("iec62056-21 client is in the error state: reset() first")
        try:
            self._rx.feed(data)
        except ProtocolError:
            self._state = C.ERROR
            raise

    def next_event(self) -> ClientEvent | NeedData:
        """The next event, or ``NEED_DATA``."""
        if self._events:
            return self._events.popleft()
        if self._state is C.ERROR:
            raise LocalProtocolError("iec62056-21 client is in the error state: reset() first")
        hunt = _HUNT_CLIENT.get(self._state)
        if hunt is None:
            return NEED_DATA
        while True:
            raw = self._rx.next_message(hunt)
            if raw is None:
                return NEED_DATA
            if self._state is C.AWAIT_IDENTIFICATION and bytes(raw[:2]) == b"/?":
                continue  # our own sign-on echoed by the optical head
            break
        try:
            event = self._decode(raw)
        except ChecksumError:
            if self._state is C.AWAIT_READOUT:
                self._state = C.ERROR
            raise
        except ProtocolError:
            self._state = C.ERROR
            raise
        return event

    def _decode(self, raw: memoryview) -> ClientEvent:
        first = raw[0]
        event: ClientEvent
        if first == 0x2F:
            ident = Identification.decode(raw)
            if self.mode in ("C", "E") and ident.baud_char not in BAUD_MODE_C:
                raise UnsupportedError(
                    f"mode {self.mode} meter announced baud character {ident.baud_char!r} (expected 0-6)",
                    offset=4,
                    layer=LAYER,
                )
            auto = self.mode in ("A", "B", "D")
            self._transition("recv:identification_auto" if auto else "recv:identification", ProtocolError)
            self._identification = ident
            self._events.append(ident)
            if auto and self.mode != "A":
                self._line = LineSettings(baud_for(self.mode, ident.baud_char))
                self._events.append(SwitchLine(self._line))
            return self._events.popleft()
        if first == STX:
            message = DataMessage.decode(raw)
            event, what = message, _data_kind(message)
        elif first == SOH:
            command = decode_command(raw)
            if isinstance(command, PasswordOperand | Break):
                event = command
                what = "recv:operand" if isinstance(command, PasswordOperand) else "recv:break"
            else:  # a client's command coming from the meter: no table has it
                event, what = Nak(), f"recv:command {type(command).__name__}"
        elif first == ACK:
            event, what = Ack(), "recv:ack"
        else:
            event, what = Nak(), "recv:nak"
        target = self._transition(what, ProtocolError)
        self._events.append(event)
        if target is C.COMPLETE:
            self._to_initial_line()
        return self._events.popleft()


RegisterSource = Callable[[str], Sequence[DataValue] | None] | Mapping[str, Sequence[DataValue]]
ReadoutSource = Callable[[], Iterable[DataLine]] | Iterable[DataLine]
WriteCheck = Callable[[str, tuple[DataValue, ...]], bool] | Collection[str]


@dataclass(frozen=True, slots=True)
class _MeterConfig:
    identification: Identification
    mode: ProtocolMode
    address: str
    password: str | None = field(repr=False)
    operand: str
    max_repeats: int


class Iec62056Meter:
    """The meter side: answers sign-on, option select, readout and programming mode by itself.

    - ``identification``: what the meter answers to a sign-on; its ``baud_char``
      is the highest rate it offers, ``enhanced="2"`` offers mode E.
    - ``readout``: the data lines of a readout (a callable is asked each time).
    - ``registers``: values for R1, a mapping ``address -> values`` or a callable
      ``address -> values | None`` (``None``: unknown, answered ``(ER02)``).
      Addresses compare by OBIS code where they are OBIS codes (``1.8.0`` ==
      ``1-0:1.8.0.255``).
    - ``password``: the P1 password (``None`` accepts any); a wrong one ends the
      session with B0.
    - ``writable``: addresses W1 may change, or a callable that accepts or refuses.
      An accepted write is acknowledged and reported as ``RegisterWritten``; with a
      mapping ``registers`` the stored value changes too.
    - ``address``: the device address; a sign-on naming another address is ignored.
    """

    def __init__(
        self,
        identification: Identification,
        *,
        readout: ReadoutSource,
        registers: RegisterSource | None = None,
        password: str | None = None,
        writable: WriteCheck = (),
        mode: ProtocolMode = "C",
        address: str = "",
        operand: str = "",
        max_repeats: int = 3,
    ) -> None:
        if mode not in ("A", "B", "C", "D", "E"):
            raise ValueError(f"protocol mode {mode!r} must be one of A, B, C, D, E")
        if mode in ("C", "E") and identification.baud_char not in BAUD_MODE_C:
            raise ValueError(f"mode {mode} identification needs a baud character 0-6")
        if mode == "B":
            baud_for("B", identification.baud_char)
        self._config = _MeterConfig(identification, mode, address, password, operand, max_repeats)
        self._readout = readout
        self._registers: RegisterSource = (
            {self._key(k): tuple(v) for k, v in registers.items()}
            if isinstance(registers, Mapping)
            else (registers or {})
        )
        self._writable = writable if callable(writable) else frozenset(self._key(a) for a in writable)
        self._rx = _Receiver()
        self._events: deque[MeterEvent] = deque()
        self._state = M.IDLE
        self._line = INITIAL_LINE
        self._last = b""
        self._repeats = 0

    @staticmethod
    def _key(address: str) -> str:
        code = obis_of(address)
        return str(code) if isinstance(code, ObisCode) else address

    @property
    def state(self) -> MeterState:
        return self._state

    @property
    def line(self) -> LineSettings:
        return self._line

    def trailing_data(self) -> bytes:
        """Bytes received but not consumed (after a mode E hand-over: the client's first HDLC frame)."""
        return self._rx.remaining()

    def reset(self) -> None:
        """Inactivity timeout or recovery from ``ERROR``: back to IDLE, 300 baud (queues ``SwitchLine``)."""
        self._rx.clear()
        self._events.clear()
        self._state = M.IDLE
        self._to_initial_line()

    def push(self) -> None:
        """Mode D: the push button. Queues the identification, the switch to 2400 baud and the data."""
        if self._config.mode != "D":
            raise LocalProtocolError("only a mode D meter sends without a sign-on")
        if self._state is not M.IDLE:
            raise LocalProtocolError(f"meter is busy ({self._state.value})")
        self._send(self._config.identification.encode())
        self._switch(LineSettings(baud_for("D", "3")))
        self._send(self._readout_message())
        self._to_initial_line()

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        if self._state is M.ERROR:
            raise LocalProtocolError("iec62056-21 meter is in the error state: reset() first")
        try:
            self._rx.feed(data)
        except ProtocolError:
            self._state = M.ERROR
            raise

    def next_event(self) -> MeterEvent | NeedData:
        """The next thing to do (``Transmit``, ``SwitchLine``, ...), or ``NEED_DATA``."""
        while not self._events:
            if self._state is M.ERROR:
                raise LocalProtocolError("iec62056-21 meter is in the error state: reset() first")
            hunt = _HUNT_METER.get(self._state)
            if hunt is None:
                return NEED_DATA
            try:
                raw = self._rx.next_message(hunt, option_select=self._state is M.AWAIT_OPTION)
            except FramingError:
                self._state = M.ERROR
                raise
            if raw is None:
                return NEED_DATA
            try:
                self._handle(raw)
            except ChecksumError:
                if self._state in (M.AWAIT_PASSWORD, M.PROGRAMMING):
                    self._events.append(Transmit(b"\x15"))  # repeat request
                else:
                    self._state = M.ERROR
                    raise
            except ProtocolError:
                self._state = M.ERROR
                raise
        return self._events.popleft()

    # -- internals ---------------------------------------------------------------------------

    def _transition(self, what: str) -> MeterState:
        allowed = METER_TRANSITIONS[self._state]
        target = allowed.get(what)
        if target is None:
            old = self._state
            self._state = M.ERROR
            raise ProtocolError(
                f"client sent {what.split(':')[1]} in state {old.value!r} "
                f"(expected: {', '.join(sorted(allowed)) or 'nothing'})",
                layer=LAYER,
            )
        self._state = target
        return target

    def _send(self, wire: bytes, remember: bool = True) -> None:
        if remember:
            self._last = wire
            self._repeats = 0
        self._events.append(Transmit(wire))

    def _switch(self, line: LineSettings) -> None:
        if line != self._line:
            self._line = line
            self._events.append(SwitchLine(line))

    def _to_initial_line(self) -> None:
        self._switch(INITIAL_LINE)

    def _readout_message(self) -> bytes:
        source = self._readout
        lines = source() if callable(source) else source
        return DataMessage(tuple(tuple(line) for line in lines), readout=True).encode()

    def _handle(self, raw: memoryview) -> None:
        cfg = self._config
        first = raw[0]
        if first == 0x2F:
            sign_on = SignOn.decode(raw)
            if sign_on.address and sign_on.address != cfg.address:
                self._transition("recv:sign_on_other")
                return
            auto = cfg.mode in ("A", "B")
            self._transition("recv:sign_on_auto" if auto else "recv:sign_on")
            self._send(cfg.identification.encode())
            if auto:
                if cfg.mode == "B":
                    self._switch(LineSettings(baud_for("B", cfg.identification.baud_char)))
                self._send(self._readout_message())
                self._to_initial_line()
            return
        if first == ACK and self._state is M.AWAIT_OPTION:
            self._option_select(OptionSelect.decode(raw))
            return
        if first == NAK:
            self._transition("recv:nak")
            if self._repeats >= cfg.max_repeats or not self._last:
                self._send(Break().encode(), remember=False)
                self._state = M.IDLE
                self._to_initial_line()
                return
            self._repeats += 1
            self._events.append(Transmit(self._last))
            return
        self._command(decode_command(raw))

    def _option_select(self, option: OptionSelect) -> None:
        cfg = self._config
        offered = BAUD_MODE_C[cfg.identification.baud_char]
        baud = BAUD_MODE_C.get(option.baud_char)
        if baud is None or baud > offered:
            self._state = M.ERROR
            raise UnsupportedError(
                f"option select asks for baud character {option.baud_char!r}; meter offers up to {offered}",
                offset=2,
                layer=LAYER,
            )
        if option.hdlc:
            if not cfg.identification.mode_e:
                self._state = M.ERROR
                raise UnsupportedError(
                    "HDLC hand-over asked of a meter without mode E", offset=1, layer=LAYER
                )
            self._transition("recv:option_hdlc")
            self._line = hdlc_line(baud)
            self._events.append(SwitchLine(self._line))
            self._events.append(HdlcHandOver(self._line))
            return
        if option.mode == "0":
            self._transition("recv:option_readout")
            self._switch(LineSettings(baud))
            self._send(self._readout_message())
            self._to_initial_line()
        elif option.mode == "1":
            self._transition("recv:option_programming")
            self._switch(LineSettings(baud))
            self._send(PasswordOperand(cfg.operand).encode())
        else:
            self._state = M.ERROR
            raise UnsupportedError(
                f"option select mode {option.mode!r} is not supported", offset=3, layer=LAYER
            )

    def _command(self, command: CommandMessage) -> None:
        cfg = self._config
        if isinstance(command, Password):
            good = cfg.password is None or command.password == cfg.password
            self._transition("recv:password_ok" if good else "recv:password_bad")
            if good:
                self._send(Ack().encode())
            else:
                self._send(Break().encode())
                self._to_initial_line()
        elif isinstance(command, Break):
            self._transition("recv:break")
            self._to_initial_line()
        elif isinstance(command, ReadRequest):
            self._transition("recv:read")
            values = self._lookup(command.address)
            if values is None:
                answer = DataMessage.answer("", DataValue("ER02"))
            else:
                answer = DataMessage.answer(command.address, *values)
            self._send(answer.encode())
        elif isinstance(command, WriteRequest):
            self._transition("recv:write")
            if self._may_write(command.address, command.values):
                registers = self._registers
                if isinstance(registers, dict):
                    registers[self._key(command.address)] = command.values
                self._send(Ack().encode())
                self._events.append(RegisterWritten(command.address, command.values))
            else:
                self._send(DataMessage.answer("", DataValue("ER03")).encode())
        else:
            self._transition(f"recv:{type(command).__name__}")

    def _lookup(self, address: str) -> Sequence[DataValue] | None:
        registers = self._registers
        if callable(registers):
            return registers(address)
        return registers.get(self._key(address))

    def _may_write(self, address: str, values: tuple[DataValue, ...]) -> bool:
        writable = self._writable
        if callable(writable):
            return bool(writable(address, values))
        return self._key(address) in writable


CapturedMessage = SignOn | Identification | OptionSelect | DataMessage | CommandMessage | Ack | Nak


class CaptureReader:
    """Reads a captured line, both directions as a sniffer or a log file holds them, message by message.

    No session rules apply (a capture may start anywhere); bytes that start no
    message are skipped and counted in ``skipped``. Errors carry the offset in the
    whole stream.
    """

    def __init__(self) -> None:
        self._rx = _Receiver()

    @property
    def skipped(self) -> int:
        return self._rx.skipped

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        self._rx.feed(data)

    def next_event(self) -> CapturedMessage | NeedData:
        raw = self._rx.next_message(_HUNT_ANY, option_select=None)
        if raw is None:
            return NEED_DATA
        try:
            first = raw[0]
            if first == 0x2F:
                return SignOn.decode(raw) if len(raw) > 1 and raw[1] == 0x3F else Identification.decode(raw)
            if first == STX:
                return DataMessage.decode(raw)
            if first == SOH:
                return decode_command(raw)
            if first == ACK:
                return OptionSelect.decode(raw) if len(raw) == 6 else Ack()
            return Nak()
        except ProtocolError as exc:
            raise type(exc)(
                exc.message, offset=self._rx.last_start + (exc.offset or 0), layer=exc.layer
            ) from None
