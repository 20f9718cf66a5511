"""From IEC 62056-21 / P1 data sets to ``Reading`` values.

The meter id is the first of: serial number ``C.1.0`` (``0-0:96.1.0``), device
address ``0.0.0``, equipment identifier ``0-0:96.1.1``, and last the
identification line. Every data set with an address becomes one reading keyed by
its OBIS code (or the address text when it is no OBIS code); an ``(ERxx)`` value
becomes ``None`` flagged ``METER_ERROR``. A series whose first value is a DSMR
timestamp (``0-1:24.2.1(231128104500W)(12785.123*m3)``) is read as "value at that
time".

``to_readings`` takes data sets (what the session and the capture reader give); ``readout_readings``
goes from the bytes of a readout straight to readings on the whole-text scanner of
``datasets`` (no message objects) and falls back to ``DataMessage`` for anything unusual. Both
give what ``reading_of`` gives for each data set; per-address facts (OBIS code, catalogue name,
identifier flag) are worked out once per address text, values never.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from decimal import Decimal
from typing import Final, NamedTuple

from meterbridge.errors import FramingError
from meterbridge.obis import ObisCode, lookup
from meterbridge.protocols.iec62056_21.datasets import (
    _ERROR,
    _IDENTIFIER,
    LAYER,
    DataSet,
    ParsedValue,
    _check_line_ends,
    _parse_text,
    _simple_pairs,
    obis_of,
)
from meterbridge.protocols.iec62056_21.messages import DataMessage, Identification, _open_block
from meterbridge.readings import Quality, Reading

__all__ = ["ID_CODES", "meter_id_of", "reading_of", "readout_readings", "to_readings"]

ID_CODES: tuple[ObisCode, ...] = (
    ObisCode(0, 0, 96, 1, 0),
    ObisCode(1, 0, 0, 0, 0),
    ObisCode(0, 0, 0, 0, 0),
    ObisCode(0, 0, 96, 1, 1),
)

TextHook = Callable[[ObisCode | None, str], str]


class _AddressFacts(NamedTuple):
    """What an address implies, worked out once: the reading key, the OBIS code, its name, its id rank."""

    key: ObisCode | str
    code: ObisCode | None
    name: str | None
    id_rank: int | None  # position in ID_CODES of an identifier register (channel B = 0), else None
    numeric: bool  # not an identifier (see ``DataSet.identifier``): unit-less digits are a number


class _Facts(dict[str, _AddressFacts]):
    """address -> ``_AddressFacts``, filled on first use (meters repeat the same few dozen addresses)."""

    def __missing__(self, address: str) -> _AddressFacts:
        code = obis_of(address)
        entry = lookup(code) if code is not None else None
        rank = ID_CODES.index(code) if code is not None and code.b == 0 and code in ID_CODES else None
        facts = _AddressFacts(
            code if code is not None else address,
            code,
            entry.name if entry is not None else None,
            rank,
            not _IDENTIFIER[address],
        )
        if len(self) < 4096:
            self[address] = facts
        return facts


_FACTS: Final = _Facts()


def _plain(_: ObisCode | None, text: str) -> str:
    return text


def meter_id_of(
    data_sets: Iterable[DataSet],
    identification: Identification | str | None = None,
    text_hook: TextHook = _plain,
) -> str | None:
    """The meter's id from its data sets (see the module docstring), else the identification."""
    found: dict[int, str] = {}
    facts = _FACTS
    for s in data_sets:
        fact = facts[s.address]
        rank = fact.id_rank
        if rank is not None and rank not in found:
            text = text_hook(fact.code, s.values[0].text.strip())
            if text and s.error is None:
                found[rank] = text
    if found:
        return found[min(found)]
    if isinstance(identification, Identification):
        return identification.text
    return identification or None


