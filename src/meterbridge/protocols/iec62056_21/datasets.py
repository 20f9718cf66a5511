"""Data sets and data lines of IEC 62056-21, shared with DSMR/P1 telegrams.

A data line holds one or more data sets; a data set is an address followed by one
or more bracketed values, each with an optional unit::

    1.8.0(061561.289*kWh)            one value with unit
    C.1.0(13647123)                  no unit
    C.1.1(        )                  value of spaces (kept as sent)
    0.2.0()                          empty value
    1.8.1(1*kWh)1.8.2(2*kWh)         two data sets on one line
    0-1:24.2.1(231128104500W)(12785.123*m3)   a series (load profile / DSMR M-Bus style)
    (ER12)                           an error message, with or without address

``parse_data_block`` reads CR LF separated lines in one pass of one compiled
pattern (no per-line copies, offsets kept for errors). ``DataValue.value`` turns
the text into an exact Python value: ``int`` or ``Decimal`` for numbers, a
timezone-aware ``datetime`` for DSMR timestamps (``YYMMDDhhmmssW|S``), ``str``
for identifiers and everything else. Values are never floats.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Final

from meterbridge.errors import FramingError
from meterbridge.obis import ObisCode

__all__ = [
    "MAX_VALUE_LENGTH",
    "DataLine",
    "DataSet",
    "DataValue",
    "ParsedValue",
    "block_values",
    "encode_data_block",
    "encode_data_line",
    "obis_of",
    "parse_data_block",
    "parse_data_line",
    "parse_dsmr_timestamp",
]

LAYER: Final = "iec62056-21"
MAX_VALUE_LENGTH: Final = 2048  # DSMR text messages (0-0:96.13.0) carry up to 1024 bytes as hex

ParsedValue = int | Decimal | datetime | str | None

# One token: a data set start ``address(value*unit)`` or a continuation ``(value)``, or a line end.
# The unit group keeps its '*' so that "no unit" ('') and "empty unit" ('*') stay apart.
_TOKEN_TEXT: Final = r"([^()\r\n]*)\(([^()\r\n*]*)(\*[^()\r\n*]*)?\)|(\r\n)"
_TOKEN: Final = re.compile(_TOKEN_TEXT)
_BLOCK: Final = re.compile(r"(?:[^()\r\n]*\([^()\r\n*]*(?:\*[^()\r\n*]*)?\)|\r\n)*")
# The usual block: every line one data set with one value, CR LF after each (the last may lack it).
# Deleting every character but ( ) CR must leave "()\r" once per line: see ``_simple_pairs``.
_KEEP_SHAPE: Final = {c: None for c in range(128) if chr(c) not in "()\r"}
_NUMBER: Final = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")
_FORBIDDEN_IN_VALUE: Final = re.compile(r"[()*\r\n\x80-\U0010ffff]")
_ERROR: Final = re.compile(r"ER\d{2,3}")
_DSMR_TIME: Final = re.compile(r"(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)([SW])")
_ZONES: Final = {"W": timezone(timedelta(hours=1)), "S": timezone(timedelta(hours=2))}
_ADDRESS_CHARS: Final = frozenset("0123456789.:-*&CFLPcflp")
_IDENTIFIER_C: Final = frozenset((0, 96, 97, 98, 99))

# address text -> ObisCode or None; meters repeat the same few dozen addresses forever.
_OBIS_CACHE: dict[str, ObisCode | None] = {}
_OBIS_CACHE_LIMIT: Final = 4096


def obis_of(address: str) -> ObisCode | None:
    """The OBIS code an address names, or ``None`` for manufacturer-specific addresses."""
    try:
        return _OBIS_CACHE[address]
    except KeyError:
        pass
    code: ObisCode | None = None
    if address and set(address) <= _ADDRESS_CHARS:
        try:
            code = ObisCode.parse(address)
        except ValueError:
            code = None
    if len(_OBIS_CACHE) < _OBIS_CACHE_LIMIT:
        _OBIS_CACHE[address] = code
    return code


def parse_dsmr_timestamp(text: str) -> datetime | None:
    """``YYMMDDhhmmssW`` (winter, UTC+1) or ``...S`` (summer, UTC+2) as an aware datetime, else ``None``."""
    m = _DSMR_TIME.fullmatch(text)
    if m is None:
        return None
    yy, mo, dd, hh, mi, ss = (int(g) for g in m.groups()[:6])
    try:
        return datetime(2000 + yy, mo, dd, hh, mi, ss, tzinfo=_ZONES[m[7]])
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class DataValue:
    """One bracketed value: the text exactly as sent and the unit after ``*`` (``None`` if absent)."""

    text: str
    unit: str | None = None

    def __post_init__(self) -> None:
        for part in (self.text, self.unit or ""):
            if len(part) > MAX_VALUE_LENGTH or _FORBIDDEN_IN_VALUE.search(part):
                raise ValueError(
                    f"data value {part[:40]!r} contains ( ) * CR LF, is not ASCII or is too long"
                )

    @property
    def error(self) -> str | None:
        """The meter's error code (``"ER12"``) when the value is an error message."""
        text = self.text.strip()
        return text if _ERROR.fullmatch(text) else None

    @property
    def number(self) -> int | Decimal | None:
        """The value as an exact number, or ``None`` if the text is not a decimal number."""
        text = self.text.strip()
        m = _NUMBER.fullmatch(text)
        if m is None:
            return None
        return Decimal(text) if "." in text else int(text)

    def parse(self, identifier: bool = False) -> ParsedValue:
        """The exact value.

        Numbers become ``int``/``Decimal``, DSMR timestamps aware datetimes, error
        messages ``None`` (see ``error``). When ``identifier`` is true (serial
        numbers, firmware, status words: OBIS C = 0 or 96-99) and there is no
        unit, the stripped text is kept: ``"0008"`` stays ``"0008"``.
        """
        return _parse_text(self.text, self.unit, identifier)

    def encode(self) -> str:
        if self.unit is None:
            return f"({self.text})"
        return f"({self.text}*{self.unit})"


