"""A-XDR encoding of COSEM data (IEC 61334-6, DLMS UA Green Book 4.1.6).

Holds the typed value object ``Data`` (one COSEM ``Data`` CHOICE: a tag and its value),
the date and time values ``CosemDate``, ``CosemTime`` and ``CosemDateTime`` with every
field the wire can carry (``None`` for "not specified"), ``BitString``, the compact-array
type description ``TypeDescription`` and ``CompactArray``, the A-XDR length encoding,
and ``decode_data`` / ``encode_data``.

Decoding is table driven: one tuple indexed by the tag byte, built at import. Every
error is a ``FramingError`` (input ends early, wrong length) or an ``UnsupportedError``
(unknown tag) naming the byte offset in the buffer that was given.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from typing import Union

from meterbridge.errors import FramingError, UnsupportedError

__all__ = [
    "MAX_DEPTH",
    "BitString",
    "ClockStatus",
    "CompactArray",
    "CosemDate",
    "CosemDateTime",
    "CosemTime",
    "Data",
    "DataType",
    "DataValue",
    "TypeDescription",
    "decode_data",
    "decode_length",
    "decode_structure",
    "encode_data",
    "encode_length",
]

LAYER = "dlms"
MAX_DEPTH = 32
"""Deepest nesting of arrays and structures the decoder accepts."""


class DataType(enum.IntEnum):
    """The tags of the COSEM ``Data`` CHOICE (Blue Book 4.1.5)."""

    NULL_DATA = 0
    ARRAY = 1
    STRUCTURE = 2
    BOOLEAN = 3
    BIT_STRING = 4
    DOUBLE_LONG = 5
    DOUBLE_LONG_UNSIGNED = 6
    FLOATING_POINT = 7
    OCTET_STRING = 9
    VISIBLE_STRING = 10
    UTF8_STRING = 12
    BCD = 13
    INTEGER = 15
    LONG = 16
    UNSIGNED = 17
    LONG_UNSIGNED = 18
    COMPACT_ARRAY = 19
    LONG64 = 20
    LONG64_UNSIGNED = 21
    ENUM = 22
    FLOAT32 = 23
    FLOAT64 = 24
    DATE_TIME = 25
    DATE = 26
    TIME = 27
    DONT_CARE = 255


class ClockStatus(enum.IntFlag):
    """The clock status byte of a COSEM date-time (Blue Book 4.1.6.1)."""

    OK = 0
    INVALID_VALUE = 0x01
    DOUBTFUL_VALUE = 0x02
    DIFFERENT_CLOCK_BASE = 0x04
    INVALID_CLOCK_STATUS = 0x08
    DAYLIGHT_SAVING_ACTIVE = 0x80


# ---------------------------------------------------------------------------------------------------------------
# length encoding


def encode_length(n: int) -> bytes:
    """A-XDR length: one byte below 128, else 0x80|count followed by count big-endian bytes."""
    if n < 0:
        raise ValueError(f"length must not be negative, got {n}")
    if n < 0x80:
        return bytes((n,))
    size = (n.bit_length() + 7) // 8
    return bytes((0x80 | size,)) + n.to_bytes(size, "big")


def decode_length(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    """Return ``(length, next_offset)`` of the A-XDR length at ``pos``."""
    try:
        first = buf[pos]
    except IndexError:
        raise FramingError("input ends where a length was expected", offset=pos, layer=LAYER) from None
    if first < 0x80:
        return first, pos + 1
    size = first & 0x7F
    if size == 0 or size > 4:
        raise FramingError(f"length of {size} length bytes (expected 1 to 4)", offset=pos, layer=LAYER)
    end = pos + 1 + size
    if end > len(buf):
        raise FramingError(f"input ends inside a {size}-byte length", offset=pos, layer=LAYER)
    return int.from_bytes(buf[pos + 1 : end], "big"), end


# ---------------------------------------------------------------------------------------------------------------
# date and time values


def _field(value: int | None, unspecified: int) -> int:
    return unspecified if value is None else value


def _part(value: int | None, width: int) -> str:
    if value is None:
        return "*" * width
    if width == 2 and value > 99:
        return f"{value:02X}"  # 0xFD / 0xFE: daylight saving begin/end, last days of the month
    return f"{value:0{width}d}"


def _opt(raw: int, unspecified: int) -> int | None:
    return None if raw == unspecified else raw


@dataclass(frozen=True, slots=True)
class CosemDate:
    """A COSEM date (5 bytes). ``None`` is "not specified" (0xFFFF / 0xFF on the wire).

    ``month`` may also be 0xFD (daylight saving end) or 0xFE (begin); ``day`` 0xFD (second last)
    or 0xFE (last day of the month); ``day_of_week`` is 1 (Monday) to 7.
    """

    year: int | None = None
    month: int | None = None
    day: int | None = None
    day_of_week: int | None = None

    def __post_init__(self) -> None:
        if self.year is not None and not 0 <= self.year < 0xFFFF:
            raise ValueError(f"year {self.year} out of range 0..65534")
        if self.month is not None and not (1 <= self.month <= 12 or self.month in (0xFD, 0xFE)):
            raise ValueError(f"month {self.month} out of range")
        if self.day is not None and not (1 <= self.day <= 31 or self.day in (0xFD, 0xFE)):
            raise ValueError(f"day {self.day} out of range")
        if self.day_of_week is not None and not 1 <= self.day_of_week <= 7:
            raise ValueError(f"day of week {self.day_of_week} out of range 1..7")

    def encode(self) -> bytes:
        return _DATE.pack(
            _field(self.year, 0xFFFF),
            _field(self.month, 0xFF),
            _field(self.day, 0xFF),
            _field(self.day_of_week, 0xFF),
        )

    @classmethod
    def decode(cls, data: bytes | memoryview, offset: int = 0) -> CosemDate:
        if len(data) - offset < 5:
            raise FramingError("a date needs 5 bytes", offset=offset, layer=LAYER)
        y, m, d, w = _DATE.unpack_from(data, offset)
        try:
            return cls(_opt(y, 0xFFFF), _opt(m, 0xFF), _opt(d, 0xFF), _opt(w, 0xFF))
        except ValueError as exc:
            raise FramingError(f"invalid date: {exc}", offset=offset, layer=LAYER) from None

    @classmethod
    def from_date(cls, value: date) -> CosemDate:
        return cls(value.year, value.month, value.day, value.isoweekday())

    def __str__(self) -> str:
        """``YYYY-MM-DD`` with ``*`` for unspecified fields (special month/day values in hex)."""
        return f"{_part(self.year, 4)}-{_part(self.month, 2)}-{_part(self.day, 2)}"


@dataclass(frozen=True, slots=True)
class CosemTime:
    """A COSEM time (4 bytes): hour, minute, second, hundredths; ``None`` is "not specified" (0xFF)."""

    hour: int | None = None
    minute: int | None = None
    second: int | None = None
    hundredths: int | None = None

    def __post_init__(self) -> None:
        for name, top in (("hour", 23), ("minute", 59), ("second", 59), ("hundredths", 99)):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= top:
                raise ValueError(f"{name} {value} out of range 0..{top}")

    def encode(self) -> bytes:
        return bytes(
            (
                _field(self.hour, 0xFF),
                _field(self.minute, 0xFF),
                _field(self.second, 0xFF),
                _field(self.hundredths, 0xFF),
            )
        )

    @classmethod
    def decode(cls, data: bytes | memoryview, offset: int = 0) -> CosemTime:
        if len(data) - offset < 4:
            raise FramingError("a time needs 4 bytes", offset=offset, layer=LAYER)
        h, m, s, c = data[offset : offset + 4]
        try:
            return cls(_opt(h, 0xFF), _opt(m, 0xFF), _opt(s, 0xFF), _opt(c, 0xFF))
        except ValueError as exc:
            raise FramingError(f"invalid time: {exc}", offset=offset, layer=LAYER) from None

    @classmethod
    def from_time(cls, value: time) -> CosemTime:
        return cls(value.hour, value.minute, value.second, value.microsecond // 10000)

    def __str__(self) -> str:
        """``hh:mm:ss`` with ``*`` for unspecified fields."""
        return f"{_part(self.hour, 2)}:{_part(self.minute, 2)}:{_part(self.second, 2)}"


@dataclass(frozen=True, slots=True)
class CosemDateTime:
    """A COSEM date-time (12 bytes): date, time, deviation and clock status.

    ``deviation`` is the Blue Book's "minutes of local time to UTC" (-720..720): local time is
    UTC minus ``deviation`` minutes, so CET is -60. ``None`` means not specified (0x8000).
    ``clock_status`` is ``None`` when not specified (0xFF).
    """

    date: CosemDate
    time: CosemTime
    deviation: int | None = None
    clock_status: ClockStatus | None = None

    def __post_init__(self) -> None:
        if self.deviation is not None and not -720 <= self.deviation <= 720:
            raise ValueError(f"deviation {self.deviation} out of range -720..720")

    def encode(self) -> bytes:
        return (
            self.date.encode()
            + self.time.encode()
            + _DEVIATION.pack(
                -0x8000 if self.deviation is None else self.deviation,
                0xFF if self.clock_status is None else int(self.clock_status),
            )
        )

    @classmethod
    def decode(cls, data: bytes | memoryview, offset: int = 0) -> CosemDateTime:
        if len(data) - offset < 12:
            raise FramingError(
                f"a date-time needs 12 bytes, {len(data) - offset} left", offset=offset, layer=LAYER
            )
        y, mo, d, w, h, mi, sec, c, dev, status = _DATE_TIME.unpack_from(data, offset)
        if (
            (mo <= 12 or mo >= 0xFD)
            and mo
            and (d <= 31 or d >= 0xFD)
            and d
            and (1 <= w <= 7 or w == 0xFF)
            and (h <= 23 or h == 0xFF)
            and (mi <= 59 or mi == 0xFF)
            and (sec <= 59 or sec == 0xFF)
            and (c <= 99 or c == 0xFF)
            and (-720 <= dev <= 720 or dev == -0x8000)
        ):  # the usual case: build without the constructors' checks, they would pass
            date_ = _new(CosemDate)
            _setattr(date_, "year", None if y == 0xFFFF else y)
            _setattr(date_, "month", None if mo == 0xFF else mo)
            _setattr(date_, "day", None if d == 0xFF else d)
            _setattr(date_, "day_of_week", None if w == 0xFF else w)
            time_ = _new(CosemTime)
            _setattr(time_, "hour", None if h == 0xFF else h)
            _setattr(time_, "minute", None if mi == 0xFF else mi)
            _setattr(time_, "second", None if sec == 0xFF else sec)
            _setattr(time_, "hundredths", None if c == 0xFF else c)
            made = _new(cls)
            _setattr(made, "date", date_)
            _setattr(made, "time", time_)
            _setattr(made, "deviation", None if dev == -0x8000 else dev)
            _setattr(made, "clock_status", None if status == 0xFF else _CLOCK_STATUS[status])
            return made
        try:
            return cls(
                CosemDate.decode(data, offset),
                CosemTime.decode(data, offset + 5),
                None if dev == -0x8000 else dev,
                None if status == 0xFF else ClockStatus(status),
            )
        except ValueError as exc:
            raise FramingError(f"invalid date-time: {exc}", offset=offset, layer=LAYER) from None

    @property
    def is_complete(self) -> bool:
        """True when year, month, day, hour, minute and second are all specified and plain."""
        d, t = self.date, self.time
        return (
            d.year is not None
            and d.month is not None
            and d.month <= 12
            and d.day is not None
            and d.day <= 31
            and t.hour is not None
            and t.minute is not None
            and t.second is not None
        )

    def to_datetime(self, default_tz: tzinfo = UTC) -> datetime:
        """The instant as an aware ``datetime``; ``default_tz`` applies when the deviation is unspecified.

        Raises ``ValueError`` when a date or time field is unspecified or a wildcard.
        """
        if not self.is_complete:
            raise ValueError(f"date-time {self} has unspecified fields")
        d, t = self.date, self.time
        tz = default_tz if self.deviation is None else timezone(timedelta(minutes=-self.deviation))
        return datetime(
            d.year or 0,
            d.month or 0,
            d.day or 0,
            t.hour or 0,
            t.minute or 0,
            t.second or 0,
            (t.hundredths or 0) * 10000,
            tzinfo=tz,
        )

    @classmethod
    def from_datetime(
        cls, value: datetime, clock_status: ClockStatus | None = ClockStatus.OK
    ) -> CosemDateTime:
        """Build from a ``datetime``; an aware one carries its UTC offset as the deviation."""
        offset = value.utcoffset()
        deviation = None if offset is None else -int(offset.total_seconds() // 60)
        return cls(
            CosemDate.from_date(value.date()), CosemTime.from_time(value.time()), deviation, clock_status
        )

    def __str__(self) -> str:
        return f"{self.date}T{self.time}"


_DATE = struct.Struct(">HBBB")
_DEVIATION = struct.Struct(">hB")
_DATE_TIME = struct.Struct(">HBBBBBBBhB")
_CLOCK_STATUS = tuple(ClockStatus(i) for i in range(256))
_new = object.__new__
_setattr = object.__setattr__


# ---------------------------------------------------------------------------------------------------------------
# bit strings and compact arrays


@dataclass(frozen=True, slots=True)
class BitString:
    """A bit-string of ``length`` bits, most significant bit first; unused trailing bits are zero."""

    length: int
    data: bytes

    def __post_init__(self) -> None:
        if self.length < 0 or len(self.data) != (self.length + 7) // 8:
            raise ValueError(f"bit-string of {self.length} bits needs {(self.length + 7) // 8} bytes")
        spare = -self.length % 8
        if spare and self.data[-1] & ((1 << spare) - 1):
            raise ValueError("bit-string has non-zero unused bits")

    @classmethod
    def from_bits(cls, bits: str) -> BitString:
        """From a text of '0' and '1'."""
        padded = bits + "0" * (-len(bits) % 8)
        return cls(len(bits), int(padded, 2).to_bytes(len(padded) // 8, "big") if padded else b"")

    def __str__(self) -> str:
        if not self.length:
            return ""
        return format(int.from_bytes(self.data, "big"), f"0{len(self.data) * 8}b")[: self.length]

    def __getitem__(self, index: int) -> bool:
        if not 0 <= index < self.length:
            raise IndexError(index)
        return bool(self.data[index >> 3] & (0x80 >> (index & 7)))


@dataclass(frozen=True, slots=True)
class TypeDescription:
    """Type of a compact array's elements: a simple tag, an array of ``count`` elements, or a structure."""

    type: DataType
    count: int = 0
    elements: tuple[TypeDescription, ...] = ()

    def __post_init__(self) -> None:
        if self.type is DataType.ARRAY and len(self.elements) != 1:
            raise ValueError("array type description needs exactly one element type")
        if self.type not in (DataType.ARRAY, DataType.STRUCTURE) and self.elements:
            raise ValueError("only arrays and structures have element types")
        if self.type in (DataType.COMPACT_ARRAY, DataType.DONT_CARE):
            raise ValueError(f"{self.type.name} cannot describe a compact-array element")

    def encode(self) -> bytes:
        if self.type is DataType.ARRAY:
            return bytes((1,)) + self.count.to_bytes(2, "big") + self.elements[0].encode()
        if self.type is DataType.STRUCTURE:
            return (
                bytes((2,)) + encode_length(len(self.elements)) + b"".join(e.encode() for e in self.elements)
            )
        return bytes((self.type,))


