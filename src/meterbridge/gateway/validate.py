"""Validation of every reading before it is stored: corrections, plausibility, counters, units, quality bands.

``Validator.check(reading) -> (reading, events)`` applies, in this order:

1. the meter's register overrides from the configuration (``scaler``: value * 10**scaler, ``unit``, ``name``);
2. plausibility: outside the plausible range (configuration, else the OBIS catalogue's
   ``Quantity.plausible``) the reading is flagged ``OUT_OF_RANGE`` (event ``implausible``);
3. unit consistency: a unit of another dimension than the catalogue's (``V`` for a current), or a change of
   dimension against the previous reading of the register, flags ``UNIT_MISMATCH`` (event
   ``unit_mismatch``); ``kWh`` and ``Wh`` are the same dimension and are compared after scaling;
4. counters (``total_increasing`` in the catalogue; M-Bus energy and volume registers): a value below the
   last good value flags ``NOT_MONOTONIC`` (event ``not_monotonic``) and does not replace the last good value;
5. the guide's quality bands (voltage, frequency, power factor, THD; thresholds from ``QualityConfig``): a
   plausible value outside its band is flagged ``THRESHOLD`` (still a real value, still published) and
   raises an event of kind ``voltage``/``frequency``/``power_factor``/``thd``.

Events are edge-triggered per (meter, register, kind): raised once when a condition starts, cleared
(``active=False``) by the next reading that passes. ``seed()`` loads the last good values of a meter from the
store so that a restart does not forget where each counter stood.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Final

from meterbridge.gateway.config import QualityConfig, Range, RegisterOverride
from meterbridge.obis import Quantity, lookup
from meterbridge.readings import Quality, Reading
from meterbridge.sinks.store import QualityEvent

__all__ = ["Validator", "unit_factor"]

_PREFIXES: Final = {
    "k": Decimal(1000),
    "M": Decimal(1_000_000),
    "G": Decimal(1_000_000_000),
    "m": Decimal("0.001"),
}
_BASE_UNITS: Final = {
    "Wh",
    "W",
    "varh",
    "var",
    "VAh",
    "VA",
    "V",
    "A",
    "Hz",
    "%",
    "m3",
    "m³",
    "J",
    "l",
    "K",
    "°C",
}
_MBUS_COUNTERS: Final = ("energy", "volume", "mass")


def unit_factor(unit: str | None) -> tuple[str | None, Decimal]:
    """``"kWh"`` -> (``"Wh"``, 1000); an unknown unit is its own base with factor 1."""
    if unit is None:
        return None, Decimal(1)
    if unit in _BASE_UNITS:
        return unit, Decimal(1)
    if len(unit) > 1 and unit[0] in _PREFIXES and unit[1:] in _BASE_UNITS:
        return unit[1:], _PREFIXES[unit[0]]
    return unit, Decimal(1)


def _number(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | Decimal | float):
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return Decimal(repr(value))
    if isinstance(value, Decimal) and not value.is_finite():
        return None
    return Decimal(value)


def _scaled(value: object, scaler: int) -> object:
    if isinstance(value, bool) or scaler == 0:
        return value
    if isinstance(value, int):
        return Decimal(value).scaleb(scaler)
    if isinstance(value, Decimal):
        return value.scaleb(scaler)
    if isinstance(value, float):
        return value * 10.0**scaler
    return value


@dataclass(frozen=True, slots=True)
class _Band:
    kind: str
    low: Decimal | None
    high: Decimal | None
    absolute: bool = False


class Validator:
    """Stateful checks of a stream of readings (see the module docstring). Not thread-safe: the pipeline
    calls it from one task."""

    def __init__(
        self,
        quality: QualityConfig | None = None,
        overrides: Mapping[str, Mapping[str, RegisterOverride]] | None = None,
    ) -> None:
        self.quality = quality or QualityConfig()
        self.overrides = {m: dict(regs) for m, regs in (overrides or {}).items()}
        self._last_good: dict[tuple[str, str], Decimal] = {}
        self._last_unit: dict[tuple[str, str], str | None] = {}
        self._active: set[tuple[str, str, str]] = set()
        self._seeded: set[str] = set()

    # ------------------------------------------------------------ state

    def needs_seed(self, meter_id: str) -> bool:
        return meter_id not in self._seeded

    def seed(self, meter_id: str, latest: Mapping[str, Reading]) -> None:
        """Remember the last good values and units of a meter (from ``Store.latest(meter, ok_only=True)``)."""
        self._seeded.add(meter_id)
        for key, reading in latest.items():
            number = _number(reading.value)
            factor = unit_factor(reading.unit)[1]
            self._last_unit.setdefault((meter_id, key), reading.unit)
            if number is not None and reading.ok:
                self._last_good.setdefault((meter_id, key), number * factor)

    # ------------------------------------------------------------ checks

    def _is_counter(self, reading: Reading, quantity: Quantity | None) -> bool:
        if quantity is not None:
            return quantity.is_counter
        key = reading.key_text
        if key.startswith("mbus/"):
            parts = key.split("/")
            return len(parts) > 3 and parts[2] in _MBUS_COUNTERS and parts[3] == "instantaneous"
        return False

    def _band(self, quantity: Quantity | None) -> _Band | None:
        if quantity is None:
            return None
        q = self.quality
        key = quantity.key
        if key.startswith("voltage_"):
            return _Band("voltage", q.voltage.min, q.voltage.max)
        if key == "frequency":
            return _Band("frequency", q.frequency.min, q.frequency.max)
        if key.startswith("power_factor"):
            return _Band("power_factor", q.power_factor_min, None, absolute=True)
        if key.startswith("thd_"):
            return _Band("thd", None, q.thd_max)
        return None

    def _plausible(
        self, key: str, quantity: Quantity | None, override: RegisterOverride | None
    ) -> Range | None:
        if override is not None and override.plausible is not None:
            return override.plausible
        configured = self.quality.plausible.get(key)
        if configured is not None:
            return configured
        if quantity is not None and quantity.plausible != (None, None):
            return Range(min=quantity.plausible[0], max=quantity.plausible[1])
        return None

    def _edge(
        self,
        events: list[QualityEvent],
        reading: Reading,
        kind: str,
        failing: bool,
        message: str,
        value: Decimal | None = None,
        threshold: Decimal | None = None,
    ) -> None:
        ident = (reading.meter_id, reading.key_text, kind)
        if failing and ident not in self._active:
            self._active.add(ident)
            events.append(
                QualityEvent(
                    meter_id=reading.meter_id,
                    kind=kind,
                    key=reading.key_text,
                    value=value,
                    threshold=threshold,
                    message=message,
                    timestamp=reading.timestamp,
                )
            )
        elif not failing and ident in self._active:
            self._active.discard(ident)
            events.append(
                QualityEvent(
                    meter_id=reading.meter_id,
                    kind=kind,
                    key=reading.key_text,
                    value=value,
                    message=f"{reading.meter_id} {reading.key_text}: {kind} back to normal",
                    timestamp=reading.timestamp,
                    active=False,
                )
            )

    def check(self, reading: Reading) -> tuple[Reading, list[QualityEvent]]:
        """The reading with its corrections and flags, and the quality events it raises or clears."""
        key = reading.key_text
        override = self.overrides.get(reading.meter_id, {}).get(key)
        if override is not None:
            changes: dict[str, object] = {}
            if override.scaler:
                changes["value"] = _scaled(reading.value, override.scaler)
            if override.unit is not None:
                changes["unit"] = override.unit
            if override.name is not None:
                changes["name"] = override.name
            if changes:
                reading = replace(reading, **changes)  # type: ignore[arg-type]
        number = _number(reading.value)
        events: list[QualityEvent] = []
        if number is None:
            return reading, events
        quantity = lookup(reading.obis) if reading.obis is not None else None
        if reading.name is None and quantity is not None:
            reading = replace(reading, name=quantity.name)
        label = f"{reading.meter_id} {reading.name or key}"
        flags = Quality.OK
        ident = (reading.meter_id, key)

        # units: same dimension as the catalogue and as the previous reading
        base, factor = unit_factor(reading.unit)
        expected_base = unit_factor(quantity.unit)[0] if quantity is not None else None
        previous_unit = self._last_unit.get(ident, reading.unit)
        unit_bad = (quantity is not None and quantity.unit is not None and base != expected_base) or (
            unit_factor(previous_unit)[0] != base
        )
        if unit_bad:
            flags |= Quality.UNIT_MISMATCH
        else:
            self._last_unit[ident] = reading.unit
        self._edge(
            events,
            reading,
            "unit_mismatch",
            unit_bad,
            f"{label}: unit {reading.unit!r} where {quantity.unit if quantity and quantity.unit else previous_unit!r} "
            "was expected",
        )
        in_base = number * factor
        catalogue_factor = unit_factor(quantity.unit)[1] if quantity is not None else Decimal(1)
        in_catalogue_unit = in_base / catalogue_factor

        # plausibility
        plausible = self._plausible(key, quantity, override)
        implausible = False
        if plausible is not None and not unit_bad:
            low, high = plausible.min, plausible.max
            implausible = (low is not None and in_catalogue_unit < low) or (
                high is not None and in_catalogue_unit > high
            )
            if implausible:
                flags |= Quality.OUT_OF_RANGE
            bound = low if (low is not None and in_catalogue_unit < low) else high
            self._edge(
                events,
                reading,
                "implausible",
                implausible,
                f"{label}: {number} {reading.unit or ''} is outside the plausible range "
                f"{low if low is not None else '-inf'}..{high if high is not None else 'inf'}".replace(
                    "  ", " "
                ),
                number,
                bound if implausible else None,
            )

        # counters never go backwards
        if self._is_counter(reading, quantity) and not unit_bad and not implausible:
            last = self._last_good.get(ident)
            backwards = last is not None and in_base < last
            if backwards:
                flags |= Quality.NOT_MONOTONIC
            self._edge(
                events,
                reading,
                "not_monotonic",
                backwards,
                f"{label}: counter went backwards from {last} to {in_base} {base or ''}".rstrip(),
                number,
                (last / factor) if last is not None else None,
            )
            if not backwards and int(reading.quality) & ~int(Quality.UNAUTHENTICATED) == 0:
                self._last_good[ident] = in_base

        # the guide's quality bands
        band = self._band(quantity)
        if band is not None and not unit_bad and not implausible:
            value = abs(in_catalogue_unit) if band.absolute else in_catalogue_unit
            below = band.low is not None and value < band.low
            above = band.high is not None and value > band.high
            if below or above:
                flags |= Quality.THRESHOLD
            threshold = band.low if below else band.high
            self._edge(
                events,
                reading,
                band.kind,
                below or above,
                f"{label}: {number}{' ' + reading.unit if reading.unit else ''} is "
                f"{'below' if below else 'above'} {threshold}",
                number,
                threshold if (below or above) else None,
            )
        if flags:
            reading = reading.flagged(flags)
        return reading, events
