"""Client and meter roles talk to each other in memory through whole sessions.

The in-memory line delivers bytes only when both ends are set to the same baud rate and
character format (a receiver at the wrong rate would read garbage), so every switch-over
instant is checked as well as the messages.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from meterbridge.errors import ChecksumError, LocalProtocolError, ProtocolError
from meterbridge.protocols.events import NEED_DATA
from meterbridge.protocols.iec62056_21 import (
    INITIAL_LINE,
    Ack,
    Break,
    ClientState,
    DataMessage,
    DataSet,
    DataValue,
    HdlcHandOver,
    Identification,
    Iec62056Client,
    Iec62056Meter,
    LineSettings,
    MeterState,
    Nak,
    OptionSelect,
    Password,
    PasswordOperand,
    ReadRequest,
    RegisterWritten,
    SignOn,
    SwitchLine,
    Transmit,
    WriteRequest,
    hdlc_line,
    parse_data_block,
)

READOUT = parse_data_block(
    "C.1.0(12345678)\r\n1.8.0(001234.567*kWh)\r\n32.7.0(230.1*V)\r\n1.6.0(01.234*kW)(2611281015)\r\n"
)


def make_meter(mode: str = "C", baud_char: str = "5", enhanced: str = "", **kwargs: object) -> Iec62056Meter:
    options: dict[str, object] = {
        "readout": READOUT,
        "registers": {"1.8.0": (DataValue("001234.567", "kWh"),), "C.1.0": (DataValue("12345678"),)},
        "password": "00000000",
        "writable": ["0.9.1"],
        "mode": mode,
    }
    options.update(kwargs)
    return Iec62056Meter(Identification("LGZ", baud_char, "ZMF100AC.M26", enhanced), **options)  # type: ignore[arg-type]


class Line:
    """Connects a client and a meter; records every event each side produced."""

    def __init__(self, client: Iec62056Client, meter: Iec62056Meter) -> None:
        self.client, self.meter = client, meter
        self.client_line = self.meter_line = INITIAL_LINE
        self.client_events: list[object] = []
        self.meter_events: list[object] = []
        self.written: list[RegisterWritten] = []
        self.mangle_meter: bytes | None = None  # replace the next meter transmission
        self.pending: list[object] = []  # client events drained while the meter was talking

    def client_sends(self, message: object) -> None:
        written_at = self.client_line
        wire = self.client.send(message)  # type: ignore[arg-type]
        self.drain_client()  # a switch the message causes happens once its bytes are out
        self.to_meter(wire, written_at)
        self.drain_client()

    def to_meter(self, wire: bytes, written_at: LineSettings | None = None) -> None:
        written_at = self.client_line if written_at is None else written_at
        assert written_at == self.meter_line, "client wrote at another line setting than the meter's"
        self.meter.receive_data(wire)
        self.drain_meter()

    def drain_meter(self) -> None:
        while (event := self.meter.next_event()) is not NEED_DATA:
            self.meter_events.append(event)
            if isinstance(event, Transmit):
                data = event.data
                if self.mangle_meter is not None:
                    data, self.mangle_meter = self.mangle_meter, None
                self.pending += self.drain_client()  # the client reads what came before (and switches)
                assert self.client_line == self.meter_line, "meter wrote at another line setting"
                self.client.receive_data(data)
            elif isinstance(event, SwitchLine | HdlcHandOver):
                self.meter_line = event.line
            elif isinstance(event, RegisterWritten):
                self.written.append(event)

    def drain_client(self) -> list[object]:
        got = self.pending
        self.pending = []
        while (event := self.client.next_event()) is not NEED_DATA:
            got.append(event)
            self.client_events.append(event)
            if isinstance(event, SwitchLine | HdlcHandOver):
                self.client_line = event.line
        return got

    def last(self, kind: type) -> object:
        return next(e for e in reversed(self.client_events) if isinstance(e, kind))


def sign_on(line: Line) -> Identification:
    line.client_sends(SignOn())
    ident = line.last(Identification)
    assert isinstance(ident, Identification)
    return ident


def test_mode_c_readout_with_baud_switch() -> None:
    line = Line(Iec62056Client("C"), make_meter())
    ident = sign_on(line)
    assert ident.baud_char == "5" and line.client.state is ClientState.IDENTIFIED
    line.client_sends(OptionSelect(baud_char="5"))
    message = line.last(DataMessage)
    assert isinstance(message, DataMessage)
    assert message.lines == READOUT
    assert [e for e in line.client_events if isinstance(e, SwitchLine)] == [
        SwitchLine(LineSettings(9600)),
        SwitchLine(INITIAL_LINE),
    ]
    assert line.client.state is ClientState.COMPLETE and line.meter.state is MeterState.IDLE
    assert line.client_line == line.meter_line == INITIAL_LINE
    # and again: a second session on the same objects
    sign_on(line)
    line.client_sends(OptionSelect(baud_char="3"))
    assert SwitchLine(LineSettings(2400)) in line.client_events


def test_mode_a_stays_at_300_and_mode_b_switches_by_itself() -> None:
    line = Line(Iec62056Client("A"), make_meter("A", baud_char="0"))
    sign_on(line)
    assert line.last(DataMessage).lines == READOUT  # type: ignore[attr-defined]
    assert not any(isinstance(e, SwitchLine) for e in line.client_events)

    line = Line(Iec62056Client("B"), make_meter("B", baud_char="E"))
    sign_on(line)
    assert line.last(DataMessage).lines == READOUT  # type: ignore[attr-defined]
    assert [e.line.baud for e in line.client_events if isinstance(e, SwitchLine)] == [9600, 300]


def test_mode_d_meter_pushes_at_2400() -> None:
    meter = make_meter("D", baud_char="3")
    line = Line(Iec62056Client("D"), meter)
    meter.push()
    line.drain_meter()
    line.drain_client()
    assert line.last(DataMessage).lines == READOUT  # type: ignore[attr-defined]
    assert [e.line.baud for e in line.client_events if isinstance(e, SwitchLine)] == [2400, 300]
    with pytest.raises(LocalProtocolError):
        make_meter("C").push()


def enter_programming(line: Line, password: str = "00000000") -> None:
    sign_on(line)
    line.client_sends(OptionSelect(baud_char="5", mode="1"))
    operand = line.last(PasswordOperand)
    assert isinstance(operand, PasswordOperand)
    assert line.client.state is ClientState.PASSWORD_REQUIRED
    line.client_sends(Password(password))


def test_programming_mode_password_read_write_break() -> None:
    line = Line(Iec62056Client("C"), make_meter())
    enter_programming(line)
    assert isinstance(line.client_events[-1], Ack)
    assert line.client.state is ClientState.PROGRAMMING and line.meter.state is MeterState.PROGRAMMING
    assert line.client_line == line.meter_line == LineSettings(9600)

    line.client_sends(ReadRequest("1.8.0"))
    answer = line.last(DataMessage)
    assert isinstance(answer, DataMessage) and not answer.readout
    assert answer.data_sets[0].value == Decimal("1234.567") and answer.data_sets[0].unit == "kWh"

    line.client_sends(ReadRequest("1-0:99.99.0"))  # unknown register
    answer = line.last(DataMessage)
    assert answer.data_sets[0].error == "ER02"  # type: ignore[attr-defined]
    assert line.client.state is ClientState.PROGRAMMING

    line.client_sends(WriteRequest("0.9.1", (DataValue("101500"),)))
    assert isinstance(line.client_events[-1], Ack)
    assert line.written == [RegisterWritten("0.9.1", (DataValue("101500"),))]
    line.client_sends(ReadRequest("0.9.1"))
    assert line.last(DataMessage).data_sets[0].values == (DataValue("101500"),)  # type: ignore[attr-defined]

    line.client_sends(WriteRequest("1.8.0", (DataValue("0", "kWh"),)))  # not writable
    refused = line.client_events[-1]
    assert isinstance(refused, DataMessage) and refused.data_sets[0].error == "ER03"
    line.client_sends(ReadRequest("1.8.0"))
    assert line.last(DataMessage).data_sets[0].value == Decimal("1234.567")  # type: ignore[attr-defined]

    line.client_sends(Break())
    assert line.client.state is ClientState.COMPLETE and line.meter.state is MeterState.IDLE
    assert line.client_line == line.meter_line == INITIAL_LINE


def test_wrong_password_ends_the_session() -> None:
    line = Line(Iec62056Client("C"), make_meter())
    enter_programming(line, password="12345678")
    assert isinstance(line.client_events[-2], Break)
    assert line.client.state is ClientState.COMPLETE and line.meter.state is MeterState.IDLE
    assert line.client_line == line.meter_line == INITIAL_LINE


def test_garbled_answer_is_repeated_after_nak() -> None:
    line = Line(Iec62056Client("C"), make_meter())
    enter_programming(line)
    good = DataMessage.answer("1.8.0", DataValue("001234.567", "kWh")).encode()
    bad = bytearray(good)
    bad[8] ^= 0x04  # one flipped bit in the value
    line.mangle_meter = bytes(bad)
    wire = line.client.send(ReadRequest("1.8.0"))
    line.to_meter(wire)
    with pytest.raises(ChecksumError):
        line.client.next_event()
    assert line.client.state is ClientState.AWAIT_ANSWER  # kept: NAK asks for a repeat
    line.client_sends(Nak())
    answer = line.last(DataMessage)
    assert answer.data_sets[0].value == Decimal("1234.567")  # type: ignore[attr-defined]
    assert line.client.state is ClientState.PROGRAMMING


def test_garbled_request_gets_nak_and_is_repeated() -> None:
    line = Line(Iec62056Client("C"), make_meter())
    enter_programming(line)
    wire = bytearray(line.client.send(ReadRequest("1.8.0")))
    wire[5] ^= 0x01
    line.to_meter(bytes(wire))
    assert line.drain_client() == [Nak()]
    line.to_meter(line.client.repeat())
    line.drain_client()
    assert line.last(DataMessage).data_sets[0].value == Decimal("1234.567")  # type: ignore[attr-defined]


def test_meter_gives_up_after_repeated_naks() -> None:
    line = Line(Iec62056Client("C"), make_meter(max_repeats=2))
    enter_programming(line)
    line.client.send(ReadRequest("1.8.0"))
    line.client.receive_data(b"")
    for _ in range(2):
        line.meter.receive_data(b"\x15")
        assert isinstance(line.meter.next_event(), Transmit)
    line.meter.receive_data(b"\x15")
    assert line.meter.next_event() == Transmit(Break().encode())
    assert line.meter.state is MeterState.IDLE


def test_mode_e_hands_over_to_hdlc() -> None:
    line = Line(Iec62056Client("E"), make_meter("E", enhanced="2"))
    ident = sign_on(line)
    assert ident.mode_e and ident.encode() == b"/LGZ5\\2ZMF100AC.M26\r\n"
    line.client_sends(OptionSelect(baud_char="5", mode="2", protocol="2"))
    assert line.client_events[-2:] == [SwitchLine(hdlc_line(9600)), HdlcHandOver(hdlc_line(9600))]
    assert line.meter_events[-1] == HdlcHandOver(hdlc_line(9600))
    assert line.client.state is ClientState.HANDED_OVER and line.meter.state is MeterState.HANDED_OVER
    snrm = bytes.fromhex("7ea00a000200232193bd647e")
    line.meter.receive_data(snrm)
    assert line.meter.next_event() is NEED_DATA
    assert line.meter.trailing_data() == snrm  # the first HDLC frame goes to the HDLC codec


def test_mode_e_needs_the_meter_to_offer_it() -> None:
    line = Line(Iec62056Client("E"), make_meter("C"))
    sign_on(line)
    with pytest.raises(LocalProtocolError, match="mode E"):
        line.client.send(OptionSelect(baud_char="5", mode="2", protocol="2"))


def test_device_address() -> None:
    meter = make_meter(address="12345678")
    meter.receive_data(SignOn("99999999").encode())
    assert meter.next_event() is NEED_DATA and meter.state is MeterState.IDLE
    meter.receive_data(SignOn("12345678").encode())
    event = meter.next_event()
    assert isinstance(event, Transmit) and event.data.startswith(b"/LGZ5")


def test_client_skips_its_own_echo() -> None:
    client = Iec62056Client("C")
    wire = client.send(SignOn())
    client.receive_data(wire + b"/LGZ5ZMF100AC.M26\r\n")
    assert isinstance(client.next_event(), Identification)


def test_client_refuses_what_its_table_does_not_allow() -> None:
    client = Iec62056Client("C")
    with pytest.raises(LocalProtocolError, match="cannot read in state 'idle'"):
        client.send(ReadRequest("1.8.0"))
    assert client.state is ClientState.ERROR
    with pytest.raises(LocalProtocolError):
        client.receive_data(b"x")
    client.reset()
    assert client.state is ClientState.IDLE
    client.send(SignOn())
    client.receive_data(b"/LGZ5ZMF\r\n")
    client.next_event()
    with pytest.raises(LocalProtocolError, match="at most 9600"):
        client.send(OptionSelect("6"))


def test_client_refuses_unexpected_messages_from_the_meter() -> None:
    line = Line(Iec62056Client("C"), make_meter())
    enter_programming(line)
    line.client.send(ReadRequest("1.8.0"))
    line.client.receive_data(ReadRequest("1.8.0").encode())
    with pytest.raises(ProtocolError, match="meter sent command ReadRequest"):
        line.client.next_event()
    assert line.client.state is ClientState.ERROR


def test_meter_refuses_a_baud_rate_it_does_not_offer() -> None:
    meter = make_meter(baud_char="4")
    meter.receive_data(SignOn().encode())
    meter.next_event()
    meter.receive_data(OptionSelect("5").encode())
    with pytest.raises(ProtocolError, match="offers up to 4800"):
        meter.next_event()
    assert meter.state is MeterState.ERROR
    meter.reset()
    assert meter.state is MeterState.IDLE


def test_meter_callables_supply_data() -> None:
    calls = []

    def registers(address: str) -> tuple[DataValue, ...] | None:
        calls.append(address)
        return (DataValue("42", "W"),) if address == "1.7.0" else None

    meter = make_meter(
        readout=lambda: [(DataSet("1.8.0", (DataValue("1", "kWh"),)),)],
        registers=registers,
        writable=lambda address, values: address == "0.9.2",
        password=None,
    )
    line = Line(Iec62056Client("C"), meter)
    enter_programming(line, password="anything")
    line.client_sends(ReadRequest("1.7.0"))
    assert line.last(DataMessage).data_sets[0].value == 42  # type: ignore[attr-defined]
    line.client_sends(WriteRequest("0.9.2", (DataValue("261128"),)))
    assert isinstance(line.client_events[-1], Ack)
    assert calls == ["1.7.0"]


def test_password_never_in_repr() -> None:
    assert "secret" not in repr(Password("secret"))
    assert "secret" not in repr(make_meter(password="secret")._config)


def test_password_errors_never_echo_it() -> None:
    with pytest.raises(ValueError) as info:
        Password("se(cret")
    assert "se(cret" not in str(info.value)


def test_buffer_limit() -> None:
    from meterbridge.errors import FramingError
    from meterbridge.protocols.iec62056_21.session import MAX_BUFFER

    client = Iec62056Client("C")
    client.send(SignOn())
    client.receive_data(b"/LGZ5ZMF\r\n")
    client.next_event()
    client.send(OptionSelect("5"))
    client.next_event()
    client.receive_data(b"\x02" + b"1" * (MAX_BUFFER // 2))
    with pytest.raises(FramingError, match="without a complete message"):
        client.receive_data(b"1" * (MAX_BUFFER // 2 + 10))
    assert client.state is ClientState.ERROR
