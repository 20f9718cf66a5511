"""The E450 as a G3-PLC meter behind the IEC 62056-47 wrapper, over real TCP and UDP sockets.

The head-end side is the codecs' client role (``DlmsClient``) with the wrapper codec; the meter
answers with the same ``DlmsServer`` as on its optical port.
"""

from __future__ import annotations

import asyncio
import itertools
from datetime import timedelta

import pytest

from meterbridge.errors import TransportError
from meterbridge.obis import ObisCode
from meterbridge.protocols.dlms.apdu import (
    AttributeDescriptor,
    DataAccessResult,
    ExceptionResponse,
    GetRequestNormal,
    decode_apdu,
)
from meterbridge.protocols.dlms.association import (
    Associated,
    AssociationRejected,
    AuthenticationPending,
    BlockReceived,
    DlmsClient,
    GetResult,
    HlsGmac,
    Lls,
    Released,
)
from meterbridge.protocols.dlms.cosem import ClassId, ScalerUnit, profile_rows, value_of
from meterbridge.protocols.dlms.security import SecurityContext, SecurityKeys
from meterbridge.protocols.dlms.wrapper import DLMS_PORT, WrapperFrame, WrapperStream
from meterbridge.protocols.events import NEED_DATA
from meterbridge.simulator.e450 import MANAGEMENT_CLIENT, E450Simulator
from meterbridge.simulator.e450_cosem import PROFILE_CAPTURE_OBJECTS, REGISTERS
from meterbridge.simulator.e450_model import PROFILE_OBIS
from meterbridge.simulator.e450_wrapper import MANAGEMENT_LOGICAL_DEVICE, WrapperSessions
from meterbridge.simulator.faults import FaultConfig
from meterbridge.transports import (
    FrameRecord,
    LoggedTransport,
    RealClock,
    TcpTransport,
    UdpTransport,
    VirtualClock,
    open_tcp,
    open_udp,
    pipe_pair,
    serve_tcp,
)

PUBLIC = 16
METER = MANAGEMENT_LOGICAL_DEVICE
OB = ObisCode.parse
ENERGY = AttributeDescriptor(ClassId.REGISTER, OB("1-0:1.8.0.255"), 2)
ENERGY_SU = AttributeDescriptor(ClassId.REGISTER, OB("1-0:1.8.0.255"), 3)
VOLTAGE = AttributeDescriptor(ClassId.REGISTER, OB("1-0:32.7.0.255"), 2)
CURRENT = AttributeDescriptor(ClassId.REGISTER, OB("1-0:31.7.0.255"), 2)
NAME = AttributeDescriptor(ClassId.DATA, OB("0-0:42.0.0.255"), 2)
BUFFER = AttributeDescriptor(ClassId.PROFILE_GENERIC, PROFILE_OBIS, 2)


class TcpHeadEnd:
    """A head-end on one wrapper TCP connection: frames out, frames in, long GETs followed."""

    def __init__(self, port: TcpTransport, source: int = PUBLIC, destination: int = METER) -> None:
        self.port = port
        self.source = source
        self.destination = destination
        self.stream = WrapperStream()
        self.blocks = 0

    async def send(self, apdu: bytes) -> None:
        await self.port.write(WrapperFrame(self.source, self.destination, apdu).encode())

    async def frame(self, timeout: float = 5.0) -> WrapperFrame:
        while (frame := self.stream.next_event()) is NEED_DATA:
            self.stream.receive_data(await self.port.read(4096, timeout))
        assert isinstance(frame, WrapperFrame)
        return frame

    async def request(self, client: DlmsClient, apdu: bytes) -> object:
        client.outbox.clear()
        await self.send(apdu)
        while True:
            frame = await self.frame()
            assert (frame.source, frame.destination) == (self.destination, self.source)  # wPorts swapped
            event = client.receive(frame.data)
            if isinstance(event, BlockReceived):
                self.blocks += 1
                await self.send(client.outbox.popleft())
                continue
            return event


def _only(event: object) -> object:
    assert isinstance(event, GetResult), event
    (value,) = event.results
    return value


def _sim(**kwargs: object) -> E450Simulator:
    # the meter has run for six hours: its load profile holds 24 quarter-hour entries
    clock = RealClock()
    return E450Simulator(clock=clock, seed=4, start=clock.now() - timedelta(hours=6), **kwargs)  # type: ignore[arg-type]


