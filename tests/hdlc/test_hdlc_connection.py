"""Client and server HdlcConnection talking to each other in memory."""

from __future__ import annotations

import pytest

from meterbridge.errors import ChecksumError, FramingError, LocalProtocolError, ProtocolError
from meterbridge.protocols.hdlc import (
    NEED_DATA,
    TRANSITIONS,
    Connected,
    DataReceived,
    Disconnected,
    FrameKind,
    FrameRejected,
    HdlcAddress,
    HdlcConnection,
    HdlcEvent,
    HdlcFrame,
    HdlcParameters,
    HdlcStream,
    LinkState,
    Role,
    UnnumberedReceived,
)

CLIENT = HdlcAddress.client(16)
SERVER = HdlcAddress.server(1, 17)


def pair(
    client_params: HdlcParameters | None = None, server_params: HdlcParameters | None = None
) -> tuple[HdlcConnection, HdlcConnection]:
    client = HdlcConnection(
        Role.CLIENT, client_address=CLIENT, server_address=SERVER, parameters=client_params
    )
    server = HdlcConnection(
        Role.SERVER, client_address=CLIENT, server_address=SERVER, parameters=server_params
    )
    return client, server


def events(conn: HdlcConnection) -> list[HdlcEvent]:
    out: list[HdlcEvent] = []
    while (event := conn.next_event()) is not NEED_DATA:
        out.append(event)
    return out


def frames_of(wire: bytes) -> list[HdlcFrame]:
    stream = HdlcStream()
    stream.receive_data(wire)
    out: list[HdlcFrame] = []
    while (frame := stream.next_event()) is not NEED_DATA:
        out.append(frame)
    return out


class Wire:
    """Moves bytes between two connections, keeping what each sent, until both are quiet."""

    def __init__(self, client: HdlcConnection, server: HdlcConnection) -> None:
        self.client, self.server = client, server
        self.log: list[tuple[str, HdlcFrame]] = []
        self.client_events: list[HdlcEvent] = []
        self.server_events: list[HdlcEvent] = []

    def pump(self) -> None:
        for _ in range(1000):
            up = self.client.data_to_send()
            down = self.server.data_to_send()
            if not up and not down:
                return
            self.log += [("C", f) for f in frames_of(up)] + [("S", f) for f in frames_of(down)]
            if up:
                self.server.receive_data(up)
            if down:
                self.client.receive_data(down)
            self.server_events += events(self.server)
            self.client_events += events(self.client)
        raise AssertionError("the link never went quiet")


def connected_pair(
    client_params: HdlcParameters | None = None, server_params: HdlcParameters | None = None
) -> tuple[HdlcConnection, HdlcConnection, Wire]:
    client, server = pair(client_params, server_params)
    wire = Wire(client, server)
    client.connect()
    wire.pump()
    assert client.state is server.state is LinkState.CONNECTED
    wire.client_events.clear()
    wire.server_events.clear()
    wire.log.clear()
    return client, server, wire


def test_snrm_ua_negotiation() -> None:
    client, server = pair(
        HdlcParameters(max_info_tx=256, max_info_rx=512, window_tx=1, window_rx=1),
        HdlcParameters(max_info_tx=128, max_info_rx=1024, window_tx=1, window_rx=1),
    )
    wire = Wire(client, server)
    client.connect()
    assert client.state is LinkState.CONNECTING
    wire.pump()
    snrm, ua = wire.log
    assert snrm == ("C", HdlcFrame(FrameKind.SNRM, SERVER, CLIENT, snrm[1].information))
    assert HdlcParameters.decode(snrm[1].information) == HdlcParameters(256, 512, 1, 1)
    assert ua[0] == "S"
    assert ua[1].kind is FrameKind.UA
    # the server may send 128 (its limit) and receive 256 (what the client sends at most)
    assert HdlcParameters.decode(ua[1].information) == HdlcParameters(128, 256, 1, 1)
    assert wire.server_events == [Connected(HdlcParameters(128, 256, 1, 1))]
    assert wire.client_events == [Connected(HdlcParameters(256, 128, 1, 1))]
    assert client.negotiated == HdlcParameters(256, 128, 1, 1)