@dataclass(frozen=True, slots=True)
class CompactArray:
    """A compact-array: one type description and elements encoded without their tags."""

    description: TypeDescription
    items: tuple[Data, ...]


# ---------------------------------------------------------------------------------------------------------------
# the Data value

DataValue = Union[  # noqa: UP007 - holds a forward reference to Data
    None,
    bool,
    int,
    float,
    bytes,
    str,
    BitString,
    CosemDate,
    CosemTime,
    CosemDateTime,
    CompactArray,
    tuple["Data", ...],
]

_INT_RANGES: dict[DataType, tuple[int, int]] = {
    DataType.DOUBLE_LONG: (-(2**31), 2**31 - 1),
    DataType.DOUBLE_LONG_UNSIGNED: (0, 2**32 - 1),
    DataType.INTEGER: (-128, 127),
    DataType.LONG: (-(2**15), 2**15 - 1),
    DataType.UNSIGNED: (0, 255),
    DataType.LONG_UNSIGNED: (0, 2**16 - 1),
    DataType.LONG64: (-(2**63), 2**63 - 1),
    DataType.LONG64_UNSIGNED: (0, 2**64 - 1),
    DataType.ENUM: (0, 255),
    DataType.BCD: (0, 99),
}
_PY_TYPES: dict[DataType, type | tuple[type, ...]] = {
    DataType.NULL_DATA: type(None),
    DataType.DONT_CARE: type(None),
    DataType.ARRAY: tuple,
    DataType.STRUCTURE: tuple,
    DataType.BOOLEAN: bool,
    DataType.BIT_STRING: BitString,
    DataType.FLOATING_POINT: float,
    DataType.FLOAT32: float,
    DataType.FLOAT64: float,
    DataType.OCTET_STRING: bytes,
    DataType.VISIBLE_STRING: str,
    DataType.UTF8_STRING: str,
    DataType.COMPACT_ARRAY: CompactArray,
    DataType.DATE_TIME: CosemDateTime,
    DataType.DATE: CosemDate,
    DataType.TIME: CosemTime,
}