@dataclass(frozen=True, slots=True)
class DataSet:
    """An address and its values. ``address`` is ``""`` when the meter sent none (answers, errors)."""

    address: str
    values: tuple[DataValue, ...]

    def __post_init__(self) -> None:
        if any(c in self.address for c in "()\r\n") or not self.address.isascii():
            raise ValueError(f"data set address {self.address!r} contains ( ) CR or LF or is not ASCII")
        if not self.values:
            raise ValueError("a data set needs at least one value")

    @property
    def obis(self) -> ObisCode | None:
        return obis_of(self.address)

    @property
    def unit(self) -> str | None:
        return self.values[0].unit

    @property
    def error(self) -> str | None:
        """The error code when the (first) value is an ``ERxx`` message."""
        return self.values[0].error

    @property
    def identifier(self) -> bool:
        """The address names an identifier (no OBIS code, or OBIS C = 0 or 96-99): unit-less text stays text."""
        return _IDENTIFIER[self.address]

    @property
    def value(self) -> ParsedValue:
        """The exact value of the first value (see ``DataValue.parse``)."""
        first = self.values[0]
        return _parse_text(first.text, first.unit, _IDENTIFIER[self.address])

    @property
    def parsed(self) -> tuple[ParsedValue, ...]:
        identifier = self.identifier
        return tuple(v.parse(identifier) for v in self.values)

    def encode(self) -> str:
        return self.address + "".join(v.encode() for v in self.values)


DataLine = tuple[DataSet, ...]


_new = object.__new__
# the slot descriptors: stores that skip the frozen dataclasses' __setattr__ (objects of checked text)
_set_text = vars(DataValue)["text"].__set__
_set_unit = vars(DataValue)["unit"].__set__
_set_address = vars(DataSet)["address"].__set__
_set_values = vars(DataSet)["values"].__set__


