"""``Reading``: the one value type that flows from drivers to sinks.

A reading is frozen. Its value is exact where the wire is exact: ``int`` for
integers, ``Decimal`` for scaled or BCD values, ``float`` only when the meter sent
a binary float. Text stays ``str``, binary data ``bytes``, a date ``datetime``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from meterbridge.obis import ObisCode

__all__ = ["Quality", "Reading", "Value"]

Value = int | Decimal | float | str | bytes | datetime | bool | None


class Quality(enum.IntFlag):
    """Flags a reading carries. ``OK`` (no flag) is a good reading."""

    OK = 0
    UNAUTHENTICATED = 1  # decrypted without verifying the GCM tag (no authentication key)
    OUT_OF_RANGE = 2  # outside the catalogue's or the config's plausible range
    NOT_MONOTONIC = 4  # a total_increasing counter went backwards
    UNIT_MISMATCH = 8  # unit differs from the catalogue's or the previous reading's
    METER_ERROR = 16  # the meter flagged the value (M-Bus status, IEC (ERxx), DLMS error)
    STALE = 32  # the value did not change where it must (e.g. multi-telegram FCB repeat)
    THRESHOLD = 64  # inside the plausible range but outside the guide's quality band

    @property
    def names(self) -> list[str]:
        return [f.name.lower() for f in Quality if f and f in self and f.name]

    @classmethod
    def from_names(cls, names: list[str] | tuple[str, ...]) -> Quality:
        flags = cls.OK
        for name in names:
            flags |= cls[name.upper()]
        return flags


def _check(meter_id: str, timestamp: datetime) -> None:
    """What every reading must satisfy: a meter id, an aware timestamp."""
    if not meter_id:
        raise ValueError("Reading.meter_id must not be empty")
    if timestamp.tzinfo is None:
        raise ValueError(f"Reading.timestamp must be timezone-aware, got {timestamp!r}")


@dataclass(frozen=True, slots=True, init=False)
class Reading:
    """One value of one register of one meter at one instant.

    ``key`` is an ``ObisCode`` for DLMS/IEC registers or a string for M-Bus records
    (``"mbus/<index>/<quantity>/<function>/s<storage>/t<tariff>/u<subunit>"``).
    ``timestamp`` is timezone-aware (the meter's clock when it sent one, else the
    time of receipt).
    """

    meter_id: str
    key: ObisCode | str
    value: Value
    unit: str | None
    timestamp: datetime
    quality: Quality = Quality.OK
    name: str | None = field(default=None, compare=False)

    def __init__(
        self,
        meter_id: str,
        key: ObisCode | str,
        value: Value,
        unit: str | None,
        timestamp: datetime,
        quality: Quality = Quality.OK,
        name: str | None = None,
    ) -> None:
        # the dataclass's own __init__ with __post_init__, written out: the checks, then plain slot
        # stores (half the cost of the generated object.__setattr__ calls; readings are made by the dozen)
        _check(meter_id, timestamp)
        _set_meter_id(self, meter_id)
        _set_key(self, key)
        _set_value(self, value)
        _set_unit(self, unit)
        _set_timestamp(self, timestamp)
        _set_quality(self, quality)
        _set_name(self, name)

    @classmethod
    def batch(
        cls,
        meter_id: str,
        timestamp: datetime,
        values: Iterable[tuple[ObisCode | str, Value, str | None]],
        quality: Quality = Quality.OK,
    ) -> tuple[Reading, ...]:
        """Readings of one meter at one instant, one per ``(key, value, unit)``.

        Equal to ``Reading(meter_id, key, value, unit, timestamp, quality)`` for each, with the
        same checks made once for all of them (a decoder turning one telegram into a dozen
        readings pays for them once). No values, no readings and no checks, as with the loop.
        """
        new = object.__new__
        out = []
        for key, value, unit in values:
            reading = new(cls)
            _set_meter_id(reading, meter_id)
            _set_key(reading, key)
            _set_value(reading, value)
            _set_unit(reading, unit)
            _set_timestamp(reading, timestamp)
            _set_quality(reading, quality)
            _set_name(reading, None)
            out.append(reading)
        if out:
            _check(meter_id, timestamp)
        return tuple(out)

    @property
    def obis(self) -> ObisCode | None:
        return self.key if isinstance(self.key, ObisCode) else None

    @property
    def key_text(self) -> str:
        return str(self.key)

    @property
    def ok(self) -> bool:
        return self.quality is Quality.OK or int(self.quality) == 0

    def flagged(self, flags: Quality) -> Reading:
        return replace(self, quality=self.quality | flags)


# the slot descriptors of Reading: stores that skip the frozen dataclass's __setattr__ (used by batch)
_set_meter_id, _set_key, _set_value, _set_unit, _set_timestamp, _set_quality, _set_name = (
    vars(Reading)[name].__set__
    for name in ("meter_id", "key", "value", "unit", "timestamp", "quality", "name")
)