async def test_tcp_head_end_associates_gets_with_list_and_blocks_and_releases() -> None:
    sim = _sim()
    async with await serve_tcp(sim.serve_wrapper, "127.0.0.1", 0) as server:
        port = await open_tcp("127.0.0.1", server.port)
        try:
            head = TcpHeadEnd(port)
            client = DlmsClient(max_receive_pdu_size=512)  # public client: no authentication
            assert isinstance(await head.request(client, client.associate()), Associated)

            raw = value_of(_only(await head.request(client, client.get(ENERGY))))  # type: ignore[arg-type]
            su = ScalerUnit.from_data(_only(await head.request(client, client.get(ENERGY_SU))))  # type: ignore[arg-type]
            assert su.symbol == "Wh" and su.scaler == REGISTERS[OB("1-0:1.8.0")].scaler
            assert isinstance(raw, int) and 0 < raw <= sim.model.energies()[OB("1-0:1.8.0")] + 1

            listed = await head.request(
                client, client.get_with_list([(VOLTAGE, None), (CURRENT, None), (NAME, None)])
            )
            assert isinstance(listed, GetResult) and len(listed.results) == 3
            volts, amps, name = (value_of(r) for r in listed.results)  # type: ignore[arg-type]
            assert isinstance(volts, int) and 2000 < volts < 2600  # 0.1 V
            assert isinstance(amps, int) and amps >= 0
            name_text = name.decode() if isinstance(name, bytes) else name
            assert name_text == sim.model.logical_device_name

            buffer = _only(await head.request(client, client.get(BUFFER)))  # with-block: longer than a PDU
            rows = profile_rows(buffer, PROFILE_CAPTURE_OBJECTS)  # type: ignore[arg-type]
            assert len(rows) >= 24 and head.blocks >= 1  # over 512 bytes: GET-request-next for block 2 on
            assert [b.timestamp - a.timestamp for a, b in itertools.pairwise(rows)] == [
                timedelta(minutes=15)
            ] * (len(rows) - 1)

            missing = _only(
                await head.request(client, client.get(AttributeDescriptor(3, OB("1-0:99.99.0"), 2)))
            )
            assert missing is DataAccessResult.OBJECT_UNDEFINED

            assert isinstance(await head.request(client, client.release()), Released)
            # the connection stays; a new association on it works
            again = DlmsClient()
            assert isinstance(await head.request(again, again.associate()), Associated)
            assert isinstance(_only(await head.request(again, again.get(ENERGY))), object)
        finally:
            await port.close()
    assert sim.wrapper_connections == 1


async def test_tcp_lls_client_and_per_client_associations() -> None:
    sim = _sim(dlms_password=b"12345678")
    async with await serve_tcp(sim.serve_wrapper, "127.0.0.1", 0) as server:
        port = await open_tcp("127.0.0.1", server.port)
        try:
            wrong = TcpHeadEnd(port, source=32)
            refused = DlmsClient(authentication=Lls(b"00000000"))
            assert isinstance(await wrong.request(refused, refused.associate()), AssociationRejected)
            bare = DlmsClient()
            assert isinstance(await wrong.request(bare, bare.associate()), AssociationRejected)

            lls = TcpHeadEnd(port, source=1)  # the management client on the same connection
            manager = DlmsClient(authentication=Lls(b"12345678"))
            assert isinstance(await lls.request(manager, manager.associate()), Associated)
            public = TcpHeadEnd(port, source=PUBLIC)
            guest = DlmsClient()
            assert isinstance(await public.request(guest, guest.associate()), Associated)
            # both associations are open at once, each with its own invoke ids
            assert isinstance(_only(await lls.request(manager, manager.get(ENERGY))), object)
            assert isinstance(_only(await public.request(guest, guest.get(ENERGY))), object)

            # a GET without an association (client 48 never sent an AARQ) is refused, not ignored
            stranger = TcpHeadEnd(port, source=48)
            await stranger.send(GetRequestNormal(0xC1, ENERGY).encode())
            reply = await stranger.frame()
            assert reply.data[:1] == bytes((0xD8,))  # exception-response
        finally:
            await port.close()


async def test_tcp_unknown_logical_device_is_dropped_and_a_bad_version_closes_the_connection() -> None:
    sim = _sim()
    async with await serve_tcp(sim.serve_wrapper, "127.0.0.1", 0) as server:
        port = await open_tcp("127.0.0.1", server.port)
        try:
            nobody = TcpHeadEnd(port, destination=7)
            await nobody.send(DlmsClient().associate())
            with pytest.raises(TimeoutError):
                await nobody.frame(timeout=0.3)  # IEC 62056-47: frames for an unknown wPort are discarded
            head = TcpHeadEnd(port)
            client = DlmsClient()
            assert isinstance(await head.request(client, client.associate()), Associated)
            await port.write(bytes.fromhex("0002 0010 0001 0001 00".replace(" ", "")))
            with pytest.raises(TransportError):  # the meter hangs up: a TCP stream cannot resync
                await port.read(4096, 5)
        finally:
            await port.close()
        # the listener is still there for the next head-end
        port = await open_tcp("127.0.0.1", server.port)
        try:
            head = TcpHeadEnd(port)
            client = DlmsClient()
            assert isinstance(await head.request(client, client.associate()), Associated)
        finally:
            await port.close()