@dataclass(frozen=True, slots=True)
class Data:
    """One COSEM ``Data`` value: its tag (``type``) and the Python value.

    ints for every integer type, ``enum`` and ``bcd`` (0..99); ``bytes`` for octet-string;
    ``str`` for visible- and utf8-string; ``float`` for the float types; a tuple of ``Data``
    for array and structure; ``None`` for null-data and dont-care.
    """

    type: DataType
    value: DataValue = None

    def __post_init__(self) -> None:
        bounds = _INT_RANGES.get(self.type)
        if bounds is not None:
            if (
                type(self.value) is not int
                and isinstance(self.value, int)
                and not isinstance(self.value, bool)
            ):
                object.__setattr__(self, "value", int(self.value))  # an IntEnum member becomes its int
            if type(self.value) is not int or not bounds[0] <= self.value <= bounds[1]:
                raise ValueError(
                    f"{self.type.name} needs an int in {bounds[0]}..{bounds[1]}, got {self.value!r}"
                )
            return
        expected = _PY_TYPES[self.type]
        if not isinstance(self.value, expected) or (expected is float and isinstance(self.value, bool)):
            raise ValueError(f"{self.type.name} cannot hold {type(self.value).__name__}")
        if self.type is DataType.VISIBLE_STRING and not all(0x20 <= ord(c) < 0x7F for c in str(self.value)):
            raise ValueError("visible-string holds only printable ASCII")
        if isinstance(self.value, tuple) and not all(isinstance(v, Data) for v in self.value):
            raise ValueError(f"{self.type.name} holds Data items")

    # constructors, named after the Blue Book's types
    @classmethod
    def null(cls) -> Data:
        return cls(DataType.NULL_DATA)

    @classmethod
    def array(cls, items: Iterable[Data]) -> Data:
        return cls(DataType.ARRAY, tuple(items))

    @classmethod
    def structure(cls, *items: Data) -> Data:
        return cls(DataType.STRUCTURE, items)

    @classmethod
    def boolean(cls, value: bool) -> Data:
        return cls(DataType.BOOLEAN, value)

    @classmethod
    def octet_string(cls, value: bytes) -> Data:
        return cls(DataType.OCTET_STRING, bytes(value))

    @classmethod
    def visible_string(cls, value: str) -> Data:
        return cls(DataType.VISIBLE_STRING, value)

    @classmethod
    def utf8_string(cls, value: str) -> Data:
        return cls(DataType.UTF8_STRING, value)

    @classmethod
    def integer(cls, value: int) -> Data:
        return cls(DataType.INTEGER, value)

    @classmethod
    def long(cls, value: int) -> Data:
        return cls(DataType.LONG, value)

    @classmethod
    def double_long(cls, value: int) -> Data:
        return cls(DataType.DOUBLE_LONG, value)

    @classmethod
    def long64(cls, value: int) -> Data:
        return cls(DataType.LONG64, value)

    @classmethod
    def unsigned(cls, value: int) -> Data:
        return cls(DataType.UNSIGNED, value)

    @classmethod
    def long_unsigned(cls, value: int) -> Data:
        return cls(DataType.LONG_UNSIGNED, value)

    @classmethod
    def double_long_unsigned(cls, value: int) -> Data:
        return cls(DataType.DOUBLE_LONG_UNSIGNED, value)

    @classmethod
    def long64_unsigned(cls, value: int) -> Data:
        return cls(DataType.LONG64_UNSIGNED, value)

    @classmethod
    def enum(cls, value: int) -> Data:
        return cls(DataType.ENUM, value)

    @classmethod
    def date_time(cls, value: CosemDateTime | datetime) -> Data:
        if isinstance(value, datetime):
            value = CosemDateTime.from_datetime(value)
        return cls(DataType.DATE_TIME, value)

    def encode(self) -> bytes:
        return encode_data(self)

    @classmethod
    def decode(cls, data: bytes | memoryview) -> Data:
        """Decode exactly one value that fills ``data``."""
        value, end = decode_data(data, 0)
        if end != len(data):
            raise FramingError(f"{len(data) - end} bytes after the value", offset=end, layer=LAYER)
        return value

    @property
    def items(self) -> tuple[Data, ...]:
        """The elements of an array, structure or compact array."""
        if isinstance(self.value, tuple):
            return self.value
        if isinstance(self.value, CompactArray):
            return self.value.items
        raise TypeError(f"{self.type.name} has no items")