def test_request_response_and_llc() -> None:
    client, server, wire = connected_pair()
    client.send_data(b"\x60\x1d")  # an AARQ, say
    wire.pump()
    assert wire.server_events == [DataReceived(b"\x60\x1d")]
    ((who, frame),) = wire.log
    assert (who, frame.kind, frame.information, frame.send_sequence, frame.receive_sequence) == (
        "C",
        FrameKind.I,
        b"\xe6\xe6\x00\x60\x1d",
        0,
        0,
    )
    server.send_data(b"\x61\x29")
    wire.pump()
    assert wire.client_events == [DataReceived(b"\x61\x29")]
    frame = wire.log[-1][1]
    assert frame.information[:3] == b"\xe6\xe7\x00"
    assert (frame.send_sequence, frame.receive_sequence, frame.control) == (0, 1, 0x30)  # as the AARE vector
    for n in range(10):  # sequence numbers wrap modulo 8
        client.send_data(bytes([n]))
        wire.pump()
        server.send_data(bytes([n, n]))
        wire.pump()
    assert wire.server_events[-1] == DataReceived(bytes([9]))
    assert wire.client_events[-1] == DataReceived(bytes([9, 9]))
    assert not client.busy


def test_segmented_both_ways_with_rr() -> None:
    client, server, wire = connected_pair(HdlcParameters(max_info_tx=32, max_info_rx=48))
    request = bytes(range(100))
    client.send_data(request)
    wire.pump()
    assert wire.server_events == [DataReceived(request)]
    kinds = [(who, f.kind, f.segmented) for who, f in wire.log]
    # 103 bytes with LLC in 32-byte segments: 4 I frames, 3 acknowledged by RR
    assert kinds == [
        ("C", FrameKind.I, True),
        ("S", FrameKind.RR, False),
        ("C", FrameKind.I, True),
        ("S", FrameKind.RR, False),
        ("C", FrameKind.I, True),
        ("S", FrameKind.RR, False),
        ("C", FrameKind.I, False),
    ]
    assert all(len(f.information) <= 32 for _, f in wire.log)
    wire.log.clear()
    response = bytes(range(256)) * 2
    server.send_data(response)
    wire.pump()
    assert wire.client_events == [DataReceived(response)]
    sizes = [len(f.information) for who, f in wire.log if who == "S"]
    assert sizes == [48] * 10 + [515 - 480]
    assert sum(1 for who, f in wire.log if who == "C" and f.kind is FrameKind.RR) == 10


def test_window_of_three() -> None:
    params = HdlcParameters(max_info_tx=16, max_info_rx=16, window_tx=3, window_rx=3)
    client, server, wire = connected_pair(params, params)
    assert client.negotiated == params
    message = bytes(range(200))
    client.send_data(message)
    first_burst = frames_of(client.data_to_send())
    assert [f.poll_final for f in first_burst] == [False, False, True]
    server.receive_data(b"".join(f.encode() for f in first_burst))
    assert events(server) == []
    wire.pump()
    assert wire.server_events == [DataReceived(message)]
    server.send_data(message)
    wire.pump()
    assert wire.client_events == [DataReceived(message)]


def test_disc_ua() -> None:
    client, server, wire = connected_pair()
    client.disconnect()
    assert client.state is LinkState.DISCONNECTING
    wire.pump()
    assert [f.kind for _, f in wire.log] == [FrameKind.DISC, FrameKind.UA]
    assert wire.client_events == [Disconnected(FrameKind.UA)]
    assert wire.server_events == [Disconnected(FrameKind.DISC)]
    assert client.state is server.state is LinkState.NDM
    # DISC again: the server is not connected and answers DM
    client.disconnect()
    wire.pump()
    assert wire.log[-1][1].kind is FrameKind.DM
    assert wire.client_events[-1] == Disconnected(FrameKind.DM)


def test_server_answers_dm_when_not_connected() -> None:
    client, server = pair()
    server.receive_data(HdlcFrame(FrameKind.I, SERVER, CLIENT, b"\xe6\xe6\x00\x01").encode())
    assert events(server) == []
    (dm,) = frames_of(server.data_to_send())
    assert (dm.kind, dm.destination, dm.source) == (FrameKind.DM, CLIENT, SERVER)
    # a client that is connecting and gets DM is refused
    client.connect()
    client.receive_data(dm.encode())
    assert events(client) == [Disconnected(FrameKind.DM)]
    assert client.state is LinkState.NDM