def _value(text: str, unit: str | None) -> DataValue:
    """A ``DataValue`` from text the block pattern has already validated (no second check)."""
    v: DataValue = _new(DataValue)
    _set_text(v, text)
    _set_unit(v, unit)
    return v


def _data_set(address: str, values: tuple[DataValue, ...]) -> DataSet:
    s: DataSet = _new(DataSet)
    _set_address(s, address)
    _set_values(s, values)
    return s


def _simple_pairs(text: str) -> tuple[list[str], list[str]] | None:
    """Addresses and bracketed texts when every line is one data set with one value, else ``None``.

    Whole-text operations prove the shape: with CR and LF only as CR LF (the caller has
    checked), ``(`` ``)`` and CR appearing as ``()\r`` once per line and every ``)`` right
    before its CR LF, each line is ``address(text)`` CR LF with neither part holding a
    bracket or a line end. Then one ``replace`` and one ``split`` cut all lines at once.
    The bracketed texts still hold ``value*unit``.
    """
    if text[-2:] != "\r\n":
        if not text:
            return [], []
        text += "\r\n"  # a final line without CR LF
    n = text.count("\r\n")
    if text.count(")\r\n") != n or text.translate(_KEEP_SHAPE) != "()\r" * n:
        return None
    parts = text.replace(")\r\n", "(").split("(")  # address, text, address, text, ..., ""
    return parts[0:-1:2], parts[1::2]


def _check_line_ends(text: str, base: int) -> None:
    crlf = text.count("\r\n")
    if text.count("\r") != crlf or text.count("\n") != crlf:
        _locate_error(text, 0, len(text), base)


def parse_data_block(
    text: str, *, start: int = 0, end: int | None = None, base: int = 0
) -> tuple[DataLine, ...]:
    """Parse CR LF separated data lines of ``text[start:end]``.

    ``base`` is added to offsets in error messages (the position of ``text[0]`` in
    the frame). A final line without CR LF is accepted. Empty lines (DSMR puts one
    after the header) are skipped. Raise ``FramingError`` naming the offset of the
    first character that is not part of a data set.

    Blocks whose lines each hold one data set with one value (nearly all readouts)
    take a path of plain string operations; anything else goes through the token
    pattern line by line.
    """
    stop = len(text) if end is None else end
    if start or stop != len(text):
        text, base = text[start:stop], base + start
    _check_line_ends(text, base)
    pairs = _simple_pairs(text)
    if pairs is not None:
        new, value_type, set_type = _new, DataValue, DataSet
        put_text, put_unit, put_address, put_values = _set_text, _set_unit, _set_address, _set_values
        out: list[DataLine] = []
        append = out.append
        for a, bracketed in zip(
            *pairs, strict=True
        ):  # _data_set(a, (_value(v, u),)) written out: the hot path
            dv = new(value_type)
            if "*" in bracketed:
                v, _, u = bracketed.partition("*")
                if "*" in u:
                    break  # two units: the general path reports it
                put_text(dv, v)
                put_unit(dv, u)
            else:
                put_text(dv, bracketed)
                put_unit(dv, None)
            ds = new(set_type)
            put_address(ds, a)
            put_values(ds, (dv,))
            append((ds,))
        else:
            return tuple(out)
    lines: list[DataLine] = []
    pos = 0
    for line in text.split("\r\n"):
        if line:
            lines.append(_parse_line(line, base + pos))
        pos += len(line) + 2
    return tuple(lines)


class _IdentifierFlags(dict[str, bool]):
    """address -> "is an identifier" (see ``DataSet.identifier``), filled on first use."""

    def __missing__(self, address: str) -> bool:
        code = obis_of(address)
        flag = code is None or code.c in _IDENTIFIER_C
        if len(self) < _OBIS_CACHE_LIMIT:
            self[address] = flag
        return flag


