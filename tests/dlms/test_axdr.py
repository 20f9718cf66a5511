"""A-XDR: every COSEM data type both ways, lengths, offsets in errors, round trips and fuzz."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterbridge.errors import FramingError, ProtocolError, UnsupportedError
from meterbridge.protocols.dlms.axdr import (
    BitString,
    ClockStatus,
    CompactArray,
    CosemDate,
    CosemDateTime,
    CosemTime,
    Data,
    DataType,
    TypeDescription,
    decode_data,
    decode_length,
    encode_data,
    encode_length,
)

H = bytes.fromhex


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (Data.null(), "00"),
        (Data.boolean(True), "03FF"),
        (Data.boolean(False), "0300"),
        (Data.integer(-1), "0FFF"),
        (Data.long(-2), "10FFFE"),
        (Data.double_long(-3), "05FFFFFFFD"),
        (Data.long64(-4), "14FFFFFFFFFFFFFFFC"),
        (Data.unsigned(200), "11C8"),
        (Data.long_unsigned(236), "1200EC"),
        (Data.double_long_unsigned(482939), "0600075E7B"),
        (Data.long64_unsigned(2**64 - 1), "15FFFFFFFFFFFFFFFF"),
        (Data.enum(27), "161B"),
        (Data(DataType.BCD, 42), "0D42"),
        (Data(DataType.FLOAT32, 1.5), "173FC00000"),
        (Data(DataType.FLOATING_POINT, -2.0), "07C0000000"),
        (Data(DataType.FLOAT64, 0.25), "183FD0000000000000"),
        (Data.octet_string(b"\x01\x02"), "09020102"),
        (Data.visible_string("LGZ"), "0A034C475A"),
        (Data.utf8_string("Zähler"), "0C075AC3A4686C6572"),
        (Data(DataType.BIT_STRING, BitString.from_bits("1010000001")), "040AA040"),
        (Data.array([Data.unsigned(1), Data.unsigned(2)]), "0102110111 02".replace(" ", "")),
        (Data.structure(Data.long_unsigned(3), Data.null()), "0202120003 00".replace(" ", "")),
        (Data(DataType.DONT_CARE), "FF"),
        (Data(DataType.DATE, CosemDate(2026, 5, 4, 1)), "1A07EA050401"),
        (Data(DataType.TIME, CosemTime(11, 39, None, None)), "1B0B27FFFF"),
    ],
)
def test_each_type_both_ways(value: Data, wire: str) -> None:
    assert encode_data(value) == H(wire)
    assert Data.decode(H(wire)) == value


def test_date_time_all_fields_and_unspecified() -> None:
    raw = H("07EA0504010B2715FF800081")
    dt = CosemDateTime.decode(raw)
    assert dt.date == CosemDate(2026, 5, 4, 1)
    assert dt.time == CosemTime(11, 39, 21, None)
    assert dt.deviation is None
    assert dt.clock_status == ClockStatus.INVALID_VALUE | ClockStatus.DAYLIGHT_SAVING_ACTIVE
    assert dt.encode() == raw
    assert str(dt) == "2026-05-04T11:39:21"
    wild = CosemDateTime.decode(H("FFFFFFFFFFFFFFFFFF8000FF"))
    assert wild == CosemDateTime(CosemDate(), CosemTime(), None, None)
    assert wild.encode() == H("FFFFFFFFFFFFFFFFFF8000FF")
    with pytest.raises(ValueError, match="unspecified"):
        wild.to_datetime()


def test_date_time_deviation_gives_utc_offset() -> None:
    # CET: local = UTC + 1 h, Blue Book deviation -60
    dt = CosemDateTime.decode(H("07EA010F04 0C0000 00 FFC4 00".replace(" ", "")))
    assert dt.deviation == -60
    assert dt.to_datetime().isoformat() == "2026-01-15T12:00:00+01:00"
    assert CosemDateTime.from_datetime(dt.to_datetime()) == dt


def test_length_encoding() -> None:
    for n in (0, 1, 127, 128, 255, 256, 65535, 70000):
        raw = encode_length(n) + b"x"
        assert decode_length(raw, 0) == (n, len(raw) - 1)
    assert encode_length(128) == H("8180")
    assert encode_length(300) == H("82012C")
    long_string = Data.octet_string(bytes(300))
    assert encode_data(long_string)[:4] == H("0982012C")
    assert Data.decode(encode_data(long_string)) == long_string


def test_compact_array() -> None:
    desc = TypeDescription(
        DataType.STRUCTURE, 2, (TypeDescription(DataType.LONG_UNSIGNED), TypeDescription(DataType.INTEGER))
    )
    items = (
        Data.structure(Data.long_unsigned(1), Data.integer(-1)),
        Data.structure(Data.long_unsigned(2), Data.integer(2)),
    )
    value = Data(DataType.COMPACT_ARRAY, CompactArray(desc, items))
    wire = encode_data(value)
    assert wire == H("13 02 02 12 0F 06 0001FF 000202".replace(" ", ""))
    assert Data.decode(wire) == value
    assert value.items == items


@pytest.mark.parametrize(
    ("wire", "error", "offset"),
    [
        ("", FramingError, 0),
        ("06000102", FramingError, 1),
        ("0205 1200", FramingError, 2),
        ("0203 1200011200", FramingError, 6),
        ("020212000108", UnsupportedError, 5),
        ("08", UnsupportedError, 0),
        ("0985", FramingError, 1),
        ("090301", FramingError, 2),
        ("0D1A", FramingError, 1),
        ("0A02FF00", FramingError, 2),
        ("19 07EA0504010B2715FF80", FramingError, 1),
        ("1A07EA0D0401", FramingError, 1),
        ("1300 00", UnsupportedError, 1),
    ],
)
def test_errors_name_the_offset(wire: str, error: type[ProtocolError], offset: int) -> None:
    with pytest.raises(error) as info:
        Data.decode(H(wire.replace(" ", "")))
    assert info.value.offset == offset
    assert info.value.layer == "dlms"


def test_trailing_bytes_are_an_error_but_decode_data_reports_the_end() -> None:
    with pytest.raises(FramingError, match="1 bytes after"):
        Data.decode(H("110100"))
    assert decode_data(H("110100"), 0) == (Data.unsigned(1), 2)


def test_nesting_limit() -> None:
    with pytest.raises(FramingError, match="deeper"):
        Data.decode(H("0101" * 40 + "00"))


def test_invalid_values_are_refused_when_made() -> None:
    with pytest.raises(ValueError):
        Data.unsigned(256)
    with pytest.raises(ValueError):
        Data(DataType.LONG, True)
    with pytest.raises(ValueError):
        Data.visible_string("\x01")
    with pytest.raises(ValueError):
        BitString(3, b"\xff")
    with pytest.raises(ValueError):
        CosemTime(24, 0, 0, 0)


# ---------------------------------------------------------------------------------------------- hypothesis


def _ints(tag: DataType, lo: int, hi: int) -> st.SearchStrategy[Data]:
    return st.integers(lo, hi).map(lambda v: Data(tag, v))


dates = st.builds(
    CosemDate,
    st.none() | st.integers(0, 0xFFFE),
    st.none() | st.integers(1, 12) | st.sampled_from([0xFD, 0xFE]),
    st.none() | st.integers(1, 31) | st.sampled_from([0xFD, 0xFE]),
    st.none() | st.integers(1, 7),
)
times = st.builds(
    CosemTime,
    st.none() | st.integers(0, 23),
    st.none() | st.integers(0, 59),
    st.none() | st.integers(0, 59),
    st.none() | st.integers(0, 99),
)
date_times = st.builds(
    CosemDateTime,
    dates,
    times,
    st.none() | st.integers(-720, 720),
    st.none() | st.integers(0, 0xFE).map(ClockStatus),
)
finite = st.floats(allow_nan=False)
scalars: st.SearchStrategy[Data] = st.one_of(
    st.just(Data.null()),
    st.booleans().map(Data.boolean),
    _ints(DataType.INTEGER, -128, 127),
    _ints(DataType.LONG, -(2**15), 2**15 - 1),
    _ints(DataType.DOUBLE_LONG, -(2**31), 2**31 - 1),
    _ints(DataType.LONG64, -(2**63), 2**63 - 1),
    _ints(DataType.UNSIGNED, 0, 255),
    _ints(DataType.LONG_UNSIGNED, 0, 2**16 - 1),
    _ints(DataType.DOUBLE_LONG_UNSIGNED, 0, 2**32 - 1),
    _ints(DataType.LONG64_UNSIGNED, 0, 2**64 - 1),
    _ints(DataType.ENUM, 0, 255),
    _ints(DataType.BCD, 0, 99),
    st.floats(width=32, allow_nan=False).map(lambda f: Data(DataType.FLOAT32, f)),
    finite.map(lambda f: Data(DataType.FLOAT64, f)),
    st.binary(max_size=300).map(Data.octet_string),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(Data.visible_string),
    st.text(max_size=20).map(Data.utf8_string),
    st.text("01", max_size=40).map(lambda b: Data(DataType.BIT_STRING, BitString.from_bits(b))),
    dates.map(lambda d: Data(DataType.DATE, d)),
    times.map(lambda t: Data(DataType.TIME, t)),
    date_times.map(lambda d: Data(DataType.DATE_TIME, d)),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5).map(Data.array)
        | st.lists(inner, max_size=5).map(lambda xs: Data.structure(*xs))
    ),
    max_leaves=30,
)


@settings(max_examples=200, deadline=None)
@given(values)
def test_round_trip(value: Data) -> None:
    assert Data.decode(encode_data(value)) == value


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 2**16 - 1), min_size=1, max_size=20))
def test_compact_array_round_trip(numbers: list[int]) -> None:
    desc = TypeDescription(DataType.LONG_UNSIGNED)
    value = Data(DataType.COMPACT_ARRAY, CompactArray(desc, tuple(Data.long_unsigned(n) for n in numbers)))
    assert Data.decode(encode_data(value)) == value


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_raises_only_our_errors(raw: bytes) -> None:
    try:
        value = Data.decode(raw)
    except ProtocolError:
        return
    again = encode_data(value)
    assert len(again) <= len(raw) + 8  # a long-form length may be re-encoded shorter, never much longer
