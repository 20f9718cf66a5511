"""IEC 62056-21 messages and data lines: exact cases, round trips (hypothesis), fuzz that only raises our errors."""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterbridge.errors import (
    ChecksumError,
    FramingError,
    LocalProtocolError,
    MeterbridgeError,
    ProtocolError,
    UnsupportedError,
)
from meterbridge.obis import ObisCode
from meterbridge.protocols.events import NEED_DATA
from meterbridge.protocols.iec62056_21 import (
    Break,
    DataMessage,
    DataSet,
    DataValue,
    Identification,
    Iec62056Client,
    Iec62056Meter,
    OptionSelect,
    Password,
    PasswordOperand,
    ReadRequest,
    SignOn,
    WriteRequest,
    baud_char_for,
    baud_for,
    bcc,
    decode_command,
    decode_readout,
    encode_data_block,
    parse_data_block,
    parse_data_line,
    readout_values,
)

# -- data lines --------------------------------------------------------------------------------


def test_data_line_shapes() -> None:
    (s,) = parse_data_line("1.8.0(061561.289*kWh)")
    assert (s.address, s.value, s.unit) == ("1.8.0", Decimal("61561.289"), "kWh")
    two = parse_data_line("1.8.1(1*kWh)1.8.2(2.5*kWh)")
    assert [(x.address, x.value) for x in two] == [("1.8.1", 1), ("1.8.2", Decimal("2.5"))]
    (series,) = parse_data_line("P.01(2611281015)(00)(15)(2)(1.5)(kW)(2.5)(kW)")
    assert series.address == "P.01" and len(series.values) == 8
    (empty,) = parse_data_line("0.2.0()")
    assert empty.value == "" and empty.unit is None
    (err,) = parse_data_line("(ER12)")
    assert err.address == "" and err.error == "ER12" and err.value is None
    (err2,) = parse_data_line("1.8.0(ER03)")
    assert err2.error == "ER03"
    (spaces,) = parse_data_line("0.0(   1 2 )")
    assert spaces.values[0].text == "   1 2 " and spaces.value == "1 2"
    (full,) = parse_data_line("1-0:32.7.0*255(230.1*V)")
    assert full.obis == ObisCode(1, 0, 32, 7, 0) and full.value == Decimal("230.1")
    (neg,) = parse_data_line("16.7.0(-00.123*kW)")
    assert neg.value == Decimal("-0.123")
    (manufacturer,) = parse_data_line("X.Y.Z(1)")
    assert manufacturer.obis is None and manufacturer.value == "1"
    (empty_unit,) = parse_data_line("1.8.0(5*)")
    assert empty_unit.unit == "" and empty_unit.encode() == "1.8.0(5*)"


def test_dsmr_timestamps() -> None:
    (s,) = parse_data_line("0-0:1.0.0(231128104512W)")
    assert s.value == datetime(2023, 11, 28, 10, 45, 12, tzinfo=timezone(timedelta(hours=1)))
    (s,) = parse_data_line("0-0:1.0.0(230628104512S)")
    assert s.value == datetime(2023, 6, 28, 10, 45, 12, tzinfo=timezone(timedelta(hours=2)))
    (bad,) = parse_data_line("0-0:1.0.0(231328104512W)")  # month 13: not a timestamp, kept as text
    assert bad.value == "231328104512W"


@pytest.mark.parametrize(
    ("text", "offset"),
    [
        ("1.8.0(1*kWh", 0),
        ("1.8.0(1)x", 8),
        ("1.8.0(1)\r\n2.8.0(1*k*Wh)", 10),
        ("1.8.0((1))", 0),
        ("1.8.0(1)\n", 8),
        ("1.8.0(1)\r", 8),
        ("abc", 0),
    ],
)
def test_data_block_errors_name_the_offset(text: str, offset: int) -> None:
    with pytest.raises(FramingError) as info:
        parse_data_block(text, base=1)
    assert info.value.offset == offset + 1
    assert info.value.layer == "iec62056-21"


_value_text = st.text(st.sampled_from("0123456789.-+ ABCDEFERabcxyz:_,;/"), max_size=20)
_unit = st.none() | st.text(st.sampled_from("kWhVAvarHz%m3s"), max_size=4)
_address = st.text(st.sampled_from("0123456789.:-CFLP*&"), min_size=1, max_size=16)
_data_value = st.builds(DataValue, _value_text, _unit)
_data_set = st.builds(DataSet, _address, st.lists(_data_value, min_size=1, max_size=4).map(tuple))
_line = st.lists(_data_set, min_size=1, max_size=3).map(tuple)
_lines = st.lists(_line, max_size=8).map(tuple)


@settings(max_examples=200, deadline=None)
@given(_lines)
def test_round_trip_data_block(lines: tuple[tuple[DataSet, ...], ...]) -> None:
    assert parse_data_block(encode_data_block(lines)) == lines


@settings(max_examples=150, deadline=None)
@given(_lines, st.booleans(), st.booleans())
def test_round_trip_data_message(lines: tuple[tuple[DataSet, ...], ...], readout: bool, final: bool) -> None:
    message = DataMessage(lines, readout=readout, final=final)
    decoded = DataMessage.decode(message.encode())
    assert decoded.lines == lines
    assert decoded.final == final
    assert decoded.readout == readout
    if readout and final:
        assert readout_values(message.encode()) == [(s.address, s.value, s.unit) for s in decoded.data_sets]


@settings(max_examples=150, deadline=None)
@given(
    st.text(st.characters(min_codepoint=0x41, max_codepoint=0x5A), min_size=3, max_size=3),
    st.sampled_from("0123456ABCDEF"),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/!\\"), max_size=16),
    st.sampled_from(["", "2", "2W"]),
)
def test_round_trip_identification(manufacturer: str, baud: str, ident: str, enhanced: str) -> None:
    message = Identification(manufacturer, baud, ident, enhanced)
    assert Identification.decode(message.encode()) == message


