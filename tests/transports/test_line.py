"""Line model numbers: bits per character, character and transmit times."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterbridge.transports import IEC_SIGN_ON, MBUS_2400, LineSettings, Parity


def test_mbus_2400_8e1_is_11_bits_and_4583_us_per_char() -> None:
    assert MBUS_2400.bits_per_char == 11
    assert MBUS_2400.char_time == pytest.approx(0.004583, abs=1e-6)
    assert MBUS_2400.transmit_time(5) == pytest.approx(5 * 11 / 2400)


def test_iec_sign_on_is_300_7e1() -> None:
    assert (IEC_SIGN_ON.baud, IEC_SIGN_ON.bytesize, IEC_SIGN_ON.parity, IEC_SIGN_ON.stopbits) == (
        300,
        7,
        Parity.EVEN,
        1,
    )
    assert IEC_SIGN_ON.bits_per_char == 10
    assert IEC_SIGN_ON.char_time == pytest.approx(1 / 30)
    assert IEC_SIGN_ON.data_mask == 0x7F


def test_mbus_reply_window_in_bit_times() -> None:
    # EN 13757-2: reply within 330 bit times + 50 ms; at 2400 baud about 188 ms
    assert MBUS_2400.bits(330) + 0.050 == pytest.approx(0.1875)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2400 8E1", LineSettings(2400, 8, Parity.EVEN, 1)),
        ("300/7E1", LineSettings(300, 7, Parity.EVEN, 1)),
        ("9600,8n1", LineSettings(9600)),
        ("19200-8O2", LineSettings(19200, 8, Parity.ODD, 2)),
        ("1200 7E1.5", LineSettings(1200, 7, Parity.EVEN, 1.5)),
    ],
)
def test_parse(text: str, expected: LineSettings) -> None:
    assert LineSettings.parse(text) == expected


@pytest.mark.parametrize("text", ["8E1", "2400 9E1", "2400 8X1", "fast", "2400 8E3", ""])
def test_parse_rejects_with_the_reason(text: str) -> None:
    with pytest.raises(ValueError, match="line settings"):
        LineSettings.parse(text)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"baud": 0}, "baud"),
        ({"baud": 2400, "bytesize": 9}, "byte size"),
        ({"baud": 2400, "parity": "X"}, "parity"),
        ({"baud": 2400, "stopbits": 3}, "stop bits"),
    ],
)
def test_invalid_settings_name_the_field(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        LineSettings(**kwargs)  # type: ignore[arg-type]


def test_parity_letters_are_pyserials() -> None:
    import serial

    assert {p.value for p in Parity} == {
        serial.PARITY_NONE,
        serial.PARITY_EVEN,
        serial.PARITY_ODD,
        serial.PARITY_MARK,
        serial.PARITY_SPACE,
    }
    assert LineSettings(2400, 8, "E").parity is Parity.EVEN  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(
    baud=st.sampled_from([300, 1200, 2400, 9600, 115200]),
    bytesize=st.sampled_from([5, 6, 7, 8]),
    parity=st.sampled_from(list(Parity)),
    stopbits=st.sampled_from([1, 1.5, 2]),
    n=st.integers(0, 1000),
)
def test_str_parse_round_trip_and_timing(
    baud: int, bytesize: int, parity: Parity, stopbits: float, n: int
) -> None:
    line = LineSettings(baud, bytesize, parity, stopbits)
    assert LineSettings.parse(str(line)) == line
    assert line.transmit_time(n) == pytest.approx(n * line.bits_per_char / baud)
    assert line.same_framing(line)
    assert not line.same_framing(line.with_baud(baud * 2))
