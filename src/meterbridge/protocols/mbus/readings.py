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

Each reading carries a readable ``name`` (:func:`record_name`): the quantity in words,
then the function when it is not instantaneous, the storage number, tariff and
subunit when they are not 0 and the VIF extensions, e.g. ``Energy``, ``Energy (storage 1)``,
``Volume flow (maximum, tariff 2)``; records of one telegram that would still share a
name get their record number added (``Voltage (record 3)``). The key stays the stable
identity.

Identification quantities (fabrication number, bus address, customer, model/version,
firmware version ...; see :data:`IDENTIFICATION_QUANTITIES`) are text values, not
measurements: a BCD fabrication number ``00012345`` keeps its leading zeros.

Manufacturer specific data and records without a value are not turned into readings.
A status byte reporting an error, and records whose function is "value during error
state", carry ``Quality.METER_ERROR``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, time

from meterbridge.protocols.mbus.application import FixedDataResponse, Response, VariableDataResponse
from meterbridge.protocols.mbus.datatypes import DaylightSaving
from meterbridge.protocols.mbus.records import DataRecord
from meterbridge.readings import Quality, Reading, Value

__all__ = ["IDENTIFICATION_QUANTITIES", "meter_id", "record_key", "record_name", "to_readings"]

_STATUS_ERROR = 0x1C  # power low, permanent error, temporary error

#: Quantities that identify the meter or its owner: their readings are text, never plotted.
IDENTIFICATION_QUANTITIES: frozenset[str] = frozenset(
    {
        "fabrication_number",
        "enhanced_identification",
        "bus_address",
        "medium",
        "manufacturer",
        "parameter_set_identification",
        "model_version",
        "hardware_version",
        "firmware_version",
        "software_version",
        "customer_location",
        "customer",
    }
)

_BCD_DIF: frozenset[int] = frozenset({0x09, 0x0A, 0x0B, 0x0C, 0x0E})  # data field codings in BCD

#: Quantity names where capitalising the snake_case name is not enough.
_WORDS: dict[str, str] = {
    "hca_units": "Units for H.C.A.",
    "model_version": "Model / version",
    "date_time": "Date and time",
}


def _quantity_words(quantity: str) -> str:
    words = _WORDS.get(quantity)
    if words is not None:
        return words
    text = quantity.replace("_", " ")
    return text[:1].upper() + text[1:]


def record_name(record: DataRecord) -> str:
    """Readable name of a record: quantity in words, then function / storage / tariff / subunit when not
    the default (``Energy (storage 1, tariff 2)``)."""
    words = record.text_unit if record.text_unit is not None else _quantity_words(record.quantity)
    details = []
    if record.function not in ("instantaneous", ""):
        details.append("value during error" if record.function == "error" else record.function)
    if record.storage:
        details.append(f"storage {record.storage}")
    if record.tariff:
        details.append(f"tariff {record.tariff}")
    if record.subunit:
        details.append(f"subunit {record.subunit}")
    details.extend(e.name for e in record.extensions if e.name != "manufacturer specific")
    return f"{words} ({', '.join(details)})" if details else words


def _identification_text(record: DataRecord) -> str:
    value = record.value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, int) and not isinstance(value, bool) and record.dif & 0x0F in _BCD_DIF:
        return str(value).zfill(2 * len(record.data))  # BCD digits, leading zeros kept
    return str(value)


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
                    _quantity_words(counter.quantity)
                    + ("" if counter.function == "instantaneous" else f" ({counter.function})"),
                )
            )
        return out
    assert isinstance(response, VariableDataResponse)
    out = _variable_readings(response, ident, when, index_offset)
    counts = Counter(r.name for r in out)
    return [
        r
        if counts[r.name] == 1
        else replace(r, name=_with_detail(r.name or "", f"record {r.key_text.split('/')[1]}"))
        for r in out
    ]


def _with_detail(name: str, detail: str) -> str:
    return f"{name[:-1]}, {detail})" if name.endswith(")") else f"{name} ({detail})"


def _variable_readings(
    response: VariableDataResponse, ident: str, when: datetime, index_offset: int
) -> list[Reading]:
    out: list[Reading] = []
    base = _status_quality(response.status)
    for record in response.records:
        if record.function in ("manufacturer_specific", "more_records_follow", "global_readout"):
            continue
        if record.info.kind == "manufacturer" or record.value is None:
            continue
        quality = base | (Quality.METER_ERROR if record.function == "error" else Quality.OK)
        value = (
            _identification_text(record)
            if record.text_unit is None and record.quantity in IDENTIFICATION_QUANTITIES
            else _value(record.value)
        )
        out.append(
            Reading(
                ident,
                record_key(record, index_offset),
                value,
                record.unit,
                when,
                quality,
                record_name(record),
            )
        )
    return out
