"""The DLMS client driver against a meter-role peer built from the codecs' server roles.

``MeterPeer`` is a ``DlmsServer`` over a ``DictCosemModel`` with known registers, a clock and a
load profile, served over HDLC (``serve_hdlc``) or the IEC 62056-47 wrapper on TCP
(``serve_wrapper_tcp``) or UDP (``WrapperUdpMeter``). Faults are injected on the meter's side:
``mangle`` sees each chunk the meter writes (its index, the bytes) and returns what goes on
the line (corrupted, dropped, or unchanged).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from meterbridge.drivers.dlms_client import (
    AccessDenied,
    AssociationRefused,
    DlmsSession,
    DlmsTimeout,
    HdlcLink,
    ServiceError,
    WrapperLink,
    open_session,
    read_after_hand_over,
    read_meter,
)
from meterbridge.errors import ChecksumError, FramingError, ProtocolError, TransportError
from meterbridge.obis import ObisCode
from meterbridge.protocols.dlms.apdu import (
    AccessSelection,
    AttributeDescriptor,
    Conformance,
    DataAccessResult,
    ExceptionResponse,
)
from meterbridge.protocols.dlms.association import (
    DEFAULT_CONFORMANCE,
    DictCosemModel,
    DlmsServer,
    HlsGmac,
    Lls,
)
from meterbridge.protocols.dlms.axdr import CosemDateTime, Data
from meterbridge.protocols.dlms.cosem import CaptureObject, ClassId, ScalerUnit, select_profile, unit_code
from meterbridge.protocols.dlms.security import SecurityContext, SecurityKeys
from meterbridge.protocols.dlms.wrapper import WrapperFrame, WrapperStream
from meterbridge.protocols.events import NEED_DATA
from meterbridge.protocols.hdlc import (
    DataReceived,
    Disconnected,
    FrameKind,
    HdlcAddress,
    HdlcConnection,
    HdlcFrame,
    HdlcParameters,
    Role,
)
from meterbridge.readings import Reading
from meterbridge.transports import (
    LineSettings,
    Transport,
    TransportClosed,
    open_pty_pair,
    open_serial,
    open_tcp,
    open_udp,
    pipe_pair,
    serve_tcp,
)

Mangle = Callable[[int, bytes], bytes]

ENERGY = ObisCode.parse("1-0:1.8.0")
VOLTAGE = ObisCode.parse("1-0:32.7.0")
CURRENT = ObisCode.parse("1-0:31.7.0")
POWER = ObisCode.parse("1-0:1.7.0")
DEVICE_NAME = ObisCode.parse("0-0:42.0.0")
SERIAL = ObisCode.parse("0-0:96.1.0")
CLOCK = ObisCode.parse("0-0:1.0.0")
PROFILE = ObisCode.parse("1-0:99.1.0")
METER_TIME = datetime(2026, 5, 4, 11, 39, 21, tzinfo=UTC)
PROFILE_START = datetime(2026, 5, 4, 0, 0, tzinfo=UTC)

# (value, scaler, unit) as the meter holds them
REGISTERS = {
    ENERGY: (482939, 0, "Wh"),
    VOLTAGE: (2361, -1, "V"),
    CURRENT: (9, -2, "A"),
    POWER: (28, 0, "W"),
}
EXPECTED = {
    ENERGY: (482939, "Wh"),
    VOLTAGE: (Decimal("236.1"), "V"),
    CURRENT: (Decimal("0.09"), "A"),
    POWER: (28, "W"),
}
PROFILE_COLUMNS = (
    CaptureObject(ClassId.CLOCK, CLOCK, 2, 0),
    CaptureObject(ClassId.REGISTER, ENERGY, 2, 0),
)


def stamp(at: datetime) -> Data:
    return Data.octet_string(CosemDateTime.from_datetime(at).encode())


def profile_buffer(rows: int = 96) -> Data:
    """A day of 15-minute energy values: 1000 Wh more each quarter hour."""
    return Data.array(
        Data.structure(
            stamp(PROFILE_START + timedelta(minutes=15 * i)), Data.double_long_unsigned(100000 + 1000 * i)
        )
        for i in range(rows)
    )


def meter_model() -> DictCosemModel:
    values: dict[tuple[int, ObisCode, int], object] = {}
    for code, (value, scaler, unit) in REGISTERS.items():
        values[(ClassId.REGISTER, code, 2)] = (
            Data.double_long_unsigned(value) if value >= 0 else Data.long(value)
        )
        values[(ClassId.REGISTER, code, 3)] = ScalerUnit(scaler, unit_code(unit)).to_data()
    values[(ClassId.DATA, DEVICE_NAME, 2)] = Data.octet_string(b"LGZ1030653520967")
    values[(ClassId.DATA, SERIAL, 2)] = Data.octet_string(b"30653520967")
    values[(ClassId.CLOCK, CLOCK, 2)] = stamp(METER_TIME)
    buffer = profile_buffer()

    def profile(access: AccessSelection | None) -> Data | DataAccessResult:
        return select_profile(buffer, PROFILE_COLUMNS, access)

    values[(ClassId.PROFILE_GENERIC, PROFILE, 2)] = profile
    values[(ClassId.PROFILE_GENERIC, PROFILE, 3)] = Data.array(c.to_data() for c in PROFILE_COLUMNS)
    values[(ClassId.PROFILE_GENERIC, PROFILE, 4)] = Data.double_long_unsigned(900)
    return DictCosemModel(values)  # type: ignore[arg-type]


class MeterPeer:
    """One meter: the DLMS server and what it saw."""

    def __init__(
        self,
        *,
        password: bytes | None = None,
        security: SecurityContext | None = None,
        conformance: Conformance = DEFAULT_CONFORMANCE,
        block_size: int | None = None,
        hdlc_parameters: HdlcParameters | None = None,
        mangle: Mangle | None = None,
        answer_snrm_with_dm: bool = False,
        reply_fault: Callable[[int, bytes], bytes] | None = None,
    ) -> None:
        self.model = meter_model()
        self.password = password
        self.security = security
        self.conformance = conformance
        self.block_size = block_size
        self.hdlc_parameters = hdlc_parameters
        self.mangle = mangle
        self.answer_snrm_with_dm = answer_snrm_with_dm
        self.reply_fault = reply_fault
        self.requests: list[bytes] = []
        self.writes = 0
        self.hdlc_errors: list[ProtocolError] = []
        self.disconnected = asyncio.Event()
        self.server = self.new_server()

    def new_server(self) -> DlmsServer:
        return DlmsServer(
            self.model,
            password=self.password,
            security=self.security,
            conformance=self.conformance,
            block_size=self.block_size,
        )

    def handle(self, apdu: bytes) -> bytes:
        self.requests.append(apdu)
        reply = self.server.handle(apdu)
        if self.reply_fault is not None:
            reply = self.reply_fault(len(self.requests) - 1, reply)
        return reply

    async def write(self, port: Transport, data: bytes) -> None:
        index = self.writes
        self.writes += 1
        if self.mangle is not None:
            data = self.mangle(index, data)
        if data:
            await port.write(data)

    async def serve_hdlc(
        self, port: Transport, server_address: HdlcAddress | None = None, client: int = 16
    ) -> None:
        """HDLC server role until the port closes."""
        link = HdlcConnection(
            Role.SERVER,
            client_address=HdlcAddress.client(client),
            server_address=server_address or HdlcAddress.server(1, 17),
            parameters=self.hdlc_parameters,
        )
        with contextlib.suppress(TransportClosed):
            while True:
                data = await port.read(4096)
                if self.answer_snrm_with_dm:
                    dm = HdlcFrame(
                        FrameKind.DM, HdlcAddress.client(16), server_address or HdlcAddress.server(1, 17)
                    )
                    await self.write(port, dm.encode())
                    continue
                link.receive_data(data)
                while True:
                    try:
                        event = link.next_event()
                    except ProtocolError as exc:
                        self.hdlc_errors.append(exc)
                        continue
                    if event is NEED_DATA:
                        break
                    if isinstance(event, DataReceived):
                        link.send_data(self.handle(event.data))
                    elif isinstance(event, Disconnected):
                        self.server = self.new_server()
                        self.disconnected.set()
                out = link.data_to_send()
                if out:
                    await self.write(port, out)

    async def serve_wrapper_tcp(self, port: Transport) -> None:
        stream = WrapperStream()
        with contextlib.suppress(TransportClosed):
            while True:
                stream.receive_data(await port.read(4096))
                while (frame := stream.next_event()) is not NEED_DATA:
                    assert isinstance(frame, WrapperFrame)
                    reply = self.handle(frame.data)
                    await self.write(port, WrapperFrame(frame.destination, frame.source, reply).encode())


class WrapperUdpMeter(asyncio.DatagramProtocol):
    """The meter on a UDP socket: one datagram in, one out (through ``peer.mangle``)."""

    def __init__(self, peer: MeterPeer) -> None:
        self.peer = peer
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        frame = WrapperFrame.decode(data)
        reply = WrapperFrame(frame.destination, frame.source, self.peer.handle(frame.data)).encode()
        index = self.peer.writes
        self.peer.writes += 1
        if self.peer.mangle is not None:
            reply = self.peer.mangle(index, reply)
        if reply and self.transport is not None:
            self.transport.sendto(reply, addr)


# ---------------------------------------------------------------------------------------------- harness


@contextlib.asynccontextmanager
async def hdlc_over_pipe(peer: MeterPeer, timeout: float = 1.0) -> AsyncIterator[HdlcLink]:
    """An HDLC link to ``peer`` over an in-memory pipe. ``timeout``: the reply timeout; tests that expect
    answers keep the default, long enough that a loaded machine's stall does not pass for a lost answer
    (a spurious re-poll would change the error counts they assert); tests of silence pass a short one."""
    client_end, meter_end = pipe_pair()
    task = asyncio.create_task(peer.serve_hdlc(meter_end))
    try:
        yield HdlcLink(client_end, timeout=timeout, retries=3)
    finally:
        await client_end.close()
        await meter_end.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def check_registers(readings: list[Reading]) -> None:
    got = {r.key: (r.value, r.unit) for r in readings}
    assert got == EXPECTED
    assert all(r.meter_id == "LGZ1030653520967" and r.ok for r in readings)


# ---------------------------------------------------------------------------------------------- transports


async def test_read_registers_clock_and_release_over_a_real_pty() -> None:
    peer = MeterPeer()
    master, path = await open_pty_pair()
    reader = await open_serial(path, LineSettings(9600))
    task = asyncio.create_task(peer.serve_hdlc(master))
    try:
        async with DlmsSession(HdlcLink(reader, timeout=1.0)) as meter:
            assert meter.meter_id == "LGZ1030653520967"
            check_registers(await meter.read_registers(list(EXPECTED)))
            assert await meter.read_clock() == METER_TIME
        await asyncio.wait_for(peer.disconnected.wait(), 5)
        assert peer.requests[-1][:1] == b"\x62"  # RLRQ before DISC
    finally:
        await reader.close()
        await master.close()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_hdlc_over_tcp_loopback() -> None:
    peer = MeterPeer()
    server = await serve_tcp(peer.serve_hdlc)
    try:
        transport = await open_tcp("127.0.0.1", server.port)
        async with DlmsSession(HdlcLink(transport, timeout=1.0)) as meter:
            check_registers(await meter.read_registers([str(c) for c in EXPECTED]))
        await transport.close()
    finally:
        await server.close()


async def test_wrapper_over_tcp_loopback() -> None:
    peer = MeterPeer()
    server = await serve_tcp(peer.serve_wrapper_tcp)
    try:
        transport = await open_tcp("127.0.0.1", server.port)
        async with DlmsSession(WrapperLink(transport, timeout=1.0)) as meter:
            check_registers(await meter.read_registers(list(EXPECTED)))
            assert await meter.read_clock() == METER_TIME
        await transport.close()
    finally:
        await server.close()
    assert all(len(r) > 0 for r in peer.requests)


async def test_wrapper_over_udp_with_a_lost_answer() -> None:
    peer = MeterPeer(mangle=lambda i, data: b"" if i == 2 else data)  # third answer lost
    loop = asyncio.get_running_loop()
    endpoint, _ = await loop.create_datagram_endpoint(
        lambda: WrapperUdpMeter(peer), local_addr=("127.0.0.1", 0)
    )
    try:
        port = endpoint.get_extra_info("sockname")[1]
        transport = await open_udp("127.0.0.1", port)
        link = WrapperLink(transport, timeout=0.3)
        assert link.datagrams
        async with DlmsSession(link) as meter:
            check_registers(await meter.read_registers(list(EXPECTED)))
        await transport.close()
    finally:
        endpoint.close()
    assert len(peer.requests) >= 4  # the lost answer's request came twice


async def test_open_session_and_read_meter_over_tcp() -> None:
    peer = MeterPeer()
    server = await serve_tcp(peer.serve_wrapper_tcp)
    try:
        url = f"tcp://127.0.0.1:{server.port}"
        meter = await open_session(url, framing="wrapper", timeout=1.0)
        try:
            assert isinstance(meter.link, WrapperLink)
            check_registers(await meter.read_registers(list(EXPECTED)))
        finally:
            await meter.close()
        assert meter.link.transport.closed  # the session owned it
        check_registers(await read_meter(url, list(EXPECTED), framing="wrapper", timeout=1.0))
        with pytest.raises(ValueError, match="wPort"):
            await open_session(url, framing="wrapper", server=HdlcAddress.server(1, 17))
        with pytest.raises(ValueError, match="framing"):
            await open_session(url, framing="iec")
    finally:
        await server.close()
    hdlc_server = await serve_tcp(MeterPeer().serve_hdlc)
    try:
        readings = await read_meter(f"tcp://127.0.0.1:{hdlc_server.port}", list(EXPECTED), timeout=1.0)
        check_registers(readings)  # auto: HDLC on a port other than 4059
    finally:
        await hdlc_server.close()


# ---------------------------------------------------------------------------------------------- services


async def test_get_with_list_when_the_meter_allows_it() -> None:
    peer = MeterPeer()
    async with hdlc_over_pipe(peer) as link, DlmsSession(link) as meter:
        assert Conformance.MULTIPLE_REFERENCES in meter.conformance
        before = len(peer.requests)
        check_registers(await meter.read_registers(list(EXPECTED)))
        asked = peer.requests[before:]
    assert [r[:2] for r in asked] == [b"\xc0\x03"]  # one GET-request-with-list for 8 attributes


async def test_one_get_each_when_the_meter_does_not_allow_lists() -> None:
    peer = MeterPeer(conformance=DEFAULT_CONFORMANCE & ~Conformance.MULTIPLE_REFERENCES)
    async with hdlc_over_pipe(peer) as link, DlmsSession(link) as meter:
        assert Conformance.MULTIPLE_REFERENCES not in meter.conformance
        before = len(peer.requests)
        check_registers(await meter.read_registers(list(EXPECTED)))
        asked = peer.requests[before:]
    assert [r[:2] for r in asked] == [b"\xc0\x01"] * 8


async def test_profile_by_range_with_block_transfer_and_segmented_hdlc() -> None:
    peer = MeterPeer(block_size=100, hdlc_parameters=HdlcParameters(max_info_tx=64, max_info_rx=64))
    start = PROFILE_START + timedelta(hours=1)
    end = PROFILE_START + timedelta(hours=5)
    async with hdlc_over_pipe(peer) as link, DlmsSession(link) as meter:
        assert link.hdlc.negotiated is not None and link.hdlc.negotiated.max_info_rx == 64
        readings = await meter.read_profile(PROFILE, start, end)
        whole_day = await meter.read_profile(
            "1-0:99.1.0.255", PROFILE_START, PROFILE_START + timedelta(days=1)
        )
    assert [r.value for r in readings] == [100000 + 1000 * i for i in range(4, 21)]
    assert [r.timestamp for r in readings] == [start + timedelta(minutes=15 * i) for i in range(17)]
    assert {(r.key, r.unit) for r in readings} == {(ENERGY, "Wh")}
    assert len(whole_day) == 96
    assert any(r[:2] == b"\xc0\x02" for r in peer.requests)  # GET-request-next: blocks were used


async def test_lls_password() -> None:
    peer = MeterPeer(password=b"12345678")
    async with hdlc_over_pipe(peer) as link, DlmsSession(link, authentication=Lls(b"12345678")) as meter:
        check_registers(await meter.read_registers(list(EXPECTED)))
    async with hdlc_over_pipe(MeterPeer(password=b"12345678")) as link:
        with pytest.raises(AssociationRefused, match="rejected"):
            await DlmsSession(link, authentication=Lls(b"wrong!!!")).open()
    assert "wrong" not in repr(Lls(b"wrong!!!"))


GUEK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
GAK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")


async def test_hls_gmac_ciphered_association() -> None:
    keys = SecurityKeys(encryption_key=GUEK, authentication_key=GAK)
    peer = MeterPeer(security=SecurityContext(system_title=b"LGZ\x00\x00\xbc\x61\x4e", keys=keys))
    client_ctx = SecurityContext(system_title=b"MBR\x00\x00\x00\x00\x01", keys=keys)
    async with hdlc_over_pipe(peer) as link, DlmsSession(link, authentication=HlsGmac(client_ctx)) as meter:
        check_registers(await meter.read_registers(list(EXPECTED)))
    # every request after the AARQ travelled glo-ciphered (tags C8 and up)
    assert all(r[0] >= 0xC8 for r in peer.requests[1:] if r[0] != 0x62)
    # with a wrong key the meter refuses the association
    bad = SecurityContext(keys=SecurityKeys(encryption_key=bytes(16), authentication_key=GAK))
    async with hdlc_over_pipe(MeterPeer(security=SecurityContext(keys=keys))) as link:
        with pytest.raises(ProtocolError):
            await DlmsSession(link, authentication=HlsGmac(bad)).open()


async def test_missing_objects_are_failures_and_data_objects_fall_back_to_class_1() -> None:
    unknown = ObisCode.parse("1-0:99.99.99")
    peer = MeterPeer()
    del peer.model.values[(ClassId.REGISTER, POWER, 3)]  # a register whose scaler_unit cannot be read
    async with hdlc_over_pipe(peer) as link, DlmsSession(link) as meter:
        readings = await meter.read_registers([SERIAL, ENERGY, unknown, POWER])
        failures = meter.failures
    assert [(r.key, r.value, r.unit) for r in readings] == [
        (SERIAL, "30653520967", None),  # Data (class 1), in the order asked
        (ENERGY, 482939, "Wh"),
    ]
    assert [(f.obis, f.attribute) for f in failures] == [(POWER, 3), (unknown, 2)]
    assert all("undefined" in f.reason for f in failures)


async def test_single_get_refused() -> None:
    async with hdlc_over_pipe(MeterPeer()) as link, DlmsSession(link) as meter:
        with pytest.raises(AccessDenied) as info:
            await meter.get(AttributeDescriptor(3, ObisCode.parse("1-0:99.99.99"), 2))
        assert info.value.result is DataAccessResult.OBJECT_UNDEFINED


async def test_read_after_hand_over() -> None:
    peer = MeterPeer(password=b"00000000")
    client_end, meter_end = pipe_pair()
    task = asyncio.create_task(peer.serve_hdlc(meter_end, client=32))  # LLS: the L+G reading client
    try:
        readings = await read_after_hand_over(
            client_end, ["1-0:1.8.0", "1-0:32.7.0"], password="00000000", timeout=0.5
        )
    finally:
        task.cancel()
        await client_end.close()
    assert [(r.key, r.value) for r in readings] == [(ENERGY, 482939), (VOLTAGE, Decimal("236.1"))]


# ---------------------------------------------------------------------------------------------- faults


def flip(write: int, at: int) -> Mangle:
    def mangle(index: int, data: bytes) -> bytes:
        if index != write:
            return data
        out = bytearray(data)
        out[at % len(out)] ^= 0x5A
        return bytes(out)

    return mangle


async def test_a_meter_that_only_sends_corrupt_frames_gives_no_value() -> None:
    peer = MeterPeer()

    def mangle(index: int, data: bytes) -> bytes:
        if len(peer.requests) <= 2:  # association and meter name go through
            return data
        out = bytearray(data)
        out[len(out) // 2] ^= 0x01
        return bytes(out)

    peer.mangle = mangle
    async with hdlc_over_pipe(peer, timeout=0.1) as link:
        meter = DlmsSession(link)
        await meter.open()
        with pytest.raises(DlmsTimeout):
            await meter.read_registers(list(EXPECTED))
    assert link.errors
    assert all(isinstance(e, ChecksumError | FramingError) for e in link.errors)


async def test_bad_fcs_is_reported_and_the_poll_gets_the_right_value() -> None:
    peer = MeterPeer(mangle=flip(3, -4))  # the 4th frame the meter sends (the register answer) is corrupt
    async with hdlc_over_pipe(peer) as link, DlmsSession(link) as meter:
        check_registers(await meter.read_registers(list(EXPECTED)))
        errors = list(link.errors)
    assert len(errors) == 1
    assert isinstance(errors[0], ChecksumError)
    assert "FCS" in str(errors[0])


async def test_lost_answer_and_noise_are_survived() -> None:
    def mangle(index: int, data: bytes) -> bytes:
        if index == 3:
            return b""  # lost
        return b"\x00\xff\x7e\x55" + data + b"\x13"  # line noise around every frame

    async with hdlc_over_pipe(MeterPeer(mangle=mangle)) as link, DlmsSession(link) as meter:
        check_registers(await meter.read_registers(list(EXPECTED)))
        assert link.hdlc.stream.skipped > 0


async def test_silent_meter_times_out() -> None:
    client_end, meter_end = pipe_pair()
    link = HdlcLink(client_end, timeout=0.05, retries=2)
    with pytest.raises(DlmsTimeout, match="no UA after 3 SNRM"):
        await link.open()
    assert (await meter_end.read(4096, 1.0)).count(b"\x93") >= 1  # SNRMs went out
    await client_end.close()


async def test_meter_stops_answering_mid_session() -> None:
    peer = MeterPeer()
    peer.mangle = lambda i, data: data if len(peer.requests) <= 2 else b""  # silent after the meter name
    async with hdlc_over_pipe(peer, timeout=0.1) as link:
        meter = DlmsSession(link)
        await meter.open()
        with pytest.raises(DlmsTimeout, match="no answer after 3 polls"):
            await meter.read_registers(list(EXPECTED))


async def test_dm_to_snrm_is_refused() -> None:
    async with hdlc_over_pipe(MeterPeer(answer_snrm_with_dm=True)) as link:
        with pytest.raises(AssociationRefused, match="DM"):
            await link.open()


async def test_exception_response_is_raised_and_the_session_goes_on() -> None:
    def fault(index: int, reply: bytes) -> bytes:
        return ExceptionResponse(1, 2).encode() if index == 2 else reply

    async with hdlc_over_pipe(MeterPeer(reply_fault=fault)) as link, DlmsSession(link) as meter:
        with pytest.raises(ServiceError, match="exception-response"):
            await meter.read_registers(list(EXPECTED))
        check_registers(await meter.read_registers(list(EXPECTED)))


@pytest.mark.parametrize(("write", "at"), [(3, 5), (3, 9), (3, 20), (3, -3), (2, 7), (4, 12), (1, 4)])
async def test_a_corrupt_byte_anywhere_never_gives_a_wrong_value(write: int, at: int) -> None:
    peer = MeterPeer(mangle=flip(write, at))
    try:
        async with hdlc_over_pipe(peer, timeout=0.1) as link, DlmsSession(link) as meter:
            readings = await meter.read_registers(list(EXPECTED))
    except (ProtocolError, TransportError):
        return  # reported, no value
    check_registers(readings)


async def test_meter_that_drops_the_link_mid_session() -> None:
    dm = HdlcFrame(FrameKind.DM, HdlcAddress.client(16), HdlcAddress.server(1, 17)).encode()
    peer = MeterPeer(mangle=lambda i, data: dm if i == 3 else data)
    async with hdlc_over_pipe(peer) as link:
        meter = DlmsSession(link)
        await meter.open()
        with pytest.raises(TransportError, match=r"ended the link \(DM\)"):
            await meter.read_registers(list(EXPECTED))


async def test_meter_id_falls_back_to_the_link_name_without_a_logical_device_name() -> None:
    peer = MeterPeer()
    del peer.model.values[(ClassId.DATA, DEVICE_NAME, 2)]
    async with hdlc_over_pipe(peer) as link, DlmsSession(link) as meter:
        assert meter.meter_id == link.name
        readings = await meter.read_registers([ENERGY])
    assert readings[0].meter_id == link.name
    async with hdlc_over_pipe(MeterPeer()) as link, DlmsSession(link, meter_id="house-1") as meter:
        assert (await meter.read_registers([ENERGY]))[0].meter_id == "house-1"


async def test_wrapper_ignores_other_wports_and_reports_bad_datagrams() -> None:
    peer = MeterPeer()

    def mangle(index: int, data: bytes) -> bytes:
        if index == 1:  # a datagram for another client; after the repeat a broken one; then the answer
            return WrapperFrame(1, 99, b"\x01").encode()
        if index == 2:
            return b"\x00\x02" + data[2:]
        return data

    peer.mangle = mangle
    loop = asyncio.get_running_loop()
    protocol = WrapperUdpMeter(peer)
    endpoint, _ = await loop.create_datagram_endpoint(lambda: protocol, local_addr=("127.0.0.1", 0))
    try:
        transport = await open_udp("127.0.0.1", endpoint.get_extra_info("sockname")[1])
        link = WrapperLink(transport, timeout=1.0)  # exact counts below: no spurious repeat on a stall
        async with DlmsSession(link) as meter:
            assert protocol.transport is not None
            check_registers(await meter.read_registers(list(EXPECTED)))
        await transport.close()
    finally:
        endpoint.close()
    assert link.ignored == 1
    assert len(link.errors) == 1 and "version" in str(link.errors[0])
