"""The one-pass decoder of whole frames (``_plain_frame``) gives what the general path gives, or steps aside.

``HdlcStream`` tries ``_plain_frame`` when a whole frame is buffered and falls back to the
general path (``_parse_header`` / ``_check_hcs`` / ``_from_checked``) when it answers ``None``.
These tests hold it to that: on valid frames the same frame, on damaged ones ``None`` (never a
different frame), and a stream decodes the same frames and raises the same errors either way.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from meterbridge.errors import ProtocolError
from meterbridge.protocols.hdlc import NEED_DATA, FrameKind, HdlcAddress, HdlcFrame, HdlcStream
from meterbridge.protocols.hdlc import stream as stream_module
from meterbridge.protocols.hdlc.frames import _plain_frame

SETTINGS = settings(max_examples=200, deadline=None)

addresses = st.one_of(
    st.builds(HdlcAddress, st.integers(0, 0x7F)),
    st.builds(HdlcAddress, st.integers(0, 0x7F), st.integers(0, 0x7F), st.just(2)),
    st.builds(HdlcAddress, st.integers(0, 0x3FFF), st.integers(0, 0x3FFF), st.just(4)),
)
_INFO = (FrameKind.I, FrameKind.UI, FrameKind.SNRM, FrameKind.UA, FrameKind.FRMR, FrameKind.DM)


@st.composite
def frames(draw: st.DrawFn) -> HdlcFrame:
    kind = draw(st.sampled_from(list(FrameKind)))
    return HdlcFrame(
        kind,
        draw(addresses),
        draw(addresses),
        draw(st.binary(max_size=200)) if kind in _INFO else b"",
        draw(st.booleans()),
        draw(st.integers(0, 7)) if kind is FrameKind.I else 0,
        draw(st.integers(0, 7)) if kind.acknowledges else 0,
        draw(st.booleans()) if kind in (FrameKind.I, FrameKind.UI) else False,
    )


def _general(wire: bytes) -> HdlcFrame | ProtocolError:
    try:
        return HdlcFrame.decode(wire)
    except ProtocolError as exc:
        return exc


@SETTINGS
@given(frames())
def test_valid_frame_same_as_general_path(frame: HdlcFrame) -> None:
    wire = frame.encode()
    HdlcFrame.decode(
        wire
    )  # the general path has seen the addresses (the one-pass decoder only looks them up)
    found = _plain_frame(bytearray(wire), 0, len(wire) - 1)
    if frame.destination.size == 4 or frame.source.size == 4:
        assert found is None
    else:
        assert found == frame and found.information == frame.information


@SETTINGS
@given(frames(), st.data())
def test_damaged_frame_is_left_to_the_general_path(frame: HdlcFrame, data: st.DataObject) -> None:
    wire = bytearray(frame.encode())
    HdlcFrame.decode(bytes(wire))
    at = data.draw(st.integers(1, len(wire) - 2), label="at")
    wire[at] ^= data.draw(st.integers(1, 255), label="flip")
    found = _plain_frame(wire, 0, len(wire) - 1)
    general = _general(bytes(wire))
    if found is not None:  # only a frame the general path decodes the same (e.g. another N(S))
        assert found == general
    else:
        assert isinstance(general, ProtocolError) or frame.destination.size == 4 or frame.source.size == 4


@SETTINGS
@given(
    st.lists(st.one_of(frames().map(HdlcFrame.encode), st.binary(max_size=40)), max_size=6),
    st.integers(1, 50),
)
def test_stream_same_with_and_without_the_one_pass_decoder(parts: list[bytes], chunk: int) -> None:
    data = b"".join(parts)

    def run() -> list[object]:
        stream = HdlcStream()
        out: list[object] = []
        for i in range(0, len(data) + 1, chunk):
            stream.receive_data(data[i : i + chunk])  # the last piece is b"": the line closes
            while True:
                try:
                    event = stream.next_event()
                except ProtocolError as exc:
                    out.append((type(exc), str(exc), exc.offset))
                    continue
                if event is NEED_DATA:
                    break
                out.append(event)
        out.append(stream.skipped)
        return out

    with_fast = run()
    original = stream_module._plain_frame
    stream_module._plain_frame = lambda buf, start, close: None  # type: ignore[assignment]
    try:
        without = run()
    finally:
        stream_module._plain_frame = original
    assert with_fast == without
