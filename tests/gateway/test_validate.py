"""Validation: overrides, plausibility, units, monotonic counters, quality bands, edge-triggered events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from meterbridge.gateway.config import QualityConfig, Range, RegisterOverride
from meterbridge.gateway.validate import Validator, unit_factor
from meterbridge.obis import ObisCode
from meterbridge.readings import Quality, Reading

T0 = datetime(2026, 3, 1, tzinfo=UTC)
E_IMPORT = ObisCode.parse("1.8.0")
VOLT = ObisCode.parse("32.7.0")
FREQ = ObisCode.parse("14.7.0")
PF = ObisCode.parse("13.7.0")
THD = ObisCode.parse("32.7.124")
CURRENT = ObisCode.parse("31.7.0")


def rd(key: ObisCode | str, value: object, unit: str | None, n: int = 0, meter: str = "m1") -> Reading:
    return Reading(meter, key, value, unit, T0 + timedelta(seconds=n))  # type: ignore[arg-type]


def test_unit_factor() -> None:
    assert unit_factor("kWh") == ("Wh", 1000)
    assert unit_factor("Wh") == ("Wh", 1)
    assert unit_factor("MWh") == ("Wh", 1_000_000)
    assert unit_factor("m3") == ("m3", 1)
    assert unit_factor("furlongs") == ("furlongs", 1)
    assert unit_factor(None) == (None, 1)


def test_good_reading_passes_unchanged_and_gets_catalogue_name() -> None:
    v = Validator()
    out, events = v.check(rd(VOLT, Decimal("231.4"), "V"))
    assert out.ok and out.value == Decimal("231.4") and out.name == "Voltage L1" and events == []


def test_counter_going_backwards_is_flagged_once_and_cleared() -> None:
    v = Validator()
    seq = [Decimal(100), Decimal(101), Decimal(0), Decimal(50), Decimal(102)]
    results = [v.check(rd(E_IMPORT, x, "Wh", i)) for i, x in enumerate(seq)]
    flags = [r.quality for r, _ in results]
    assert flags == [Quality.OK, Quality.OK, Quality.NOT_MONOTONIC, Quality.NOT_MONOTONIC, Quality.OK]
    events = [e for _, es in results for e in es]
    assert [(e.kind, e.active) for e in events] == [("not_monotonic", True), ("not_monotonic", False)]
    assert events[0].value == 0 and events[0].threshold == 101


def test_counter_in_kwh_after_wh_is_compared_after_scaling() -> None:
    v = Validator()
    v.check(rd(E_IMPORT, 1500, "Wh"))
    out, _ = v.check(rd(E_IMPORT, Decimal("1.6"), "kWh", 1))
    assert out.ok  # 1600 Wh after 1500 Wh: same dimension, rising
    out, _ = v.check(rd(E_IMPORT, Decimal("1.4"), "kWh", 2))
    assert out.quality == Quality.NOT_MONOTONIC  # 1400 Wh < 1600 Wh


def test_seed_from_store_keeps_counter_state_across_restarts() -> None:
    v = Validator()
    assert v.needs_seed("m1")
    v.seed("m1", {str(E_IMPORT): rd(E_IMPORT, 5000, "Wh")})
    assert not v.needs_seed("m1")
    out, events = v.check(rd(E_IMPORT, 4999, "Wh", 5))
    assert out.quality == Quality.NOT_MONOTONIC and events[0].kind == "not_monotonic"


def test_implausible_value_flagged_and_not_remembered() -> None:
    v = Validator()
    out, events = v.check(rd(VOLT, 400, "V"))
    assert out.quality == Quality.OUT_OF_RANGE
    assert events[0].kind == "implausible" and events[0].threshold == 300
    out, events = v.check(rd(VOLT, Decimal(230), "V", 1))
    assert out.ok and [(e.kind, e.active) for e in events] == [("implausible", False)]


def test_quality_bands_flag_threshold_and_raise_events() -> None:
    v = Validator()
    cases = [
        (VOLT, Decimal("254"), "V", "voltage", Decimal(253)),
        (VOLT, Decimal("200"), "V", "voltage", Decimal(207)),
        (FREQ, Decimal("48.7"), "Hz", "frequency", Decimal(49)),
        (PF, Decimal("0.85"), None, "power_factor", Decimal("0.9")),
        (THD, Decimal("9.5"), "%", "thd", Decimal(8)),
    ]
    for i, (key, value, unit, kind, threshold) in enumerate(cases):
        out, events = v.check(rd(key, value, unit, i, meter=f"m{i}"))
        assert out.quality == Quality.THRESHOLD, key
        assert len(events) == 1 and events[0].kind == kind and events[0].threshold == threshold
    # inside the band: clears; a second violation raises only once
    assert v.check(rd(PF, Decimal("-0.95"), None, 9, meter="m3"))[1][0].active is False
    v.check(rd(FREQ, Decimal("51.5"), "Hz", 10, meter="m2"))
    assert v.check(rd(FREQ, Decimal("51.6"), "Hz", 11, meter="m2"))[1] == []


def test_configured_thresholds_and_plausible_ranges() -> None:
    quality = QualityConfig(
        voltage=Range(min=Decimal(220), max=Decimal(240)),
        plausible={str(CURRENT): Range(min=Decimal(0), max=Decimal(63))},
    )
    v = Validator(quality)
    assert v.check(rd(VOLT, Decimal(245), "V"))[0].quality == Quality.THRESHOLD
    assert v.check(rd(CURRENT, Decimal(70), "A"))[0].quality == Quality.OUT_OF_RANGE


def test_unit_of_wrong_dimension() -> None:
    v = Validator()
    out, events = v.check(rd(VOLT, Decimal(230), "A"))
    assert out.quality == Quality.UNIT_MISMATCH and events[0].kind == "unit_mismatch"


def test_overrides_scale_rename_and_reunit() -> None:
    overrides = {"m1": {str(CURRENT): RegisterOverride(scaler=-2, unit="A", name="Phase 1")}}
    v = Validator(overrides=overrides)
    out, events = v.check(rd(CURRENT, 9, None))
    assert out.value == Decimal("0.09") and out.unit == "A" and out.name == "Phase 1" and out.ok
    assert events == []
    other, _ = v.check(rd(CURRENT, 9, "A", meter="m2"))
    assert other.value == 9  # overrides are per meter


def test_non_numeric_and_mbus_counters() -> None:
    v = Validator()
    out, events = v.check(rd("0-0:96.1.0.255", "12345678", None))
    assert out.ok and events == []
    key = "mbus/0/volume/instantaneous/s0/t0/u0"
    v.check(rd(key, Decimal("12.5"), "m3"))
    assert v.check(rd(key, Decimal("12.4"), "m3", 1))[0].quality == Quality.NOT_MONOTONIC
    flow = "mbus/1/volume_flow/instantaneous/s0/t0/u0"
    v.check(rd(flow, Decimal("1.5"), "m3/h"))
    assert v.check(rd(flow, Decimal("0.5"), "m3/h", 1))[0].ok


def test_meter_flagged_values_do_not_advance_the_counter() -> None:
    v = Validator()
    v.check(rd(E_IMPORT, 100, "Wh"))
    bad = rd(E_IMPORT, 10_000, "Wh", 1).flagged(Quality.METER_ERROR)
    v.check(bad)
    assert v.check(rd(E_IMPORT, 200, "Wh", 2))[0].ok


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=40))
def test_ok_counter_values_never_decrease(values: list[int]) -> None:
    v = Validator()
    good = [r.value for r, _ in (v.check(rd(E_IMPORT, x, "Wh", i)) for i, x in enumerate(values)) if r.ok]
    assert good == sorted(good)  # type: ignore[type-var]
