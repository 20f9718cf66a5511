"""The IEC 62056-47 wrapper: TCP stream and UDP datagrams, both directions."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meterbridge.errors import FramingError, LocalProtocolError, ProtocolError, UnsupportedError
from meterbridge.protocols.dlms.wrapper import DLMS_PORT, HEADER_SIZE, WrapperFrame, WrapperStream
from meterbridge.protocols.events import NEED_DATA

# AARQ from client wPort 16 to server wPort 1, as head-end traces show it.
AARQ = bytes.fromhex("601DA109060760857405080101BE10040E01000000065F1F0400001E1DFFFF")
AARQ_WRAPPED = bytes.fromhex("00010010000100") + bytes((len(AARQ),)) + AARQ


def test_encode_and_decode_datagram() -> None:
    frame = WrapperFrame(source=16, destination=1, data=AARQ)
    assert frame.encode() == AARQ_WRAPPED
    assert WrapperFrame.decode(AARQ_WRAPPED) == frame
    assert DLMS_PORT == 4059
    assert HEADER_SIZE == 8


@pytest.mark.parametrize(
    ("datagram", "error", "match"),
    [
        (AARQ_WRAPPED[:5], FramingError, "shorter than the 8-byte header"),
        (b"\x00\x02" + AARQ_WRAPPED[2:], UnsupportedError, "version 0x0001 expected, found 0x0002"),
        (AARQ_WRAPPED[:-1], FramingError, "length field says 31 bytes, the datagram holds 30"),
        (AARQ_WRAPPED + b"\x00", FramingError, "holds 32"),
    ],
)
def test_bad_datagrams(datagram: bytes, error: type[ProtocolError], match: str) -> None:
    with pytest.raises(error, match=match):
        WrapperFrame.decode(datagram)


@pytest.mark.parametrize("chunk", [1000, 1, 5])
def test_stream_whole_byte_by_byte_and_in_chunks(chunk: int) -> None:
    frames = [WrapperFrame(16, 1, AARQ), WrapperFrame(1, 16, b"\x61\x00"), WrapperFrame(1, 16, b"")]
    data = b"".join(f.encode() for f in frames)
    stream = WrapperStream()
    got = []
    for i in range(0, len(data), chunk):
        stream.receive_data(data[i : i + chunk])
        while (event := stream.next_event()) is not NEED_DATA:
            got.append(event)
    stream.receive_data(b"")
    assert stream.next_event() is NEED_DATA
    assert got == frames


def test_stream_with_trailing_garbage_fails_at_the_right_offset() -> None:
    stream = WrapperStream()
    stream.receive_data(AARQ_WRAPPED + b"\x12\x34\x00\x10\x00\x01\x00\x00")
    assert stream.next_event() == WrapperFrame(16, 1, AARQ)
    with pytest.raises(UnsupportedError) as info:
        stream.next_event()
    assert info.value.offset == len(AARQ_WRAPPED)
    with pytest.raises(UnsupportedError):  # stays failed: a TCP stream cannot resynchronise
        stream.next_event()


def test_stream_closed_inside_a_frame() -> None:
    stream = WrapperStream()
    stream.receive_data(AARQ_WRAPPED[:12])
    assert stream.next_event() is NEED_DATA
    assert stream.buffered == 12
    stream.receive_data(b"")
    with pytest.raises(FramingError, match="closed inside a frame"):
        stream.next_event()
    with pytest.raises(LocalProtocolError):
        stream.receive_data(b"\x00")


def test_stream_length_limit() -> None:
    stream = WrapperStream(max_length=16)
    stream.receive_data(AARQ_WRAPPED[:8])
    with pytest.raises(FramingError, match="exceeds the limit of 16") as info:
        stream.next_event()
    assert info.value.offset == 6


def test_frame_validation() -> None:
    with pytest.raises(ValueError, match="wPort"):
        WrapperFrame(70000, 1, b"")
    with pytest.raises(ValueError, match="16-bit"):
        WrapperFrame(1, 1, bytes(0x10000))
    assert WrapperFrame(1, 1, bytearray(b"x")).data == b"x"


wrapper_frames = st.builds(
    WrapperFrame, st.integers(0, 0xFFFF), st.integers(0, 0xFFFF), st.binary(max_size=600)
)


@settings(max_examples=200, deadline=None)
@given(wrapper_frames)
def test_datagram_round_trip(frame: WrapperFrame) -> None:
    assert WrapperFrame.decode(frame.encode()) == frame


@settings(max_examples=100, deadline=None)
@given(st.lists(wrapper_frames, max_size=5), st.integers(1, 50))
def test_stream_round_trip(frames: list[WrapperFrame], chunk: int) -> None:
    data = b"".join(f.encode() for f in frames)
    stream = WrapperStream()
    got = []
    for i in range(0, len(data), chunk):
        stream.receive_data(data[i : i + chunk])
        while (event := stream.next_event()) is not NEED_DATA:
            got.append(event)
    assert got == frames


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40))
def test_fuzz_datagram(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        WrapperFrame.decode(data)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=30), max_size=6))
def test_fuzz_stream(chunks: list[bytes]) -> None:
    stream = WrapperStream()
    try:
        for chunk in [*chunks, b""]:
            stream.receive_data(chunk)
            while stream.next_event() is not NEED_DATA:
                pass
    except ProtocolError:
        pass