def test_lost_response_is_recovered_by_poll() -> None:
    client, server, wire = connected_pair()
    client.send_data(b"\xc0\x01")
    server.receive_data(client.data_to_send())
    assert events(server) == [DataReceived(b"\xc0\x01")]
    server.send_data(b"\xc4\x01")
    server.data_to_send()  # lost on the line
    client.poll()  # after the client's timeout
    wire.pump()
    assert wire.client_events == [DataReceived(b"\xc4\x01")]
    assert [f.kind for _, f in wire.log] == [FrameKind.RR, FrameKind.I]


def test_corrupt_response_then_poll_gives_the_right_value() -> None:
    client, server, wire = connected_pair()
    client.send_data(b"\xc0\x01")
    server.receive_data(client.data_to_send())
    events(server)
    server.send_data(b"\xc4\x01\x00\x12\x34")
    bad = bytearray(server.data_to_send())
    bad[-4] ^= 0x10
    client.receive_data(bytes(bad))
    with pytest.raises(ChecksumError, match="FCS"):
        client.next_event()
    assert client.state is LinkState.CONNECTED
    assert events(client) == []
    client.poll()
    wire.pump()
    assert wire.client_events == [DataReceived(b"\xc4\x01\x00\x12\x34")]


def test_lost_request_is_sent_again_after_poll() -> None:
    client, _server, wire = connected_pair()
    client.send_data(b"\xc0\x01")
    client.data_to_send()  # lost
    client.poll()
    wire.pump()  # RR(P) -> server RR(N(R)=0) -> client repeats I(0)
    assert [f.kind for _, f in wire.log] == [FrameKind.RR, FrameKind.RR, FrameKind.I]
    assert wire.server_events == [DataReceived(b"\xc0\x01")]


def test_repeated_request_makes_server_repeat_its_answer() -> None:
    client, server, _wire = connected_pair()
    client.send_data(b"\x01")
    request = client.data_to_send()
    server.receive_data(request)
    assert events(server) == [DataReceived(b"\x01")]
    server.send_data(b"\x02")
    server.data_to_send()  # lost
    server.receive_data(request)  # the client repeats its frame
    assert events(server) == []  # not delivered twice
    client.receive_data(server.data_to_send())
    assert events(client) == [DataReceived(b"\x02")]


def test_rnr_holds_segments_until_rr() -> None:
    client, _server, _ = connected_pair(HdlcParameters(max_info_tx=8))
    client.send_data(bytes(30))
    first = frames_of(client.data_to_send())
    assert len(first) == 1
    client.receive_data(HdlcFrame(FrameKind.RNR, CLIENT, SERVER, receive_sequence=1).encode())
    assert events(client) == []
    assert client.data_to_send() == b""
    client.receive_data(HdlcFrame(FrameKind.RR, CLIENT, SERVER, receive_sequence=1).encode())
    events(client)
    (second,) = frames_of(client.data_to_send())
    assert second.send_sequence == 1


def test_frmr_is_reported() -> None:
    client, _, _ = connected_pair()
    client.receive_data(HdlcFrame(FrameKind.FRMR, CLIENT, SERVER, b"\x10\x00\x01").encode())
    assert events(client) == [FrameRejected(b"\x10\x00\x01")]


def test_ui_frames_in_any_state_and_addressing() -> None:
    client, server = pair()
    server.send_unnumbered(b"\xe6\xe7\x00\x0f")
    client.receive_data(server.data_to_send())
    (event,) = events(client)
    assert isinstance(event, UnnumberedReceived)
    assert event.frame.payload == b"\x0f"
    # broadcast UI reaches the server, UI for another station does not
    client.send_unnumbered(b"x", destination=HdlcAddress.server(0x7F))
    client.send_unnumbered(b"y", destination=HdlcAddress.server(2, 17))
    server.receive_data(client.data_to_send())
    assert [e.frame.information for e in events(server) if isinstance(e, UnnumberedReceived)] == [b"x"]
    assert server.ignored == 1