async def _udp_request(port: UdpTransport, client: DlmsClient, apdu: bytes, source: int = PUBLIC) -> object:
    client.outbox.clear()
    await port.write(WrapperFrame(source, METER, apdu).encode())
    while True:
        frame = WrapperFrame.decode(await port.read_datagram(5))  # one datagram, one frame
        assert (frame.source, frame.destination) == (METER, source)
        event = client.receive(frame.data)
        if isinstance(event, BlockReceived):
            await port.write(WrapperFrame(source, METER, client.outbox.popleft()).encode())
            continue
        return event


async def test_udp_head_end_with_blocks_garbage_and_two_peers() -> None:
    sim = _sim()
    async with await sim.serve_wrapper_udp("127.0.0.1", 0) as server:
        assert server.port not in (0, DLMS_PORT)
        one = await open_udp("127.0.0.1", server.port)
        two = await open_udp("127.0.0.1", server.port)
        try:
            client = DlmsClient()
            assert isinstance(await _udp_request(one, client, client.associate()), Associated)
            await one.write(b"\x00\x01\x00\x10")  # shorter than a header: dropped
            await one.write(WrapperFrame(PUBLIC, METER, b"").encode()[:-2] + b"\x00\x05")  # length lies
            buffer = _only(await _udp_request(one, client, client.get(BUFFER)))
            assert len(profile_rows(buffer, PROFILE_CAPTURE_OBJECTS)) >= 24  # type: ignore[arg-type]
            assert server.malformed == 2

            # the second peer has no association: its GET is refused while the first one's works
            await two.write(WrapperFrame(PUBLIC, METER, GetRequestNormal(0xC1, ENERGY).encode()).encode())
            refused = WrapperFrame.decode(await two.read_datagram(5))
            assert decode_apdu(refused.data) == ExceptionResponse(1, 1)  # service not allowed
            assert isinstance(_only(await _udp_request(one, client, client.get(ENERGY))), object)
            assert isinstance(await _udp_request(one, client, client.release()), Released)
        finally:
            await one.close()
            await two.close()


def test_sessions_are_per_peer_and_client_and_expire() -> None:
    made: list[int] = []

    def new(client_sap: int):  # type: ignore[no-untyped-def]
        made.append(client_sap)
        n = len(made)
        return lambda apdu: bytes((n,)) + apdu

    sessions = WrapperSessions(new, inactivity=60.0)
    ask = WrapperFrame(16, 1, b"x")
    assert sessions.handle(ask, peer="a", now=0.0) == WrapperFrame(1, 16, b"\x01x")
    assert sessions.handle(ask, peer="a", now=59.0) == WrapperFrame(1, 16, b"\x01x")  # same association
    assert sessions.handle(ask, peer="b", now=59.0) == WrapperFrame(1, 16, b"\x02x")  # another peer
    assert sessions.handle(WrapperFrame(1, 1, b"y"), peer="a", now=59.0) == WrapperFrame(1, 1, b"\x03y")
    assert sessions.handle(WrapperFrame(16, 2, b"z"), peer="a", now=59.0) is None  # no logical device 2
    assert sessions.dropped == 1 and len(sessions) == 3
    assert sessions.handle(ask, peer="a", now=120.0) == WrapperFrame(1, 16, b"\x04x")  # idle > 60 s: new one
    assert made == [16, 16, 1, 16] and len(sessions) == 1


def test_sessions_hold_at_most_max_associations_and_drop_the_idle_one() -> None:
    made: list[int] = []

    def new(client_sap: int):  # type: ignore[no-untyped-def]
        made.append(client_sap)
        n = len(made)
        return lambda apdu: bytes((n,))

    sessions = WrapperSessions(new, max_associations=2)
    assert sessions.handle(WrapperFrame(16, 1, b""), now=0.0) == WrapperFrame(1, 16, b"\x01")
    assert sessions.handle(WrapperFrame(32, 1, b""), now=1.0) == WrapperFrame(1, 32, b"\x02")
    assert sessions.handle(WrapperFrame(16, 1, b""), now=2.0) == WrapperFrame(1, 16, b"\x01")  # used again
    assert sessions.handle(WrapperFrame(48, 1, b""), now=3.0) == WrapperFrame(1, 48, b"\x03")  # 32 goes
    assert len(sessions) == 2
    assert sessions.handle(WrapperFrame(16, 1, b""), now=4.0) == WrapperFrame(1, 16, b"\x01")
    assert sessions.handle(WrapperFrame(32, 1, b""), now=5.0) == WrapperFrame(1, 32, b"\x04")  # a new one