def reading_of(
    data_set: DataSet, meter_id: str, timestamp: datetime, text_hook: TextHook = _plain
) -> Reading | None:
    """One reading for one data set, or ``None`` when it has no address."""
    address = data_set.address
    if not address:
        return None
    facts = _FACTS[address]
    identifier = _IDENTIFIER[address]
    values = data_set.values
    first = values[0]
    value: ParsedValue = _parse_text(first.text, first.unit, identifier)
    unit = first.unit
    quality = Quality.OK
    if len(values) >= 2 and isinstance(value, datetime) and values[1].unit is not None:
        second = values[1]
        timestamp, value, unit = value, _parse_text(second.text, second.unit, identifier), second.unit
    if ("ER" in first.text and first.error is not None) or (
        value is None and "ER" in values[-1].text and values[-1].error is not None
    ):
        quality = Quality.METER_ERROR
        value = None
    elif isinstance(value, str):
        value = text_hook(facts.code, value)
    return Reading(meter_id, facts.key, value, unit or None, timestamp, quality, facts.name)


# the slot descriptors of Reading: plain stores for readings built here (checks made once per readout)
_new = object.__new__
_put_meter, _put_key, _put_value, _put_unit, _put_time, _put_quality, _put_name = (
    vars(Reading)[name].__set__
    for name in ("meter_id", "key", "value", "unit", "timestamp", "quality", "name")
)
_OK: Final = Quality.OK
_METER_ERROR: Final = Quality.METER_ERROR


def _checked(meter: str | None, received_at: datetime) -> str:
    if not meter:
        raise ValueError("no meter id: the data has no C.1.0/0.0.0/96.1.1 and no identification was given")
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    return meter


def _reading(
    meter: str, facts: _AddressFacts, value: ParsedValue, unit: str | None, when: datetime, quality: Quality
) -> Reading:
    """``Reading(meter, facts.key, value, unit, when, quality, facts.name)`` of checked parts."""
    reading: Reading = _new(Reading)
    _put_meter(reading, meter)
    _put_key(reading, facts.key)
    _put_value(reading, value)
    _put_unit(reading, unit)
    _put_time(reading, when)
    _put_quality(reading, quality)
    _put_name(reading, facts.name)
    return reading


def _single(
    meter: str,
    facts: _AddressFacts,
    text: str,
    unit: str | None,
    when: datetime,
    text_hook: TextHook,
) -> Reading:
    """``reading_of`` for a data set of one value ``(text*unit)`` (``unit`` ``None`` when absent)."""
    if facts.numeric or unit is not None:
        if text.isdecimal():
            return _reading(meter, facts, int(text), unit or None, when, _OK)
        if text.replace(".", "", 1).isdecimal():
            return _reading(meter, facts, Decimal(text), unit or None, when, _OK)
    if "ER" in text and _ERROR.fullmatch(text.strip()) is not None:
        return _reading(meter, facts, None, unit or None, when, _METER_ERROR)
    value = _parse_text(text, unit, not facts.numeric)
    if isinstance(value, str):
        value = text_hook(facts.code, value)
    return _reading(meter, facts, value, unit or None, when, _OK)


def to_readings(
    data_sets: Iterable[DataSet],
    *,
    received_at: datetime,
    identification: Identification | str | None = None,
    meter_id: str | None = None,
    text_hook: TextHook = _plain,
) -> list[Reading]:
    """Readings for every addressed data set, stamped ``received_at`` (timezone-aware).

    The same readings as ``reading_of`` for each data set; sets of one value (nearly all)
    are read inline.
    """
    sets = data_sets if isinstance(data_sets, tuple | list) else tuple(data_sets)
    meter = _checked(meter_id or meter_id_of(sets, identification, text_hook), received_at)
    facts = _FACTS
    items: list[_Item] = []
    for s in sets:
        if not s.address:
            continue
        values = s.values
        if len(values) == 1:
            items.append((facts[s.address], values[0].text, values[0].unit, None))
        else:
            items.append((None, "", None, s))  # a series: the general reading
    return _readings(meter, items, received_at, text_hook)