# ---------------------------------------------------------------------------------------------------------------
# decoding: one function per tag, in a tuple indexed by the tag byte

_Decoder = Callable[[bytes | memoryview, int, int], tuple[Data, int]]
_new_data = Data.__new__
_set_type = vars(Data)["type"].__set__  # the slot descriptors: stores without the frozen __setattr__
_set_value = vars(Data)["value"].__set__


def _made(tag: DataType, value: DataValue) -> Data:
    """A ``Data`` the decoder built from checked wire bytes (skips the constructor's checks)."""
    d = _new_data(Data)
    _set_type(d, tag)
    _set_value(d, value)
    return d


_U16 = struct.Struct(">H")


def _need(buf: bytes | memoryview, pos: int, n: int, what: str) -> None:
    if pos + n > len(buf):
        raise FramingError(
            f"input ends inside {what}: {n} bytes needed, {len(buf) - pos} left", offset=pos, layer=LAYER
        )


def _make_fixed(tag: DataType, fmt: str) -> _Decoder:
    st = struct.Struct(fmt)
    size = st.size
    unpack = st.unpack_from
    what = tag.name.lower().replace("_", "-")

    def dec(buf: bytes | memoryview, pos: int, depth: int) -> tuple[Data, int]:
        if pos + size > len(buf):
            _need(buf, pos, size, what)
        d = _new_data(Data)
        _set_type(d, tag)
        _set_value(d, unpack(buf, pos)[0])
        return d, pos + size

    return dec