def test_stream_input_byte_by_byte_and_pipelined_frames() -> None:
    with VirtualClock() as clock:
        meter_port, port = pipe_pair(clock=clock)
        sim = E450Simulator(clock=clock, seed=4)
        records: list[FrameRecord] = []

        async def main() -> None:
            task = asyncio.ensure_future(sim.serve_wrapper(LoggedTransport(meter_port, records.append)))
            head = TcpHeadEnd(port)  # type: ignore[arg-type]
            client = DlmsClient()
            for byte in WrapperFrame(PUBLIC, METER, client.associate()).encode():
                await port.write(bytes((byte,)))
                await clock.sleep(0.001)
            assert isinstance(client.receive((await head.frame()).data), Associated)
            reads = [r.data for r in records if r.direction == "rx"]
            assert len(reads) > 8 and all(len(r) == 1 for r in reads)  # the meter got it byte by byte
            # two requests in one write: two answers, in order
            first = GetRequestNormal(0xC1, ENERGY).encode()
            second = GetRequestNormal(0xC2, NAME).encode()
            await port.write(
                WrapperFrame(PUBLIC, METER, first).encode() + WrapperFrame(PUBLIC, METER, second).encode()
            )
            answers = [decode_apdu((await head.frame()).data) for _ in range(2)]
            assert [a.invoke_id & 0x0F for a in answers] == [1, 2]  # type: ignore[union-attr]
            # trailing garbage (not a wrapper header): the meter hangs up
            await port.write(b"\x7e\xa0\x07garbage")
            await task
            assert meter_port.closed

        clock.run(main())


async def test_udp_replies_go_through_the_configured_faults() -> None:
    sim = _sim(faults=FaultConfig(mute_rate=1.0))  # a power line that loses every reply
    async with await sim.serve_wrapper_udp("127.0.0.1", 0) as server:
        port = await open_udp("127.0.0.1", server.port)
        try:
            await port.write(WrapperFrame(PUBLIC, METER, DlmsClient().associate()).encode())
            with pytest.raises(TimeoutError):
                await port.read_datagram(0.3)
            assert server.sessions.answered == 1  # the meter answered; the line ate it
        finally:
            await port.close()


EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")


async def _hls_associate(head: TcpHeadEnd, client: DlmsClient) -> object:
    event = await head.request(client, client.associate())
    if isinstance(event, AuthenticationPending):  # pass 3 (our answer to the meter's challenge) is queued
        event = await head.request(client, client.outbox.popleft())
    return event


async def test_tcp_management_client_with_hls_gmac_and_ciphered_apdus() -> None:
    sim = _sim(hls_keys=SecurityKeys(EK, AK))
    async with await serve_tcp(sim.serve_wrapper, "127.0.0.1", 0) as server:
        port = await open_tcp("127.0.0.1", server.port)
        try:
            head = TcpHeadEnd(port, source=MANAGEMENT_CLIENT)
            ours = SecurityContext(system_title=b"MBR\x00\x00\x00\x00\x07", keys=SecurityKeys(EK, AK))
            client = DlmsClient(authentication=HlsGmac(ours), max_receive_pdu_size=512)
            assert isinstance(await _hls_associate(head, client), Associated)
            sent = bytearray()
            original = port.write

            async def spy(data: bytes) -> None:
                sent.extend(data)
                await original(data)

            port.write = spy  # type: ignore[method-assign]
            value = _only(await head.request(client, client.get(ENERGY)))
            assert sent[8] == 0xC8  # glo-get-request: ciphered on the wire
            assert isinstance(value_of(value), int)  # type: ignore[arg-type]
            buffer = _only(await head.request(client, client.get(BUFFER)))  # ciphered blocks
            assert len(profile_rows(buffer, PROFILE_CAPTURE_OBJECTS)) >= 24  # type: ignore[arg-type]
            assert isinstance(await head.request(client, client.release()), Released)

            # a second association on the same keys: the client's counter has moved on, accepted
            again = DlmsClient(authentication=HlsGmac(ours))
            assert isinstance(await _hls_associate(head, again), Associated)
            await head.request(again, again.release())

            # LLS or no authentication is not enough for the management client; a wrong GAK fails
            for auth in (Lls(b"00000000"), None):
                refused = DlmsClient(authentication=auth)
                assert isinstance(await head.request(refused, refused.associate()), AssociationRejected)
            wrong = DlmsClient(authentication=HlsGmac(SecurityContext(keys=SecurityKeys(EK, bytes(16)))))
            assert isinstance(await _hls_associate(head, wrong), AssociationRejected)
            # the public client still reads without security
            public = TcpHeadEnd(port)
            guest = DlmsClient()
            assert isinstance(await public.request(guest, guest.associate()), Associated)
        finally:
            await port.close()
