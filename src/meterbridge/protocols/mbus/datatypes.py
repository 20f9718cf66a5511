"""EN 13757-3 data types (annex A): BCD, integers, real32, text, date/time types F, G, I, J, K.

Every type has a ``decode_*`` (bytes in frame order -> Python value) and an ``encode_*``
(value -> bytes), so that the simulator can produce what the decoder reads. Invalid
date/time values (the IV bit, or a day/month of 0) decode to ``None``: a date that the meter
marks invalid never becomes a date.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Final

__all__ = [
    "DaylightSaving",
    "decode_bcd",
    "decode_int",
    "decode_real32",
    "decode_text",
    "decode_type_f",
    "decode_type_g",
    "decode_type_i",
    "decode_type_j",
    "decode_type_k",
    "encode_bcd",
    "encode_int",
    "encode_real32",
    "encode_text",
    "encode_type_f",
    "encode_type_g",
    "encode_type_i",
    "encode_type_j",
    "encode_type_k",
]

_REAL32: Final = struct.Struct("<f")
# byte -> two BCD digits (most significant first), or None when a nibble is A..F
_BCD_BYTE: Final[tuple[int | None, ...]] = tuple(
    (b >> 4) * 10 + (b & 0x0F) if (b >> 4) < 10 and (b & 0x0F) < 10 else None for b in range(256)
)
_HEX_BYTE: Final[tuple[str, ...]] = tuple(f"{b:02X}" for b in range(256))


def decode_int(data: bytes | memoryview, signed: bool = True) -> int:
    """Little-endian two's-complement integer of any length (types B and C)."""
    return int.from_bytes(data, "little", signed=signed)


def encode_int(value: int, length: int, signed: bool = True) -> bytes:
    return value.to_bytes(length, "little", signed=signed)


def decode_bcd(data: bytes | memoryview) -> int | str:
    """Packed BCD (type A), least significant byte first.

    A high nibble F in the most significant byte means negative (EN 13757-3 annex A).
    Digits A..F elsewhere are not a number: the digits are returned as a hex string
    (most significant first), which never turns into a value.
    """
    result = 0
    n = len(data)
    if not n:
        raise ValueError("BCD needs at least one byte")
    top = data[n - 1]
    negative = (top >> 4) == 0x0F
    for i in range(n - 1, -1, -1):
        b = data[i]
        if i == n - 1 and negative:
            low = b & 0x0F
            if low > 9:
                return "".join(_HEX_BYTE[data[j]] for j in range(n - 1, -1, -1))
            result = low
            continue
        pair = _BCD_BYTE[b]
        if pair is None:
            return "".join(_HEX_BYTE[data[j]] for j in range(n - 1, -1, -1))
        result = result * 100 + pair
    return -result if negative else result


def encode_bcd(value: int, length: int) -> bytes:
    """Packed BCD of ``length`` bytes; negative values set the top nibble to F."""
    negative = value < 0
    digits = str(-value if negative else value)
    width = length * 2 - (1 if negative else 0)
    if len(digits) > width:
        raise ValueError(f"{value} does not fit in {length} BCD bytes")
    text = ("F" if negative else "") + digits.rjust(width, "0")
    return bytes.fromhex(text)[::-1]


def decode_real32(data: bytes | memoryview) -> float:
    """IEEE 754 single precision, little endian (type H)."""
    value: float = _REAL32.unpack_from(data)[0]
    return value


def encode_real32(value: float) -> bytes:
    return _REAL32.pack(value)


def decode_text(data: bytes | memoryview) -> str:
    """ASCII text, last character first on the wire (EN 13757-3 6.3.3, LVAR 00..BF)."""
    return bytes(data)[::-1].decode("latin-1")


def encode_text(text: str) -> bytes:
    return text.encode("latin-1")[::-1]


def _year(low: int, high: int, hundred: int = 0) -> int:
    """Year of types F, G, I: 7 bits split over two bytes.

    With the hundred-year bits (types F and I, EN 13757-3:2013) the year is
    1900 + 100 * hundred + year; without them, 81..99 mean 1981..1999 and 0..80 mean
    2000..2080 (EN 13757-3:2004 annex A).
    """
    year = ((low & 0xE0) >> 5) | ((high & 0xF0) >> 1)
    if hundred:
        return 1900 + 100 * hundred + year
    return 1900 + year if year > 80 else 2000 + year