def _dec_null(buf: bytes | memoryview, pos: int, depth: int) -> tuple[Data, int]:
    return _NULL, pos


def _dec_dont_care(buf: bytes | memoryview, pos: int, depth: int) -> tuple[Data, int]:
    return _DONT_CARE, pos


def _dec_boolean(buf: bytes | memoryview, pos: int, depth: int) -> tuple[Data, int]:
    _need(buf, pos, 1, "boolean")
    return (_TRUE if buf[pos] else _FALSE), pos + 1


def _dec_bcd(buf: bytes | memoryview, pos: int, depth: int) -> tuple[Data, int]:
    _need(buf, pos, 1, "bcd")
    b = buf[pos]
    if b >> 4 > 9 or b & 0x0F > 9:
        raise FramingError(f"bcd byte {b:02X} has a nibble above 9", offset=pos, layer=LAYER)
    return _made(DataType.BCD, (b >> 4) * 10 + (b & 0x0F)), pos + 1


def _dec_sequence(tag: DataType) -> _Decoder:
    what = "array" if tag is DataType.ARRAY else "structure"

    def dec(buf: bytes | memoryview, pos: int, depth: int) -> tuple[Data, int]:
        if depth >= MAX_DEPTH:
            raise FramingError(f"{what} nested deeper than {MAX_DEPTH}", offset=pos, layer=LAYER)
        count, pos = decode_length(buf, pos)
        if count > len(buf) - pos:  # every element needs at least its tag byte
            raise FramingError(
                f"{what} of {count} elements cannot fit in {len(buf) - pos} bytes", offset=pos, layer=LAYER
            )
        items: list[Data] = []
        append = items.append
        table = _DECODERS
        end = len(buf)
        for _ in range(count):
            if pos >= end:
                raise FramingError(f"input ends inside {what}", offset=pos, layer=LAYER)
            fn = table[buf[pos]]
            if fn is None:
                _unknown(buf, pos)
            item, pos = fn(buf, pos + 1, depth + 1)  # type: ignore[misc]
            append(item)
        return _made(tag, tuple(items)), pos

    return dec


