"""Hypothesis round trips for HDLC frames and parameters; fuzzing that may only raise our errors."""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from meterbridge.errors import ProtocolError
from meterbridge.protocols.hdlc import (
    NEED_DATA,
    FrameKind,
    HdlcAddress,
    HdlcConnection,
    HdlcFrame,
    HdlcParameters,
    HdlcStream,
    Role,
    fcs16,
    fcs16_table,
)

SETTINGS = settings(max_examples=200, deadline=None)

addresses = st.one_of(
    st.builds(HdlcAddress, st.integers(0, 0x7F)),
    st.builds(HdlcAddress, st.integers(0, 0x7F), st.integers(0, 0x7F), st.just(2)),
    st.builds(HdlcAddress, st.integers(0, 0x3FFF), st.integers(0, 0x3FFF), st.just(4)),
)


@st.composite
def frames(draw: st.DrawFn) -> HdlcFrame:
    kind = draw(st.sampled_from(list(FrameKind)))
    carries_info = kind in {
        FrameKind.I,
        FrameKind.UI,
        FrameKind.SNRM,
        FrameKind.UA,
        FrameKind.FRMR,
        FrameKind.DM,
    }
    return HdlcFrame(
        kind,
        draw(addresses),
        draw(addresses),
        draw(st.binary(max_size=300)) if carries_info else b"",
        draw(st.booleans()),
        draw(st.integers(0, 7)) if kind is FrameKind.I else 0,
        draw(st.integers(0, 7)) if kind.acknowledges else 0,
        draw(st.booleans()) if kind in {FrameKind.I, FrameKind.UI} else False,
    )


@SETTINGS
@given(frames())
def test_frame_round_trip(frame: HdlcFrame) -> None:
    wire = frame.encode()
    assert len(wire) == frame.length + 2
    assert HdlcFrame.decode(wire) == frame


@SETTINGS
@given(st.lists(frames(), min_size=1, max_size=5), st.integers(1, 64), st.booleans(), st.binary(max_size=20))
def test_stream_round_trip(batch: list[HdlcFrame], chunk: int, share_flags: bool, noise: bytes) -> None:
    noise = noise.replace(b"\x7e", b"")  # noise without flags can never make a frame
    wires = [f.encode() for f in batch]
    data = noise + (wires[0] + b"".join(w[1:] for w in wires[1:]) if share_flags else b"".join(wires)) + noise
    stream = HdlcStream()
    got: list[HdlcFrame] = []
    errors: list[ProtocolError] = []
    for i in range(0, len(data), chunk):
        stream.receive_data(data[i : i + chunk])
        while True:
            try:
                event = stream.next_event()
            except ProtocolError as exc:  # trailing noise after a closing flag may look like a frame start
                errors.append(exc)
                continue
            if event is NEED_DATA:
                break
            got.append(event)
    stream.receive_data(b"")
    try:
        assert stream.next_event() is NEED_DATA
    except ProtocolError as exc:
        errors.append(exc)
    assert got == batch
    trailing_start = len(data) - len(noise)
    assert all(e.offset is not None and e.offset >= trailing_start - 1 for e in errors)
    assert len(noise) <= stream.skipped <= 2 * len(noise)


@SETTINGS
@given(
    st.builds(
        HdlcParameters, st.integers(1, 2030), st.integers(1, 2030), st.integers(1, 7), st.integers(1, 7)
    )
)
def test_parameters_round_trip(params: HdlcParameters) -> None:
    assert HdlcParameters.decode(params.encode()) == params


@SETTINGS
@given(st.binary(max_size=600), st.integers(0, 600), st.integers(0, 600))
def test_fast_fcs_equals_the_table_fcs(data: bytes, start: int, end: int) -> None:
    assert fcs16(data) == fcs16_table(data)
    assert (
        fcs16(bytearray(data), start, end)
        == fcs16_table(data, start, end)
        == fcs16(memoryview(data)[start:end])
    )


@SETTINGS
@given(st.binary(max_size=300))
def test_fuzz_frame_decode(data: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        HdlcFrame.decode(data)


@SETTINGS
@given(frames(), st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=4))
def test_fuzz_corrupted_frames_never_decode_to_a_different_frame(
    frame: HdlcFrame, flips: list[tuple[int, int]]
) -> None:
    wire = bytearray(frame.encode())
    for at, value in flips:
        wire[at % len(wire)] = value
    try:
        decoded = HdlcFrame.decode(bytes(wire))
    except ProtocolError:
        return
    # CRC-16 can in principle collide; a collision must still be self-consistent
    assert decoded.encode() == bytes(wire)


@SETTINGS
@given(st.lists(st.binary(max_size=80), max_size=8))
def test_fuzz_stream(chunks: list[bytes]) -> None:
    stream = HdlcStream()
    for chunk in [*(c for c in chunks if c), b""]:
        stream.receive_data(chunk)
        while True:
            try:
                if stream.next_event() is NEED_DATA:
                    break
            except ProtocolError:
                continue


@SETTINGS
@given(st.lists(frames(), max_size=6), st.sampled_from(list(Role)))
def test_fuzz_connection_with_arbitrary_frames(batch: list[HdlcFrame], role: Role) -> None:
    client = HdlcAddress.client(16)
    server = HdlcAddress.server(1, 17)
    conn = HdlcConnection(role, client_address=client, server_address=server)
    if role is Role.CLIENT:
        conn.connect()
    for frame in batch:
        # aim most frames at this station so that the state machine sees them
        own, peer = (client, server) if role is Role.CLIENT else (server, client)
        aimed = HdlcFrame(
            frame.kind,
            own,
            peer,
            frame.information,
            frame.poll_final,
            frame.send_sequence,
            frame.receive_sequence,
            frame.segmented,
        )
        conn.receive_data(aimed.encode())
        while True:
            try:
                if conn.next_event() is NEED_DATA:
                    break
            except ProtocolError:
                continue
        conn.data_to_send()
