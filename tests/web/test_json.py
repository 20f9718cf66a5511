"""The dashboard's JSON encoder: compact, exact, and never invalid JSON."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from meterbridge.web.app import json_bytes


def test_compact_and_read_back_exactly() -> None:
    data = {
        "t": [1_700_000_000_000, 1_700_000_087_000],
        "avg": [229.873333, 1e-7],
        "name": "Spannung L1 °",
        "x": None,
    }
    assert json.loads(json_bytes(data)) == data
    assert b" " not in json_bytes({"a": [1, 2], "b": {"c": None}})  # compact: no separators padded


def test_what_orjson_refuses_goes_through_the_standard_library() -> None:
    assert json.loads(json_bytes({"v": 2**70})) == {"v": 2**70}


def test_nan_never_reaches_the_browser() -> None:
    assert json_bytes([float("nan"), float("inf")]) == b"[null,null]"


def test_a_type_neither_encoder_knows_is_an_error() -> None:
    with pytest.raises(TypeError):
        json_bytes({"v": Decimal("1.5")})