#: one data set to read: ``(facts, value text, unit, None)`` of a one-value set, ``(None, "", None, set)`` else
_Item = tuple[_AddressFacts | None, str, str | None, DataSet | None]


def _readings(
    meter: str,
    items: list[_Item],
    received_at: datetime,
    text_hook: TextHook,
) -> list[Reading]:
    """Readings of ``(facts, value text, unit, None)`` of one-value data sets (``(None, "", None, data
    set)`` for any other set), in order. Plain numbers are built inline: this is the hot path of every readout."""
    new, put_meter, put_key, put_value, put_unit, put_time, put_quality, put_name = (
        _new,
        _put_meter,
        _put_key,
        _put_value,
        _put_unit,
        _put_time,
        _put_quality,
        _put_name,
    )
    ok = _OK
    out: list[Reading] = []
    append = out.append
    for fact, text, unit, series in items:
        if fact is None:
            assert series is not None
            general = reading_of(series, meter, received_at, text_hook)
            assert general is not None
            append(general)
            continue
        if (fact.numeric or unit is not None) and text.isdecimal():
            value: ParsedValue = int(text)
        elif (fact.numeric or unit is not None) and text.replace(".", "", 1).isdecimal():
            value = Decimal(text)
        else:  # text, signs, spaces, errors, timestamps: the general reading of one value
            append(_single(meter, fact, text, unit, received_at, text_hook))
            continue
        reading: Reading = new(Reading)  # _reading(...) written out
        put_meter(reading, meter)
        put_key(reading, fact.key)
        put_value(reading, value)
        put_unit(reading, unit or None)
        put_time(reading, received_at)
        put_quality(reading, ok)
        put_name(reading, fact.name)
        append(reading)
    return out


def readout_readings(
    raw: bytes | memoryview,
    *,
    received_at: datetime,
    identification: Identification | str | None = None,
    meter_id: str | None = None,
    text_hook: TextHook = _plain,
) -> list[Reading]:
    """A readout ``STX ... ! CR LF ETX BCC`` straight to readings, stamped ``received_at``.

    The same checks as ``DataMessage.decode`` (BCC, ASCII, data set grammar, the ``!``
    end mark) and the same readings as ``to_readings(DataMessage.decode(raw).data_sets, ...)``,
    without the message objects when every line is one data set with one value.
    """
    text, readout, final = _open_block(raw)
    if not readout or not final:
        raise FramingError("a data readout ends with '!' CR LF ETX", offset=len(raw) - 2, layer=LAYER)
    block = text[:-3]
    _check_line_ends(block, 1)
    pairs = _simple_pairs(block)
    if pairs is None:  # series, several sets on a line, empty lines, grammar errors
        return to_readings(
            DataMessage.decode(raw).data_sets,
            received_at=received_at,
            identification=identification,
            meter_id=meter_id,
            text_hook=text_hook,
        )
    facts = _FACTS
    split: list[_Item] = []
    found: dict[int, str] = {}
    for address, bracketed in zip(*pairs, strict=True):
        if not address:
            continue
        fact = facts[address]
        value_text, star, unit = bracketed.partition("*")
        if star:
            if "*" in unit:  # two units: DataMessage.decode says where
                DataMessage.decode(raw)
                raise AssertionError("unreachable: a second '*' is a grammar error")  # pragma: no cover
            split.append((fact, value_text, unit, None))
        else:
            split.append((fact, value_text, None, None))
        rank = fact.id_rank
        if rank is not None and not meter_id and rank not in found:
            stripped = value_text.strip()
            id_text = text_hook(fact.code, stripped)
            if id_text and _ERROR.fullmatch(stripped) is None:
                found[rank] = id_text
    meter = meter_id
    if not meter:
        if found:
            meter = found[min(found)]
        elif isinstance(identification, Identification):
            meter = identification.text
        else:
            meter = identification or None
    meter = _checked(meter, received_at)
    return _readings(meter, split, received_at, text_hook)