def _make_string(tag: DataType) -> _Decoder:
    what = tag.name.lower().replace("_", "-")
    octets = tag is DataType.OCTET_STRING

    def dec(buf: bytes | memoryview, pos: int, depth: int) -> tuple[Data, int]:
        if pos < len(buf) and buf[pos] < 0x80:  # a one-byte length, the usual case
            end = pos + 1 + buf[pos]
            pos += 1
            if end > len(buf):
                _need(buf, pos, end - pos, what)
        else:
            n, pos = decode_length(buf, pos)
            end = pos + n
            if end > len(buf):
                _need(buf, pos, n, what)
        raw = bytes(buf[pos:end])
        if octets:
            d = _new_data(Data)
            _set_type(d, tag)
            _set_value(d, raw)
            return d, end
        try:
            text = raw.decode("ascii" if tag is DataType.VISIBLE_STRING else "utf-8")
            return Data(tag, text), end
        except ValueError:
            raise FramingError(
                f"{what} holds bytes that are not valid text", offset=pos, layer=LAYER
            ) from None

    return dec


def _dec_bit_string(buf: bytes | memoryview, pos: int, depth: int) -> tuple[Data, int]:
    bits, pos = decode_length(buf, pos)
    n = (bits + 7) // 8
    _need(buf, pos, n, "bit-string")
    try:
        return Data(DataType.BIT_STRING, BitString(bits, bytes(buf[pos : pos + n]))), pos + n
    except ValueError as exc:
        raise FramingError(str(exc), offset=pos, layer=LAYER) from None


def _dec_date_time(buf: bytes | memoryview, pos: int, depth: int) -> tuple[Data, int]:
    return _made(DataType.DATE_TIME, CosemDateTime.decode(buf, pos)), pos + 12


def _dec_date(buf: bytes | memoryview, pos: int, depth: int) -> tuple[Data, int]:
    return _made(DataType.DATE, CosemDate.decode(buf, pos)), pos + 5


def _dec_time(buf: bytes | memoryview, pos: int, depth: int) -> tuple[Data, int]:
    return _made(DataType.TIME, CosemTime.decode(buf, pos)), pos + 4


def _decode_description(buf: bytes | memoryview, pos: int, depth: int) -> tuple[TypeDescription, int]:
    if depth >= MAX_DEPTH:
        raise FramingError(f"type description nested deeper than {MAX_DEPTH}", offset=pos, layer=LAYER)
    _need(buf, pos, 1, "type description")
    tag = buf[pos]
    if tag == DataType.ARRAY:
        _need(buf, pos + 1, 2, "type description")
        count = _U16.unpack_from(buf, pos + 1)[0]
        element, end = _decode_description(buf, pos + 3, depth + 1)
        return TypeDescription(DataType.ARRAY, count, (element,)), end
    if tag == DataType.STRUCTURE:
        count, p = decode_length(buf, pos + 1)
        if count > len(buf) - p:
            raise FramingError(f"structure description of {count} elements", offset=pos, layer=LAYER)
        elements = []
        for _ in range(count):
            element, p = _decode_description(buf, p, depth + 1)
            elements.append(element)
        return TypeDescription(DataType.STRUCTURE, count, tuple(elements)), p
    if _DECODERS[tag] is None or tag in (DataType.COMPACT_ARRAY, DataType.DONT_CARE):
        raise UnsupportedError(f"type {tag} cannot describe a compact-array element", offset=pos, layer=LAYER)
    return TypeDescription(DataType(tag)), pos + 1


def _decode_described(
    buf: bytes | memoryview, pos: int, desc: TypeDescription, depth: int
) -> tuple[Data, int]:
    if desc.type is DataType.STRUCTURE:
        items = []
        for element in desc.elements:
            item, pos = _decode_described(buf, pos, element, depth + 1)
            items.append(item)
        return _made(DataType.STRUCTURE, tuple(items)), pos
    if desc.type is DataType.ARRAY:
        items = []
        for _ in range(desc.count):
            item, pos = _decode_described(buf, pos, desc.elements[0], depth + 1)
            items.append(item)
        return _made(DataType.ARRAY, tuple(items)), pos
    fn = _DECODERS[desc.type]
    assert fn is not None
    return fn(buf, pos, depth + 1)