def decode_type_g(data: bytes | memoryview) -> date | None:
    """Type G, 16-bit date. ``None`` when day or month is 0 or out of range (unset date)."""
    day = data[0] & 0x1F
    month = data[1] & 0x0F
    try:
        return date(_year(data[0], data[1]), month, day)
    except ValueError:
        return None


def encode_type_g(value: date) -> bytes:
    if not 1981 <= value.year <= 2080:
        raise ValueError(f"type G holds years 1981..2080, got {value.year}")
    y = value.year % 100
    return bytes(((y & 0x07) << 5 | value.day, (y & 0x78) << 1 | value.month))


def decode_type_f(data: bytes | memoryview) -> datetime | None:
    """Type F, 32-bit date and time (minute resolution). ``None`` when IV (bit 7) is set."""
    if data[0] & 0x80:
        return None
    try:
        return datetime(
            _year(data[2], data[3], (data[1] >> 5) & 0x03),
            data[3] & 0x0F,
            data[2] & 0x1F,
            data[1] & 0x1F,
            data[0] & 0x3F,
        )
    except ValueError:
        return None


def encode_type_f(value: datetime, summer_time: bool = False) -> bytes:
    if not 1981 <= value.year <= 2080:
        raise ValueError(f"type F holds years 1981..2080, got {value.year}")
    y = value.year % 100
    return bytes(
        (
            value.minute,
            value.hour | (0x80 if summer_time else 0),
            (y & 0x07) << 5 | value.day,
            (y & 0x78) << 1 | value.month,
        )
    )


def decode_type_i(data: bytes | memoryview) -> datetime | None:
    """Type I, 48-bit date and time with seconds. ``None`` when IV (byte 1 bit 7) is set."""
    if data[1] & 0x80:
        return None
    try:
        return datetime(
            _year(data[3], data[4]),
            data[4] & 0x0F,
            data[3] & 0x1F,
            data[2] & 0x1F,
            data[1] & 0x3F,
            data[0] & 0x3F,
        )
    except ValueError:
        return None


def encode_type_i(value: datetime) -> bytes:
    if not 1981 <= value.year <= 2080:
        raise ValueError(f"type I holds years 1981..2080, got {value.year}")
    y = value.year % 100
    weekday = value.isoweekday()
    return bytes(
        (
            value.second,
            value.minute,
            value.hour | (weekday << 5),
            (y & 0x07) << 5 | value.day,
            (y & 0x78) << 1 | value.month,
            0,
        )
    )


def decode_type_j(data: bytes | memoryview) -> time | None:
    """Type J, 24-bit time of day."""
    try:
        return time(data[2] & 0x1F, data[1] & 0x3F, data[0] & 0x3F)
    except ValueError:
        return None


def encode_type_j(value: time) -> bytes:
    return bytes((value.second, value.minute, value.hour))


@dataclass(frozen=True, slots=True)
class DaylightSaving:
    """Type K: begin and end of daylight saving time and its deviation (hours)."""

    begin_hour: int
    begin_day: int
    begin_month: int
    end_day: int
    end_month: int
    deviation: int  # hours, -3..+3 (sign in bit 7 of the last byte)


def decode_type_k(data: bytes | memoryview) -> DaylightSaving:
    """Type K (32 bits): hour and day/month of the beginning, day/month of the end, deviation."""
    deviation = (data[3] >> 4) & 0x03
    if data[3] & 0x80:
        deviation = -deviation
    return DaylightSaving(
        begin_hour=data[0] & 0x1F,
        begin_day=data[1] & 0x1F,
        begin_month=data[2] & 0x0F,
        end_day=((data[1] >> 5) & 0x07) | ((data[0] >> 2) & 0x18),
        end_month=(data[2] >> 4) & 0x0F,
        deviation=deviation,
    )


def encode_type_k(value: DaylightSaving) -> bytes:
    if not -3 <= value.deviation <= 3:
        raise ValueError("daylight saving deviation must be -3..3 hours")
    return bytes(
        (
            (value.begin_hour & 0x1F) | ((value.end_day & 0x18) << 2),
            (value.begin_day & 0x1F) | ((value.end_day & 0x07) << 5),
            (value.begin_month & 0x0F) | ((value.end_month & 0x0F) << 4),
            (abs(value.deviation) << 4) | (0x80 if value.deviation < 0 else 0),
        )
    )
