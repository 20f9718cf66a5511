"""``axdr.decode_structure`` (the push decoder's path past a known object list) reads as ``decode_data`` does.

Same structure, same end offset, and on cut or damaged input the same error class and offset,
whether the first elements are given already decoded or not. Every cut of each input is tried.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from meterbridge.errors import ProtocolError
from meterbridge.protocols.dlms.axdr import Data, decode_data, decode_length, decode_structure, encode_data

from .test_axdr import values


def _outcome(fn: object) -> object:
    try:
        return fn()  # type: ignore[operator]
    except ProtocolError as exc:
        return (type(exc), exc.offset)


@settings(max_examples=100, deadline=None)
@given(st.lists(values, min_size=1, max_size=6), st.data())
def test_same_as_decode_data(items: list[Data], data: st.DataObject) -> None:
    wire = bytearray(encode_data(Data.structure(*items)))
    if data.draw(st.booleans(), label="damage") and len(wire) > 2:
        at = data.draw(st.integers(2, len(wire) - 1), label="at")
        wire[at] = data.draw(st.integers(0, 255), label="byte")
    for cut in range(2, len(wire) + 1):
        raw = bytes(wire[:cut])
        count, start = decode_length(raw, 1)
        expected = _outcome(lambda: decode_data(raw, 0))  # noqa: B023 - called right here
        assert _outcome(lambda: decode_structure(raw, start, count)) == expected  # noqa: B023
        if not isinstance(expected[0], Data):  # type: ignore[index]
            continue
        # with the first element given decoded (as the push decoder does with a known object list)
        whole = expected[0]  # type: ignore[index]
        assert isinstance(whole.value, tuple)
        _, after_first = decode_data(raw, start)
        assert decode_structure(raw, after_first, count, whole.value[:1]) == expected
