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

from meterbridge.obis import ObisCode, lookup
from meterbridge.protocols.iec62056_21.datasets import DataSet, ParsedValue, obis_of
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


def _plain(_: ObisCode | None, text: str) -> str:
    return text


def meter_id_of(
    data_sets: Iterable[DataSet],
    identification: Identification | str | None = None,
    text_hook: TextHook = _plain,
) -> str | None:
    """The meter's id from its data sets (see the module docstring), else the identification."""
    found: dict[ObisCode, str] = {}
    for s in data_sets:
        code = obis_of(s.address)
        if code is not None and code.b == 0 and code in ID_CODES and code not in found:
            text = text_hook(code, s.values[0].text.strip())
            if text and s.error is None:
                found[code] = text
    for code in ID_CODES:
        if code in found:
            return found[code]
    if isinstance(identification, Identification):
        return identification.text
    return identification or None


def reading_of(
    data_set: DataSet, meter_id: str, timestamp: datetime, text_hook: TextHook = _plain
) -> Reading | None:
    """One reading for one data set, or ``None`` when it has no address."""
    if not data_set.address:
        return None
    code = obis_of(data_set.address)
    values = data_set.values
    parsed = data_set.parsed
    value: ParsedValue = parsed[0]
    unit = values[0].unit
    quality = Quality.OK
    if len(values) >= 2 and isinstance(value, datetime) and values[1].unit is not None:
        timestamp, value, unit = value, parsed[1], values[1].unit
    if data_set.error is not None or (value is None and values[-1].error is not None):
        quality = Quality.METER_ERROR
        value = None
    elif isinstance(value, str):
        value = text_hook(code, value)
    entry = lookup(code) if code is not None else None
    return Reading(
        meter_id=meter_id,
        key=code if code is not None else data_set.address,
        value=value,
        unit=unit or None,
        timestamp=timestamp,
        quality=quality,
        name=entry.name if entry is not None else None,
    )


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
