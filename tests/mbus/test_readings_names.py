"""M-Bus Readings on real libmbus frames: readable names, stable keys, identifiers as text."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from meterbridge.protocols.mbus import VariableDataResponse, decode_frame, decode_response
from meterbridge.protocols.mbus.readings import IDENTIFICATION_QUANTITIES, to_readings
from meterbridge.readings import Reading

FRAMES = Path(__file__).resolve().parents[1] / "vectors" / "mbus-libmbus" / "test-frames"
WHEN = datetime(2026, 1, 1, tzinfo=UTC)


def _readings(name: str) -> dict[str, Reading]:
    response = decode_response(decode_frame(bytes.fromhex((FRAMES / f"{name}.hex").read_text())))
    return {r.key_text: r for r in to_readings(response, timestamp=WHEN)}


def test_kamstrup_names_say_tariff_and_function_keys_unchanged() -> None:
    readings = _readings("kamstrup_multical_601")
    names = {key: r.name for key, r in readings.items()}
    assert names["mbus/1/energy/instantaneous/s0/t0/u0"] == "Energy"
    assert names["mbus/11/energy/instantaneous/s0/t1/u0"] == "Energy (tariff 1)"
    assert names["mbus/12/energy/instantaneous/s0/t2/u0"] == "Energy (tariff 2)"
    assert names["mbus/8/power/maximum/s0/t0/u0"] == "Power (maximum)"
    assert names["mbus/10/volume_flow/maximum/s0/t0/u0"] == "Volume flow (maximum)"
    assert names["mbus/13/volume/instantaneous/s0/t0/u1"] == "Volume (subunit 1)"
    assert names["mbus/6/temperature_difference/instantaneous/s0/t0/u0"] == "Temperature difference"


def test_fabrication_number_is_bcd_text_with_leading_zeros() -> None:
    kamstrup = _readings("kamstrup_multical_601")["mbus/0/fabrication_number/instantaneous/s0/t0/u0"]
    assert kamstrup.value == "06855817"
    assert kamstrup.name == "Fabrication number"
    assert kamstrup.unit is None
    emu = _readings("EMU_EMU-Professional-375-M-Bus")["mbus/0/fabrication_number/instantaneous/s0/t0/u0"]
    assert emu.value == "00032629"


def test_customer_location_and_versions_are_text() -> None:
    sensus = _readings("SEN_Sensus-PolluStat-E")
    assert sensus["mbus/8/customer_location/instantaneous/s0/t0/u0"].value == "21265095"
    itron = _readings("itron_cf_51")
    assert itron["mbus/10/firmware_version/instantaneous/s0/t0/u0"].value == "11"
    assert itron["mbus/11/software_version/instantaneous/s0/t0/u0"].value == "26"


def test_extension_named_when_it_tells_records_apart() -> None:
    edc = _readings("EDC")
    assert (
        edc["mbus/0/energy/instantaneous/s0/t0/u0"].name
        == "Energy (accumulation only if positive contributions)"
    )
    assert edc["mbus/3/energy/instantaneous/s0/t0/u1"].name == (
        "Energy (subunit 1, accumulation of absolute value only if negative contributions)"
    )


def test_records_alike_in_everything_get_their_record_number() -> None:
    emu = _readings("EMU_EMU-Professional-375-M-Bus")
    assert emu["mbus/5/power/instantaneous/s0/t0/u0"].name == "Power (record 5)"
    assert emu["mbus/9/power/instantaneous/s0/t0/u2"].name == "Power (subunit 2, record 9)"
    assert emu["mbus/1/energy/instantaneous/s0/t1/u0"].name == "Energy (tariff 1)"  # unique: no number


@pytest.mark.parametrize("name", sorted(p.stem for p in FRAMES.glob("*.hex")))
def test_every_libmbus_frame_names_unique_and_identifiers_text(name: str) -> None:
    try:
        response = decode_response(decode_frame(bytes.fromhex((FRAMES / f"{name}.hex").read_text())))
    except Exception:  # frames the corpus test expects to fail are covered there
        pytest.skip("frame does not decode to a response")
    readings = to_readings(response, timestamp=WHEN)
    names = Counter(r.name for r in readings)
    assert all(n for n in names), "every reading has a name"
    assert [n for n, c in names.items() if c > 1] == []
    for r in readings:
        assert r.name != r.key_text
        if (
            isinstance(response, VariableDataResponse)
            and r.key_text.split("/")[2] in IDENTIFICATION_QUANTITIES
        ):
            assert isinstance(r.value, str), (r.key_text, r.value)