def _min_size(desc: TypeDescription) -> int:
    if desc.type is DataType.ARRAY:
        return desc.count * _min_size(desc.elements[0])
    if desc.type is DataType.STRUCTURE:
        return sum(_min_size(e) for e in desc.elements)
    st = _FIXED_FORMATS.get(desc.type)
    if st is not None:
        return st.size - 1
    return _MIN_SIZES.get(desc.type, 1)


def _dec_compact_array(buf: bytes | memoryview, pos: int, depth: int) -> tuple[Data, int]:
    start = pos
    desc, pos = _decode_description(buf, pos, depth)
    if _min_size(desc) == 0:
        raise UnsupportedError("compact-array elements of zero size", offset=start, layer=LAYER)
    n, pos = decode_length(buf, pos)
    end = pos + n
    _need(buf, pos, n, "compact-array contents")
    contents = buf[:end]
    items = []
    while pos < end:
        item, pos = _decode_described(contents, pos, desc, depth)
        items.append(item)
    return Data(DataType.COMPACT_ARRAY, CompactArray(desc, tuple(items))), end


def _unknown(buf: bytes | memoryview, pos: int) -> None:
    raise UnsupportedError(f"unknown A-XDR data tag {buf[pos]} (0x{buf[pos]:02X})", offset=pos, layer=LAYER)


def _build_decoders() -> tuple[_Decoder | None, ...]:
    table: list[_Decoder | None] = [None] * 256
    table[DataType.NULL_DATA] = _dec_null
    table[DataType.DONT_CARE] = _dec_dont_care
    table[DataType.ARRAY] = _dec_sequence(DataType.ARRAY)
    table[DataType.STRUCTURE] = _dec_sequence(DataType.STRUCTURE)
    table[DataType.BOOLEAN] = _dec_boolean
    table[DataType.BIT_STRING] = _dec_bit_string
    table[DataType.BCD] = _dec_bcd
    for tag, fmt in (
        (DataType.DOUBLE_LONG, ">i"),
        (DataType.DOUBLE_LONG_UNSIGNED, ">I"),
        (DataType.FLOATING_POINT, ">f"),
        (DataType.INTEGER, ">b"),
        (DataType.LONG, ">h"),
        (DataType.UNSIGNED, ">B"),
        (DataType.LONG_UNSIGNED, ">H"),
        (DataType.LONG64, ">q"),
        (DataType.LONG64_UNSIGNED, ">Q"),
        (DataType.ENUM, ">B"),
        (DataType.FLOAT32, ">f"),
        (DataType.FLOAT64, ">d"),
    ):
        table[tag] = _make_fixed(tag, fmt)
    for tag in (DataType.OCTET_STRING, DataType.VISIBLE_STRING, DataType.UTF8_STRING):
        table[tag] = _make_string(tag)
    table[DataType.COMPACT_ARRAY] = _dec_compact_array
    table[DataType.DATE_TIME] = _dec_date_time
    table[DataType.DATE] = _dec_date
    table[DataType.TIME] = _dec_time
    return tuple(table)


_NULL = Data(DataType.NULL_DATA)
_DONT_CARE = Data(DataType.DONT_CARE)
_TRUE = Data(DataType.BOOLEAN, True)
_FALSE = Data(DataType.BOOLEAN, False)
_DECODERS = _build_decoders()
_INT_FORMATS = {
    DataType.DOUBLE_LONG: ">i",
    DataType.DOUBLE_LONG_UNSIGNED: ">I",
    DataType.INTEGER: ">b",
    DataType.LONG: ">h",
    DataType.UNSIGNED: ">B",
    DataType.LONG_UNSIGNED: ">H",
    DataType.LONG64: ">q",
    DataType.LONG64_UNSIGNED: ">Q",
    DataType.ENUM: ">B",
}
# (unpack, size, tag) of the integer tags by tag byte, as their table decoders read them (for inline use)
_FIXED_INLINE: tuple[
    tuple[Callable[[bytes | memoryview, int], tuple[int, ...]], int, DataType] | None, ...
] = tuple(
    (
        struct.Struct(_INT_FORMATS[DataType(tag)]).unpack_from,
        struct.calcsize(_INT_FORMATS[DataType(tag)]),
        DataType(tag),
    )
    if tag in _INT_FORMATS
    else None
    for tag in range(256)
)


