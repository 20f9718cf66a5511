"""Decoded M-Bus responses to ``Reading`` values for the gateway.

Key of a variable data record (stable across telegrams of the same meter as long as the
meter keeps its record layout)::

    mbus/<index>/<quantity>/<function>/s<storage>/t<tariff>/u<subunit>

``index`` is the record's position in the telegram (0-based; records of later telegrams
of a multi-telegram readout continue the count), ``quantity`` the snake_case quantity
(``energy``, ``volume`` ...; ``plain_text`` records use the meter's text), ``function``
``instantaneous|maximum|minimum|error``. Fixed data counters use ``fixed`` records with
function ``instantaneous`` or ``stored``. The meter id is ``<MAN>-<identification>``
(``LGB-12082058``), or ``mbus-<address>`` when the telegram carries no identification.

Manufacturer specific data and records without a value are not turned into readings.
A status byte reporting an error, and records whose function is "value during error
state", carry ``Quality.METER_ERROR``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from meterbridge.protocols.mbus.application import FixedDataResponse, Response, VariableDataResponse
from meterbridge.protocols.mbus.datatypes import DaylightSaving
from meterbridge.protocols.mbus.records import DataRecord
from meterbridge.readings import Quality, Reading, Value

__all__ = ["meter_id", "record_key", "to_readings"]

_STATUS_ERROR = 0x1C  # power low, permanent error, temporary error


def meter_id(response: Response) -> str:
    if isinstance(response, FixedDataResponse):
        return f"mbus-{response.identification}"
    if response.identification is not None and response.manufacturer is not None:
        return f"{response.manufacturer}-{response.identification}"
    return f"mbus-{response.address}"


def record_key(record: DataRecord, index_offset: int = 0) -> str:
    quantity = record.quantity if record.text_unit is None else f"plain_text:{record.text_unit}"
    return (
        f"mbus/{record.index + index_offset}/{quantity}/{record.function}/"
        f"s{record.storage}/t{record.tariff}/u{record.subunit}"
    )


def _value(value: object) -> Value:
    if isinstance(value, datetime):
        return value
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, DaylightSaving):
        return repr(value)
    if value is None or isinstance(value, (int, float, str, bytes)):
        return value
    from decimal import Decimal

    if isinstance(value, Decimal):
        return value
    raise TypeError(f"unexpected record value {value!r}")  # pragma: no cover


def _status_quality(status: int | None) -> Quality:
    if status is None:
        return Quality.OK
    if status & _STATUS_ERROR or (status & 0x03) in (2, 3):
        return Quality.METER_ERROR
    return Quality.OK


def to_readings(
    response: Response,
    *,
    timestamp: datetime | None = None,
    meter: str | None = None,
    index_offset: int = 0,
) -> list[Reading]:
    """Readings of one decoded response (``timestamp`` defaults to now, UTC)."""
    when = timestamp or datetime.now(UTC)
    ident = meter or meter_id(response)
    out: list[Reading] = []
    if isinstance(response, FixedDataResponse):
        base = _status_quality(response.status & 0x3F)
        for i, counter in enumerate(response.counters):
            out.append(
                Reading(
                    ident,
                    f"mbus/{i + index_offset}/{counter.quantity}/{counter.function}/fixed",
                    _value(counter.value),
                    counter.unit,
                    when,
                    base,
                )
            )
        return out
    assert isinstance(response, VariableDataResponse)
    base = _status_quality(response.status)
    for record in response.records:
        if record.function in ("manufacturer_specific", "more_records_follow", "global_readout"):
            continue
        if record.info.kind == "manufacturer" or record.value is None:
            continue
        quality = base | (Quality.METER_ERROR if record.function == "error" else Quality.OK)
        out.append(
            Reading(ident, record_key(record, index_offset), _value(record.value), record.unit, when, quality)
        )
    return out