def test_frames_for_other_stations_are_ignored() -> None:
    client, _, _ = connected_pair()
    other = HdlcAddress.server(1, 18)
    client.receive_data(HdlcFrame(FrameKind.I, CLIENT, other, b"\xe6\xe7\x00\x01").encode())
    assert events(client) == []
    assert client.ignored == 1


def test_unexpected_frame_moves_to_error_and_connect_recovers() -> None:
    client, _server, wire = connected_pair()
    client.receive_data(HdlcFrame(FrameKind.SNRM, CLIENT, SERVER).encode())
    with pytest.raises(ProtocolError, match="SNRM frame not allowed in state connected"):
        client.next_event()
    assert client.state is LinkState.ERROR
    with pytest.raises(LocalProtocolError, match="cannot send I in state error"):
        client.send_data(b"\x01")
    client.connect()
    wire.pump()
    assert client.state is LinkState.CONNECTED


def test_bad_nr_is_a_protocol_error() -> None:
    client, _, _ = connected_pair()
    client.receive_data(HdlcFrame(FrameKind.RR, CLIENT, SERVER, receive_sequence=5).encode())
    with pytest.raises(ProtocolError, match=r"N\(R\)=5"):
        client.next_event()
    assert client.state is LinkState.ERROR


def test_wrong_llc_is_a_framing_error() -> None:
    client, _, _ = connected_pair()
    client.receive_data(HdlcFrame(FrameKind.I, CLIENT, SERVER, b"\xe6\xe6\x00\x01").encode())
    with pytest.raises(FramingError, match="LLC header E6 E7 00 expected, found E6 E6 00"):
        client.next_event()


def test_reassembly_limit() -> None:
    client = HdlcConnection(Role.CLIENT, client_address=CLIENT, server_address=SERVER, max_message=100)
    server = HdlcConnection(Role.SERVER, client_address=CLIENT, server_address=SERVER)
    wire = Wire(client, server)
    client.connect()
    wire.pump()
    server.send_data(bytes(300))
    with pytest.raises(FramingError, match="exceeds 100 bytes"):
        wire.pump()


def test_local_misuse() -> None:
    client, server = pair()
    with pytest.raises(LocalProtocolError, match="client role"):
        server.connect()
    with pytest.raises(LocalProtocolError, match="cannot send I in state NDM"):
        client.send_data(b"x")
    client, server, _ = connected_pair()
    client.llc = False
    with pytest.raises(LocalProtocolError, match="at least one byte"):
        client.send_data(b"")


def test_snrm_repeat_and_duplicate_ua() -> None:
    client, server = pair()
    client.connect()
    snrm = client.data_to_send()
    client.connect()  # timeout: SNRM again
    assert client.data_to_send() == snrm
    server.receive_data(snrm + snrm)
    assert events(server) == [Connected(HdlcParameters()), Connected(HdlcParameters())]
    client.receive_data(server.data_to_send())  # two UAs
    assert events(client) == [Connected(HdlcParameters())]
    assert client.state is LinkState.CONNECTED


def test_transition_table_covers_every_state_of_each_role() -> None:
    for role in Role:
        states = {state for (r, state) in TRANSITIONS if r is role}
        expected = (
            set(LinkState) if role is Role.CLIENT else {LinkState.NDM, LinkState.CONNECTED, LinkState.ERROR}
        )
        assert states == expected


def test_out_of_sequence_i_frame_is_dropped_and_answered_with_rr() -> None:
    _, server, _ = connected_pair()
    server.receive_data(HdlcFrame(FrameKind.I, SERVER, CLIENT, b"\xe6\xe6\x00\x01", send_sequence=3).encode())
    assert events(server) == []
    (rr,) = frames_of(server.data_to_send())
    assert (rr.kind, rr.receive_sequence, rr.poll_final) == (FrameKind.RR, 0, True)


def test_without_llc() -> None:
    client = HdlcConnection(Role.CLIENT, client_address=CLIENT, server_address=SERVER, llc=False)
    server = HdlcConnection(Role.SERVER, client_address=CLIENT, server_address=SERVER, llc=False)
    wire = Wire(client, server)
    client.connect()
    wire.pump()
    client.send_data(b"\x01\x02")
    wire.pump()
    assert wire.server_events[-1] == DataReceived(b"\x01\x02")
    assert wire.log[-1][1].information == b"\x01\x02"
