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
from collections.abc import Callable, Mapping
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
ONE: Final = Decimal(1)


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
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
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


@dataclass(frozen=True, slots=True)
class _Static:
    override: RegisterOverride | None
    quantity: Quantity | None
    expected_base: str | None
    catalogue_factor: Decimal
    low: Decimal | None
    high: Decimal | None
    band: _Band | None
    counter: bool


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
        self._statics: dict[tuple[str, str], _Static] = {}

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
        message: Callable[[], str],
        value: Decimal | None = None,
        threshold: Decimal | None = None,
    ) -> None:
        if not failing and not self._active:
            return  # the hot path: nothing wrong now, nothing raised before
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
                    message=message(),
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

    def _static(self, meter_id: str, key: str, reading: Reading) -> _Static:
        """What does not change between readings of one register (cached; the hot path reads it)."""
        ident = (meter_id, key)
        static = self._statics.get(ident)
        if static is None:
            override = self.overrides.get(meter_id, {}).get(key)
            quantity = lookup(reading.obis) if reading.obis is not None else None
            expected_base, catalogue_factor = (
                unit_factor(quantity.unit) if quantity is not None else (None, ONE)
            )
            plausible = self._plausible(key, quantity, override)
            static = _Static(
                override=override,
                quantity=quantity,
                expected_base=expected_base if quantity is not None and quantity.unit is not None else None,
                catalogue_factor=catalogue_factor,
                low=plausible.min if plausible is not None else None,
                high=plausible.max if plausible is not None else None,
                band=self._band(quantity),
                counter=self._is_counter(reading, quantity),
            )
            self._statics[ident] = static
        return static

    def check(self, reading: Reading) -> tuple[Reading, list[QualityEvent]]:
        """The reading with its corrections and flags, and the quality events it raises or clears."""
        key = reading.key_text
        meter_id = reading.meter_id
        static = self._static(meter_id, key, reading)
        override = static.override
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
        quantity = static.quantity
        name = reading.name if reading.name is not None or quantity is None else quantity.name
        flags = Quality.OK
        ident = (meter_id, key)
        unit = reading.unit

        def label() -> str:
            return f"{meter_id} {name or key}"

        # units: same dimension as the catalogue and as the previous reading
        base, factor = unit_factor(unit)
        previous_unit = self._last_unit.get(ident, unit)
        unit_bad = (static.expected_base is not None and base != static.expected_base) or (
            previous_unit != unit and unit_factor(previous_unit)[0] != base
        )
        if unit_bad:
            flags |= Quality.UNIT_MISMATCH
        else:
            self._last_unit[ident] = unit
        self._edge(
            events,
            reading,
            "unit_mismatch",
            unit_bad,
            lambda: (
                f"{label()}: unit {unit!r} where "
                f"{quantity.unit if quantity and quantity.unit else previous_unit!r} was expected"
            ),
        )
        in_base = number * factor if factor != ONE else number
        cf = static.catalogue_factor
        in_catalogue_unit = in_base / cf if cf != ONE else in_base

        # plausibility
        low, high = static.low, static.high
        implausible = False
        if (low is not None or high is not None) and not unit_bad:
            below_low = low is not None and in_catalogue_unit < low
            implausible = below_low or (high is not None and in_catalogue_unit > high)
            if implausible:
                flags |= Quality.OUT_OF_RANGE
            self._edge(
                events,
                reading,
                "implausible",
                implausible,
                lambda: (
                    f"{label()}: {number}{' ' + unit if unit else ''} is outside the plausible range "
                    f"{low if low is not None else '-inf'}..{high if high is not None else 'inf'}"
                ),
                number,
                (low if below_low else high) if implausible else None,
            )

        # counters never go backwards
        if static.counter and not unit_bad and not implausible:
            last = self._last_good.get(ident)
            backwards = last is not None and in_base < last
            if backwards:
                flags |= Quality.NOT_MONOTONIC
            self._edge(
                events,
                reading,
                "not_monotonic",
                backwards,
                lambda: (
                    f"{label()}: counter went backwards from {last} to {in_base}{' ' + base if base else ''}"
                ),
                number,
                (last / factor) if last is not None else None,
            )
            if not backwards and int(reading.quality) & ~int(Quality.UNAUTHENTICATED) == 0:
                self._last_good[ident] = in_base

        # the guide's quality bands
        band = static.band
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
                lambda: (
                    f"{label()}: {number}{' ' + unit if unit else ''} is "
                    f"{'below' if below else 'above'} {threshold}"
                ),
                number,
                threshold if (below or above) else None,
            )
        if flags or name is not reading.name:
            reading = Reading(
                meter_id, reading.key, reading.value, unit, reading.timestamp, reading.quality | flags, name
            )
        return reading, events
