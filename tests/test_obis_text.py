"""``str(ObisCode)`` (built from a table of group texts) is the canonical A-B:C.D.E.F and parses back."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from meterbridge.obis import ObisCode

groups = st.integers(0, 255)


@settings(max_examples=200, deadline=None)
@given(groups, groups, groups, groups, groups, groups)
def test_text_is_canonical_and_parses_back(a: int, b: int, c: int, d: int, e: int, f: int) -> None:
    code = ObisCode(a, b, c, d, e, f)
    assert str(code) == "%d-%d:%d.%d.%d.%d" % (a, b, c, d, e, f)  # noqa: UP031 - an independent formula
    assert ObisCode.parse(str(code)) == code and repr(code) == f"ObisCode('{code}')"