_IDENTIFIER: Final = _IdentifierFlags()


def _parse_text(text: str, unit: str | None, identifier: bool) -> ParsedValue:
    """``DataValue.parse`` on bare strings, the common cases first."""
    numeric = unit is not None or not identifier
    if numeric:
        if text.isdecimal():
            return int(text)
        if text.replace(".", "", 1).isdecimal():
            return Decimal(text)
    text = text.strip()
    if numeric and _NUMBER.fullmatch(text) is not None:
        return Decimal(text) if "." in text else int(text)
    if unit is None:
        if text[:2] == "ER" and _ERROR.fullmatch(text):
            return None
        if len(text) == 13 and (stamp := parse_dsmr_timestamp(text)) is not None:
            return stamp
    return text


def block_values(text: str, *, base: int = 0) -> list[tuple[str, ParsedValue, str | None]]:
    """``(address, exact value, unit)`` for every data set of a data block, without building objects.

    The same grammar and checks as ``parse_data_block`` (it is the fast path of
    readouts to values); a series contributes its first value.
    """
    if not text.isascii():
        raise FramingError("data block is not 7-bit ASCII", offset=base, layer=LAYER)
    _check_line_ends(text, base)
    pairs = _simple_pairs(text)
    if pairs is not None:
        flags = _IDENTIFIER
        out: list[tuple[str, ParsedValue, str | None]] = []
        append = out.append
        for a, bracketed in zip(*pairs, strict=True):
            if "*" in bracketed:
                v, _, u = bracketed.partition("*")
                if "*" in u:
                    break  # two units: the general path reports it
                append((a, _parse_text(v, u, flags[a]), u))
            else:
                append((a, _parse_text(bracketed, None, flags[a]), None))
        else:
            return out
    return [(s.address, s.value, s.unit) for line in parse_data_block(text, base=base) for s in line]


def _parse_line(line: str, base: int) -> DataLine:
    """The general case: several data sets, series, or a syntax error (raised with its offset)."""
    if _BLOCK.fullmatch(line) is None:
        _locate_error(line, 0, len(line), base)
    sets: list[DataSet] = []
    address = ""
    values: list[DataValue] = []
    for head, value, unit, _crlf in _TOKEN.findall(line):
        if head:
            if values:
                sets.append(_data_set(address, tuple(values)))
            address = head
            values = [_value(value, unit[1:] if unit else None)]
        else:
            if not values:
                address = ""
            values.append(_value(value, unit[1:] if unit else None))
    sets.append(_data_set(address, tuple(values)))
    return tuple(sets)


def _locate_error(text: str, start: int, stop: int, base: int) -> None:
    pos = start
    for m in _TOKEN.finditer(text, start, stop):
        if m.start() != pos:
            break
        pos = m.end()
    _bad(text, pos, base)


def _bad(text: str, pos: int, base: int) -> None:
    snippet = text[pos : pos + 24]
    raise FramingError(
        f"expected a data set 'address(value*unit)' or CR LF, got {snippet!r}",
        offset=base + pos,
        layer=LAYER,
    )


def parse_data_line(line: str) -> DataLine:
    """One data line (without CR LF) to its data sets."""
    lines = parse_data_block(line)
    if len(lines) > 1:  # pragma: no cover - CR LF cannot match inside one line without CR LF
        raise FramingError("one data line expected", layer=LAYER)
    if not lines:
        raise FramingError("empty data line", offset=0, layer=LAYER)
    return lines[0]


def encode_data_line(line: DataLine) -> str:
    return "".join(s.encode() for s in line)


def encode_data_block(lines: tuple[DataLine, ...] | list[DataLine]) -> str:
    """Lines joined with CR LF after each, as in a readout's data block."""
    return "".join(encode_data_line(line) + "\r\n" for line in lines)