@settings(max_examples=100, deadline=None)
@given(st.text(st.sampled_from("0123456789ABCxyz "), max_size=32))
def test_round_trip_sign_on(address: str) -> None:
    assert SignOn.decode(SignOn(address).encode()) == SignOn(address)


@settings(max_examples=100, deadline=None)
@given(st.sampled_from("0123456"), st.sampled_from("012"), st.sampled_from("012"))
def test_round_trip_option_select(z: str, y: str, v: str) -> None:
    message = OptionSelect(baud_char=z, mode=y, protocol=v)
    assert OptionSelect.decode(message.encode()) == message


_commands = st.one_of(
    st.builds(PasswordOperand, _value_text),
    st.builds(Password, _value_text, st.sampled_from(["1", "2"])),
    st.builds(ReadRequest, _address, _value_text, st.sampled_from("123456")),
    st.builds(
        WriteRequest,
        _address,
        st.lists(_data_value, min_size=1, max_size=3).map(tuple),
        st.sampled_from("12"),
    ),
    st.just(Break()),
)


@settings(max_examples=200, deadline=None)
@given(_commands)
def test_round_trip_commands(command: object) -> None:
    assert decode_command(command.encode()) == command  # type: ignore[attr-defined]


def test_command_wire_forms() -> None:
    assert Password("00000000").encode() == b"\x01P1\x02(00000000)\x03\x61"
    assert Break().encode() == b"\x01B0\x03\x71"
    assert ReadRequest("1.8.0").encode() == b"\x01R1\x021.8.0()\x03" + bytes((bcc(b"R1\x021.8.0()\x03"),))


def test_bcc_matches_a_plain_loop() -> None:
    data = bytes(range(256)) * 3 + b"\x07"
    x = 0
    for b in data:
        x ^= b
    assert bcc(data) == x
    assert bcc(b"") == 0 and bcc(b"\x42") == 0x42


def test_command_errors() -> None:
    good = ReadRequest("1.8.0").encode()
    with pytest.raises(ChecksumError, match="BCC mismatch"):
        decode_command(good[:-1] + bytes((good[-1] ^ 1,)))
    body = b"X1\x02a()\x03"
    with pytest.raises(UnsupportedError, match="command X1"):
        decode_command(b"\x01" + body + bytes((bcc(body),)))
    body = b"B1\x03"
    with pytest.raises(UnsupportedError, match="B1"):
        decode_command(b"\x01" + body + bytes((bcc(body),)))
    body = b"R1\x031.8.0()\x03"
    with pytest.raises(FramingError, match="STX"):
        decode_command(b"\x01" + body + bytes((bcc(body),)))


def test_baud_tables() -> None:
    assert [baud_for("C", c) for c in "0123456"] == [300, 600, 1200, 2400, 4800, 9600, 19200]
    assert [baud_for("B", c) for c in "ABCDEF"] == [600, 1200, 2400, 4800, 9600, 19200]
    assert baud_for("A", "x") == 300 and baud_for("D", "3") == 2400
    assert baud_char_for("E", 9600) == "5" and baud_char_for("B", 9600) == "E"
    with pytest.raises(UnsupportedError):
        baud_for("C", "9")
    with pytest.raises(ValueError):
        baud_char_for("C", 1234)


def test_bad_identifications() -> None:
    for raw in (b"/lgz5X\r\n", b"/LG\r\n", b"/LGZ5\xffX\r\n", b"/LGZ5X!\r\n"):
        with pytest.raises(FramingError):
            Identification.decode(raw)


# -- fuzz: only our errors, never anything else ------------------------------------------------

_noise = st.binary(max_size=300)
_structured = st.lists(
    st.sampled_from(
        [
            b"/",
            b"?",
            b"!",
            b"\r\n",
            b"\x01",
            b"\x02",
            b"\x03",
            b"\x04",
            b"\x06",
            b"\x15",
            b"(",
            b")",
            b"*",
            b"1.8.0",
            b"P1",
            b"R1",
            b"LGZ5",
            b"/LGZ5ZMF\r\n",
            b"\x06051\r\n",
            b"\xff",
        ]
    ),
    max_size=40,
).map(b"".join)


@settings(max_examples=200, deadline=None)
@given(_noise | _structured)
def test_fuzz_decoders(data: bytes) -> None:
    for decode in (
        DataMessage.decode,
        decode_command,
        Identification.decode,
        SignOn.decode,
        OptionSelect.decode,
        decode_readout,
        readout_values,
    ):
        with contextlib.suppress(ProtocolError):
            decode(data)


@settings(max_examples=200, deadline=None)
@given(_noise | _structured, st.sampled_from("ABCDE"))
def test_fuzz_client(data: bytes, mode: str) -> None:
    client = Iec62056Client(mode)  # type: ignore[arg-type]
    if mode != "D":
        client.send(SignOn())
    try:
        for i in range(0, len(data), 7):
            client.receive_data(data[i : i + 7])
            while client.next_event() is not NEED_DATA:
                pass
    except MeterbridgeError as exc:
        assert isinstance(exc, ProtocolError | LocalProtocolError)


@settings(max_examples=200, deadline=None)
@given(_noise | _structured)
def test_fuzz_meter(data: bytes) -> None:
    meter = Iec62056Meter(Identification("LGZ", "5", "X", "2"), readout=(), mode="E")
    try:
        for i in range(0, len(data), 5):
            meter.receive_data(data[i : i + 5])
            while meter.next_event() is not NEED_DATA:
                pass
    except MeterbridgeError as exc:
        assert isinstance(exc, ProtocolError | LocalProtocolError)
