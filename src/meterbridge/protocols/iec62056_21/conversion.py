"""From IEC 62056-21 / P1 data sets to ``Reading`` values.

The meter id is the first of: serial number ``C.1.0`` (``0-0:96.1.0``), device
address ``0.0.0``, equipment identifier ``0-0:96.1.1``, and last the
identification line. Every data set with an address becomes one reading keyed by
its OBIS code (or the address text when it is no OBIS code); an ``(ERxx)`` value
becomes ``None`` flagged ``METER_ERROR``. A series whose first value is a DSMR
timestamp (``0-1:24.2.1(231128104500W)(12785.123*m3)``) is read as "value at that
time".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Final, NamedTuple

from meterbridge.obis import ObisCode, lookup
from meterbridge.protocols.iec62056_21.datasets import _IDENTIFIER, DataSet, ParsedValue, _parse_text, obis_of
from meterbridge.protocols.iec62056_21.messages import Identification
from meterbridge.readings import Quality, Reading

__all__ = ["ID_CODES", "meter_id_of", "reading_of", "to_readings"]

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


class _Facts(dict[str, _AddressFacts]):
    """address -> ``_AddressFacts``, filled on first use (meters repeat the same few dozen addresses)."""

    def __missing__(self, address: str) -> _AddressFacts:
        code = obis_of(address)
        entry = lookup(code) if code is not None else None
        rank = ID_CODES.index(code) if code is not None and code.b == 0 and code in ID_CODES else None
        facts = _AddressFacts(
            code if code is not None else address, code, entry.name if entry is not None else None, rank
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


def to_readings(
    data_sets: Iterable[DataSet],
    *,
    received_at: datetime,
    identification: Identification | str | None = None,
    meter_id: str | None = None,
    text_hook: TextHook = _plain,
) -> list[Reading]:
    """Readings for every addressed data set, stamped ``received_at`` (timezone-aware)."""
    sets = tuple(data_sets)
    meter = meter_id or meter_id_of(sets, identification, text_hook)
    if not meter:
        raise ValueError("no meter id: the data has no C.1.0/0.0.0/96.1.1 and no identification was given")
    if received_at.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    out = []
    for s in sets:
        reading = reading_of(s, meter, received_at, text_hook)
        if reading is not None:
            out.append(reading)
    return out