def decode_structure(
    buf: bytes | memoryview, pos: int, count: int, head: tuple[Data, ...] = ()
) -> tuple[Data, int]:
    """A top-level structure of ``count`` elements from its first element on (after tag and length).

    The first ``len(head)`` elements are given already decoded (a push decoder does not decode
    again the object list it has seen); the others are read from ``pos`` on, exactly as
    ``decode_data`` reads them inside the structure. Returns the structure and the offset after it.
    """
    total, count = count, count - len(head)
    if count > len(buf) - pos:  # every element left needs at least its tag byte
        raise FramingError(
            f"structure of {total} elements cannot fit in {len(buf) - pos} bytes", offset=pos, layer=LAYER
        )
    items = list(head)
    append = items.append
    table = _DECODERS
    fixed = _FIXED_INLINE
    new, set_type, set_value = _new_data, _set_type, _set_value
    end = len(buf)
    for _ in range(count):
        if pos >= end:
            raise FramingError("input ends inside structure", offset=pos, layer=LAYER)
        tag = buf[pos]
        plain = fixed[tag]
        if plain is not None and pos + plain[1] < end:  # a whole fixed-size integer: read it here
            unpack, size, tag_type = plain
            item = new(Data)
            set_type(item, tag_type)
            set_value(item, unpack(buf, pos + 1)[0])
            pos += 1 + size
        else:
            fn = table[tag]
            if fn is None:
                _unknown(buf, pos)
            item, pos = fn(buf, pos + 1, 1)  # type: ignore[misc]
        append(item)
    return _made(DataType.STRUCTURE, tuple(items)), pos


def decode_data(buf: bytes | memoryview, offset: int = 0) -> tuple[Data, int]:
    """Decode one tagged A-XDR value at ``offset``; return it and the offset after it."""
    if offset >= len(buf):
        raise FramingError("input ends where a data tag was expected", offset=offset, layer=LAYER)
    fn = _DECODERS[buf[offset]]
    if fn is None:
        _unknown(buf, offset)
    return fn(buf, offset + 1, 0)  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------------------------
# encoding

_MIN_SIZES = {DataType.NULL_DATA: 0, DataType.DATE_TIME: 12, DataType.DATE: 5, DataType.TIME: 4}
_FIXED_FORMATS: dict[DataType, struct.Struct] = {
    DataType.DOUBLE_LONG: struct.Struct(">Bi"),
    DataType.DOUBLE_LONG_UNSIGNED: struct.Struct(">BI"),
    DataType.FLOATING_POINT: struct.Struct(">Bf"),
    DataType.INTEGER: struct.Struct(">Bb"),
    DataType.LONG: struct.Struct(">Bh"),
    DataType.UNSIGNED: struct.Struct(">BB"),
    DataType.LONG_UNSIGNED: struct.Struct(">BH"),
    DataType.LONG64: struct.Struct(">Bq"),
    DataType.LONG64_UNSIGNED: struct.Struct(">BQ"),
    DataType.ENUM: struct.Struct(">BB"),
    DataType.FLOAT32: struct.Struct(">Bf"),
    DataType.FLOAT64: struct.Struct(">Bd"),
}


def _encode_untagged(value: Data, out: bytearray, desc: TypeDescription | None = None) -> None:
    t = value.type
    v = value.value
    st = _FIXED_FORMATS.get(t)
    if st is not None:
        out += st.pack(t, v)[1:]
    elif t is DataType.NULL_DATA or t is DataType.DONT_CARE:
        pass
    elif t is DataType.BOOLEAN:
        out.append(0xFF if v else 0x00)
    elif t is DataType.BCD:
        assert isinstance(v, int)
        out.append((v // 10) << 4 | v % 10)
    elif isinstance(v, bytes):
        out += encode_length(len(v))
        out += v
    elif isinstance(v, str):
        raw = v.encode("ascii" if t is DataType.VISIBLE_STRING else "utf-8")
        out += encode_length(len(raw))
        out += raw
    elif isinstance(v, BitString):
        out += encode_length(v.length)
        out += v.data
    elif isinstance(v, CosemDateTime | CosemDate | CosemTime):
        out += v.encode()
    elif isinstance(v, tuple):
        if desc is None:
            out += encode_length(len(v))
            for item in v:
                _encode_tagged(item, out)
        else:
            sub = desc.elements
            for i, item in enumerate(v):
                _encode_untagged(item, out, sub[0] if t is DataType.ARRAY else sub[i])
    elif isinstance(v, CompactArray):
        out += v.description.encode()
        body = bytearray()
        for item in v.items:
            _check_described(item, v.description)
            _encode_untagged(item, body, v.description)
        out += encode_length(len(body))
        out += body
    else:  # pragma: no cover - Data.__post_init__ rules this out
        raise TypeError(f"cannot encode {t.name}")


def _check_described(item: Data, desc: TypeDescription) -> None:
    if item.type is not desc.type:
        raise ValueError(f"compact-array element is {item.type.name}, description says {desc.type.name}")
    if desc.type is DataType.ARRAY and len(item.items) != desc.count:
        raise ValueError(f"compact-array element has {len(item.items)} items, description says {desc.count}")
    if desc.type is DataType.STRUCTURE and len(item.items) != len(desc.elements):
        raise ValueError("compact-array structure does not match its description")
    if desc.type in (DataType.ARRAY, DataType.STRUCTURE):
        for i, sub in enumerate(item.items):
            _check_described(sub, desc.elements[0] if desc.type is DataType.ARRAY else desc.elements[i])


def _encode_tagged(value: Data, out: bytearray) -> None:
    out.append(value.type)
    _encode_untagged(value, out)


def encode_data(value: Data) -> bytes:
    """Encode one value with its tag."""
    out = bytearray()
    _encode_tagged(value, out)
    return bytes(out)
