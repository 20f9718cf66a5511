from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from meterbridge.obis import CATALOGUE, ObisCode, lookup
from meterbridge.readings import Quality, Reading


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("1-0:1.8.0.255", "1-0:1.8.0.255"),
        ("1-0:1.8.0*255", "1-0:1.8.0.255"),
        ("1-0:1.8.0&01", "1-0:1.8.0.1"),
        ("1-0:1.8.0", "1-0:1.8.0.255"),
        ("1.0.1.8.0.255", "1-0:1.8.0.255"),
        ("1.8.0", "1-0:1.8.0.255"),
        ("1.8.0*02", "1-0:1.8.0.2"),
        ("32.7", "1-0:32.7.0.255"),
        ("C.1.0", "0-0:96.1.0.255"),
        ("F.F", "0-0:97.97.0.255"),
        ("1.8.0.255.2.255", "1-0:1.8.0.255"),
        ("32.7.0.255.2.255", "1-0:32.7.0.255"),
        ("0100010800FF", "1-0:1.8.0.255"),
        (" 1-1:2.8.0.255 ", "1-1:2.8.0.255"),
        ("0-0:C.1.0", "0-0:96.1.0.255"),
    ],
)
def test_parse_every_notation(text: str, canonical: str) -> None:
    code = ObisCode.parse(text)
    assert str(code) == canonical
    assert ObisCode.parse(str(code)) == code


@pytest.mark.parametrize(
    "text", ["", "1-0:", "1-0:1.8.0.256", "abc", "1.2.3.4.5.6.7", "1.8.0*x", "G.1.0", "1"]
)
def test_parse_rejects_with_the_input_named(text: str) -> None:
    with pytest.raises(ValueError, match="OBIS"):
        ObisCode.parse(text)


def test_bytes_round_trip_and_short_form() -> None:
    code = ObisCode.parse("1-0:1.8.0.255")
    assert bytes(code) == bytes.fromhex("0100010800FF")
    assert ObisCode.from_bytes(bytes(code)) == code
    assert ObisCode.parse("C.1.0").short == "C.1.0"
    assert code.short == "1.8.0"


def test_catalogue_covers_the_guide_table() -> None:
    for text in [
        "1.8.0",
        "1.8.1",
        "1.8.2",
        "2.8.0",
        "3.8.0",
        "4.8.0",
        "9.8.0",
        "16.7.0",
        "1.7.0",
        "2.7.0",
        "36.7.0",
        "56.7.0",
        "32.7.0",
        "52.7.0",
        "72.7.0",
        "31.7.0",
        "51.7.0",
        "71.7.0",
        "14.7.0",
        "13.7.0",
        "32.7.124",
        "31.7.124",
    ]:
        assert ObisCode.parse(text) in CATALOGUE, text
    volt = lookup("1-0:32.7.0.255")
    assert (
        volt is not None and volt.plausible == (Decimal(0), Decimal(300)) and volt.device_class == "voltage"
    )
    assert lookup("1-1:1.8.0.255") is lookup("1-0:1.8.0.255")  # E450 pushes use channel 1
    apparent = lookup("9.8.0")
    assert apparent is not None and apparent.device_class is None  # HA has no apparent-energy class
    reactive = lookup("3.8.0")
    assert reactive is not None and reactive.device_class == "reactive_energy" and reactive.unit == "varh"
    pf = lookup("power_factor")
    assert pf is not None and pf.expected[0] == Decimal("0.9")


def test_reading_is_frozen_and_needs_aware_time() -> None:
    now = datetime(2026, 5, 4, 11, 39, 21, tzinfo=UTC)
    r = Reading("LGZ1", ObisCode.parse("1.8.0"), 482939, "Wh", now)
    with pytest.raises(AttributeError):
        r.value = 1  # type: ignore[misc]
    assert r.obis == ObisCode.parse("1.8.0") and r.ok
    flagged = r.flagged(Quality.UNAUTHENTICATED | Quality.OUT_OF_RANGE)
    assert flagged.quality.names == ["unauthenticated", "out_of_range"] and not flagged.ok
    assert Quality.from_names(flagged.quality.names) == flagged.quality
    with pytest.raises(ValueError, match="timezone"):
        Reading("LGZ1", "x", 1, None, datetime(2026, 1, 1))
