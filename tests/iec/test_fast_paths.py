"""The whole-text scanner of simple blocks and the per-address facts give what the general path gives.

``parse_data_block`` and ``block_values`` take ``_simple_pairs`` when every line is one data
set with one value; anything else goes through the token pattern line by line. These tests
run random blocks (valid, nearly valid, broken) both ways and demand the same data sets, the
same values and the same errors. ``to_readings`` / ``meter_id_of`` keep per-address facts;
they must give the readings the data sets' own properties give. ``readout_readings`` (frame bytes
straight to readings) must give what ``to_readings`` gives on ``DataMessage.decode`` of the same
frame (readings, names, meter id) or the same error, on generated readouts and on the vector.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterbridge.errors import ChecksumError, FramingError
from meterbridge.obis import lookup
from meterbridge.protocols.iec62056_21 import (
    DataMessage,
    datasets,
    meter_id_of,
    parse_data_block,
    reading_of,
    readout_readings,
    to_readings,
)
from meterbridge.protocols.iec62056_21.datasets import DataSet, block_values, obis_of
from meterbridge.protocols.iec62056_21.messages import bcc
from meterbridge.readings import Quality, Reading

SETTINGS = settings(max_examples=200, deadline=None)
NOW = datetime(2026, 5, 4, 11, 39, 21, tzinfo=UTC)

addresses = st.sampled_from(
    ["1.8.0", "1.8.1", "C.1.0", "0.0.0", "F.F", "32.7", "0-0:96.1.1", "1-0:1.8.0*01", "", "x y", "C.7.0"]
)
texts = st.sampled_from(
    [
        "042951.721",
        "00",
        "  120858",
        "        ",
        "",
        "241",
        "ER12",
        " ER07 ",
        "0008",
        "-1.5",
        "231128104500W",
        "a*b",
    ]
)
units = st.sampled_from([None, "kWh", "V", "", "A"])
pieces = st.sampled_from(["(", ")", "*", "\r\n", "\r", "\n", "x", "\u00e9", "()", "(1)(2)", "\r\n\r\n"])


@st.composite
def lines(draw: st.DrawFn) -> str:
    unit = draw(units)
    line = f"{draw(addresses)}({draw(texts)}{'' if unit is None else '*' + unit})"
    if draw(st.integers(0, 9)) == 0:  # now and then something the simple scanner must refuse
        at = draw(st.integers(0, len(line)))
        line = line[:at] + draw(pieces) + line[at:]
    return line


blocks = st.builds(
    lambda ls, tail: "\r\n".join(ls) + ("\r\n" if tail and ls else ""),
    st.lists(lines(), max_size=8),
    st.booleans(),
)


def _both(fn: object, text: str) -> tuple[object, object]:
    def run() -> object:
        try:
            return fn(text)  # type: ignore[operator]
        except FramingError as exc:
            return ("error", str(exc), exc.offset)

    fast = run()
    original = datasets._simple_pairs
    datasets._simple_pairs = lambda text: None  # type: ignore[assignment]
    try:
        general = run()
    finally:
        datasets._simple_pairs = original
    return fast, general


@SETTINGS
@given(blocks)
def test_parse_data_block_same_with_and_without_the_scanner(text: str) -> None:
    fast, general = _both(parse_data_block, text)
    assert fast == general


@SETTINGS
@given(blocks.filter(str.isascii))
def test_block_values_same_with_and_without_the_scanner(text: str) -> None:
    fast, general = _both(block_values, text)
    assert fast == general


def _reading_by_properties(s: DataSet, meter: str) -> Reading | None:
    """``reading_of`` as it was written before the per-address facts (the properties of DataSet)."""
    if not s.address:
        return None
    code = obis_of(s.address)
    parsed = s.parsed
    value, unit, stamp, quality = parsed[0], s.values[0].unit, NOW, Quality.OK
    if len(s.values) >= 2 and isinstance(value, datetime) and s.values[1].unit is not None:
        stamp, value, unit = value, parsed[1], s.values[1].unit
    if s.error is not None or (value is None and s.values[-1].error is not None):
        quality, value = Quality.METER_ERROR, None
    entry = lookup(code) if code is not None else None
    return Reading(
        meter, code if code is not None else s.address, value, unit or None, stamp, quality,
        entry.name if entry is not None else None,
    )  # fmt: skip


@SETTINGS
@given(st.lists(lines(), max_size=8))
def test_to_readings_same_as_the_data_set_properties(raw_lines: list[str]) -> None:
    sets = []
    for line in raw_lines:
        try:
            sets.extend(parse_data_block(line))
        except FramingError:
            continue
    flat = [s for line in sets for s in line] + [
        DataSet("0-1:24.2.1", (datasets.DataValue("231128104500W"), datasets.DataValue("12785.123", "m3"))),
        DataSet("1.8.0", (datasets.DataValue("ER12", "kWh"),)),
    ]
    meter = meter_id_of(flat, "ident")
    assert meter is not None
    readings = to_readings(flat, received_at=NOW, meter_id=meter)
    expected = [r for s in flat if (r := _reading_by_properties(s, meter)) is not None]
    assert readings == expected
    assert [r.name for r in readings] == [r.name for r in expected]


@pytest.mark.parametrize(
    ("block", "meter"),
    [
        ("0.0.0(111)\r\nC.1.0(222)\r\n", "222"),  # the serial number goes first, whatever the order
        ("0-0:96.1.1(333)\r\n0.0.0(111)\r\n", "111"),
        ("1-1:0.0.0(9)\r\n0-0:96.1.1(333)\r\n", "333"),  # channel B must be 0
        ("C.1.0(ER12)\r\n0.0.0(111)\r\n", "111"),  # an error is no id
        ("1.8.0(1*kWh)\r\n", "ident"),
    ],
)
def test_meter_id_rank(block: str, meter: str) -> None:
    sets = [s for line in parse_data_block(block) for s in line]
    assert meter_id_of(sets, "ident") == meter


@pytest.mark.parametrize(
    "text",
    [
        "a(1)x\r\n",  # text between ')' and CR LF
        "a(1)x",
        "a((1)\r\nb)\r\n",  # brackets counted right, placed wrong
        "a(1)\r\nb)(\r\n",
        "(1)\r\n",
        "a(1*k*W)\r\n",
        "a(1)\r\n\r\nb(2)\r\n",
        "a(1)(2)\r\n",
        "a(1)b(2)\r\n",
        "\r\n",
        "",
        "a(1)",
        "a(1*)\r\nb(2*kWh)",
        "1.8.0*01(5*kWh)\r\n",
    ],
)
def test_scanner_edge_cases(text: str) -> None:
    fast, general = _both(parse_data_block, text)
    assert fast == general
    fast, general = _both(block_values, text)
    assert fast == general


def _frame(block: str, end_mark: bool = True) -> bytes:
    body = (block + ("!\r\n" if end_mark else "")).encode("utf-8") + b"\x03"
    return b"\x02" + body + bytes((bcc(body),))


def _upper(code: object, text: str) -> str:
    return text.upper()


def _general(frame: bytes, **kwargs: object) -> object:
    try:
        message = DataMessage.decode(frame)
        if not message.readout or not message.final:
            return ("error", "FramingError")
        readings = to_readings(message.data_sets, received_at=NOW, **kwargs)  # type: ignore[arg-type]
        return readings, [r.name for r in readings]
    except (FramingError, ValueError) as exc:
        return ("error", type(exc).__name__)


def _direct(frame: bytes, **kwargs: object) -> object:
    try:
        readings = readout_readings(frame, received_at=NOW, **kwargs)  # type: ignore[arg-type]
        return readings, [r.name for r in readings]
    except (FramingError, ValueError) as exc:
        return ("error", type(exc).__name__)


series_lines = st.sampled_from(
    [
        "0-1:24.2.1(231128104500W)(12785.123*m3)",
        "0-1:24.2.1(231128104500W)(ER12)",
        "P.01(1)(2*kWh)",
        "1.8.1(1*kWh)1.8.2(2*kWh)",
        "(ER07)",
        "C.1.0(ER12)",
        "0.0.0(  4711 )",
        "0-0:96.1.1(abc)",
        "",
    ]
)


@SETTINGS
@given(
    st.lists(st.one_of(lines(), series_lines), max_size=10),
    st.booleans(),
    st.sampled_from([None, "ident"]),
    st.sampled_from([None, "given"]),
    st.booleans(),
)
def test_readout_readings_same_as_to_readings_on_the_message(
    raw_lines: list[str], end_mark: bool, identification: str | None, meter: str | None, hook: bool
) -> None:
    frame = _frame("".join(line + "\r\n" for line in raw_lines), end_mark)
    kwargs: dict[str, object] = {"identification": identification, "meter_id": meter}
    if hook:
        kwargs["text_hook"] = _upper
    assert _direct(frame, **kwargs) == _general(frame, **kwargs)


def test_readout_readings_on_the_vector_and_its_errors() -> None:
    import json
    from pathlib import Path

    vector = Path(__file__).parents[1] / "vectors" / "iec62056-21" / "lgz_e350_mode_c_readout.json"
    raw = bytes.fromhex(json.loads(vector.read_text())["telegram_hex"])
    frame = raw[raw.index(b"\x02") :]
    direct = _direct(frame, identification="LGZ4ZMF100AC.M26")
    assert direct == _general(frame, identification="LGZ4ZMF100AC.M26")
    assert isinstance(direct, tuple)
    readings: list[Reading] = direct[0]
    names: list[str | None] = direct[1]
    assert len(readings) == 22 and readings[0].meter_id == "13647123"
    general = [reading_of(s, "13647123", NOW) for s in DataMessage.decode(frame).data_sets]
    assert readings == general and names == [r.name for r in general if r is not None]
    broken = bytearray(frame)
    broken[20] ^= 0x01
    with pytest.raises(ChecksumError):
        readout_readings(bytes(broken), received_at=NOW)
    with pytest.raises(FramingError, match="ends with '!'"):
        readout_readings(_frame("1.8.0(1*kWh)\r\n", end_mark=False), received_at=NOW, meter_id="m")
    with pytest.raises(FramingError) as caught:
        readout_readings(_frame("1.8.0(1*kWh)\r\n2.8.0(1*k*Wh)\r\n"), received_at=NOW, meter_id="m")
    with pytest.raises(FramingError) as general_error:
        DataMessage.decode(_frame("1.8.0(1*kWh)\r\n2.8.0(1*k*Wh)\r\n"))
    assert (str(caught.value), caught.value.offset) == (str(general_error.value), general_error.value.offset)


def test_decode_readout_identification_kept_per_line_errors_every_time() -> None:
    from meterbridge.protocols.iec62056_21 import decode_readout

    readout = _frame("1.8.0(1*kWh)\r\n")
    first = decode_readout(b"/LGZ4ZMF100AC.M26\r\n" + readout)
    again = decode_readout(b"/LGZ4ZMF100AC.M26\r\n" + readout)
    assert first.identification == again.identification
    assert first.identification is not None and first.identification.text == "LGZ4ZMF100AC.M26"
    other = decode_readout(b"/ISk5MT174-0001\r\n" + readout)
    assert other.identification is not None and other.identification.text == "ISk5MT174-0001"
    for _ in range(2):  # a bad line is refused each time, never remembered
        with pytest.raises(FramingError, match="identification"):
            decode_readout(b"/LG\r\n" + readout)
