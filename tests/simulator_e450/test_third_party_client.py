"""A third-party DLMS client (Gurux, ``gurux_dlms``) reads the simulated E450 as it would read a real one.

The simulator must be a faithful peer, not a mirror of our own client: Gurux builds its own AARQ,
GET (normal, with-list, block transfer with its own GET-request-next), object list parsing and
release, over the IEC 62056-47 wrapper (a G3-PLC head-end) and over HDLC after a mode E hand-over
on the optical port, with HLS-GMAC and ciphered APDUs for the management client; and it decrypts and reads our CII pushes as it reads the real capture.
Gurux is blocking, so it runs in a worker thread with a plain socket.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from meterbridge.obis import ObisCode
from meterbridge.protocols.dlms.security import SecurityKeys
from meterbridge.protocols.events import NEED_DATA
from meterbridge.protocols.iec62056_21 import (
    HdlcHandOver,
    Identification,
    Iec62056Client,
    OptionSelect,
    SignOn,
)
from meterbridge.simulator.e450 import E450Simulator
from meterbridge.transports import RealClock, VirtualClock, serve_tcp

pytest.importorskip("gurux_dlms")  # a dev dependency: the third-party client
from gurux_dlms import GXByteBuffer, GXDLMSClient, GXReplyData
from gurux_dlms.enums import Authentication, InterfaceType, Security
from gurux_dlms.GXDLMSException import GXDLMSException
from gurux_dlms.objects import (
    GXDLMSClock,
    GXDLMSData,
    GXDLMSProfileGeneric,
    GXDLMSRegister,
)
from gurux_dlms.secure import GXDLMSSecureClient

OB = ObisCode.parse


class GuruxHeadEnd:
    """Gurux's client over a blocking socket, the way its own reader examples drive it."""

    def __init__(self, sock: socket.socket, client: Any) -> None:
        self.sock = sock
        self.client = client
        self.frames_received = 0

    def packet(self, data: bytes | None, reply: Any) -> None:
        if not data:
            return
        notify = GXReplyData()
        reply.error = 0
        self.sock.sendall(bytes(data))
        received = GXByteBuffer()
        while not self.client.getData(received, reply, notify):
            chunk = self.sock.recv(4096)
            assert chunk, "the meter closed the connection"
            received.set(chunk)
        self.frames_received += 1
        assert reply.error == 0, f"the meter answered error {reply.error}"

    def request(self, messages: Any) -> Any:
        """Send one request (a list of frames), follow blocks; the reply holds the whole answer."""
        reply = GXReplyData()
        for message in messages if isinstance(messages, list) else [messages]:
            reply.clear()
            self.packet(message, reply)
            while reply.isMoreData():
                self.packet(None if reply.isStreaming() else self.client.receiverReady(reply), reply)
        return reply

    def read(self, item: Any, attribute: int) -> Any:
        reply = self.request(self.client.read(item, attribute))
        self.client.updateValue(item, attribute, reply.value)
        return getattr(item, {2: "value", 3: "scaler"}.get(attribute, "value"), None)

    def read_meter(self) -> dict[str, Any]:
        """What a head-end reads from an E450: registers, clock, load profile, list, object list."""
        found: dict[str, Any] = {}
        energy = GXDLMSRegister("1.0.1.8.0.255")
        self.read(energy, 3)
        self.read(energy, 2)
        found["energy"] = (energy.value, energy.scaler, energy.unit)
        name = GXDLMSData("0.0.42.0.0.255")
        self.read(name, 2)
        found["name"] = name.value
        clock = GXDLMSClock("0.0.1.0.0.255")
        self.read(clock, 2)
        found["clock"] = clock.time.value
        profile = GXDLMSProfileGeneric("1.0.99.1.0.255")
        self.read(profile, 3)
        before = self.frames_received
        self.read(profile, 2)
        found["profile"] = (len(profile.captureObjects), profile.buffer, self.frames_received - before)
        voltage, current = GXDLMSRegister("1.0.32.7.0.255"), GXDLMSRegister("1.0.31.7.0.255")
        items = [(voltage, 2), (current, 2)]
        values: list[Any] = []
        for message in self.client.readList(items):
            values.extend(self.request(message).value)
        self.client.updateValues(items, values)
        found["list"] = (voltage.value, current.value)
        objects = self.client.parseObjects(self.request(self.client.getObjectsRequest()).data, True)
        found["objects"] = {str(o.logicalName) for o in objects}
        return found


def _check(found: dict[str, Any], sim: E450Simulator) -> None:
    value, scaler, unit = found["energy"]
    assert unit == 30 and scaler == 1  # Wh, 10^0
    assert abs(value - sim.model.energies()[OB("1-0:1.8.0")]) < 100
    name = found["name"]
    assert (name.decode() if isinstance(name, (bytes, bytearray)) else name) == sim.model.logical_device_name
    columns, rows, frames = found["profile"]
    assert columns == 2 + 4 and len(rows) >= 24 and frames >= 2  # 6 h of quarter hours, in several blocks
    stamps = [row[0].value for row in rows]
    assert all(b - a == timedelta(minutes=15) for a, b in itertools.pairwise(stamps))
    volts, amps = found["list"]
    assert 2000 < volts < 2600 and amps >= 0  # raw, 0.1 V
    assert {"1.0.1.8.0.255", "0.0.1.0.0.255", "1.0.99.1.0.255"} <= found["objects"]


def _simulator(**kwargs: Any) -> E450Simulator:
    clock = RealClock()
    return E450Simulator(clock=clock, seed=6, start=clock.now() - timedelta(hours=6), **kwargs)


def _over_wrapper(port: int) -> dict[str, Any]:
    client = GXDLMSClient(True, 16, 1, Authentication.NONE, None, InterfaceType.WRAPPER)
    client.maxReceivePDUSize = 512  # a small PDU as on a G3-PLC link: long answers come in blocks
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = GuruxHeadEnd(sock, client)
        client.parseAareResponse(head.request(client.aarqRequest()).data)
        found = head.read_meter()
        found["release"] = bytes(head.request(client.releaseRequest()).data.array())
    return found


async def test_gurux_head_end_over_the_wrapper() -> None:
    sim = _simulator()
    async with await serve_tcp(sim.serve_wrapper, "127.0.0.1", 0) as server:
        found = await asyncio.to_thread(_over_wrapper, server.port)
    _check(found, sim)


def _over_optical_mode_e(port: int) -> dict[str, Any]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        iec = Iec62056Client("E")  # the IEC 62056-21 hand-over with our codec, then Gurux speaks HDLC

        def next_event() -> object:
            while (event := iec.next_event()) is NEED_DATA:
                iec.receive_data(sock.recv(4096))
            return event

        sock.sendall(iec.send(SignOn()))
        ident = next_event()
        assert isinstance(ident, Identification) and ident.mode_e
        sock.sendall(iec.send(OptionSelect(ident.baud_char, "2", "2")))
        while not isinstance(next_event(), HdlcHandOver):
            pass
        client = GXDLMSClient(
            True, 1, GXDLMSClient.getServerAddress(1, 17), Authentication.LOW, "12345678", InterfaceType.HDLC
        )
        head = GuruxHeadEnd(sock, client)
        client.parseUAResponse(head.request(client.snrmRequest()).data)
        client.parseAareResponse(head.request(client.aarqRequest()).data)
        found = head.read_meter()
        head.request(client.releaseRequest())
        head.request(client.disconnectRequest())
    return found


async def test_gurux_over_hdlc_after_a_mode_e_hand_over_with_lls() -> None:
    sim = _simulator(dlms_password=b"12345678", reaction_time=0.01)
    async with await serve_tcp(sim.serve_optical, "127.0.0.1", 0) as server:
        found = await asyncio.to_thread(_over_optical_mode_e, server.port)
    _check(found, sim)
    assert sim.dlms_sessions == 1


def _gurux_push(raw: bytes, key: bytes | None) -> tuple[list[str], list[type], Any]:
    """Decode one push as Gurux-based readers do (smartmeter-datacollector's HDLC/DLMS parser)."""
    client: Any
    if key is None:
        client = GXDLMSClient(useLogicalNameReferencing=True, interfaceType=InterfaceType.HDLC)
    else:
        client = GXDLMSSecureClient(useLogicalNameReferencing=True, interfaceType=InterfaceType.HDLC)
        client.ciphering.security = Security.ENCRYPTION
        client.ciphering.blockCipherKey = key
    buffer, frame, data = GXByteBuffer(), GXReplyData(), GXReplyData()
    buffer.set(raw)
    while not (data.isComplete() and not data.isMoreData()):
        assert buffer.position < buffer.size, "the push ended before Gurux had it whole"
        client.getData(buffer, frame, data)
    values = list(data.value)
    names = [str(item[0].logicalName) for item in client.parsePushObjects(values[0])]
    return names, [type(v) for v in values[1:]], data.time


def test_gurux_decrypts_our_cii_push_and_reads_it_as_the_real_one() -> None:
    vector = Path(__file__).resolve().parents[1] / "vectors" / "dlms" / "e450_cii_push_unencrypted.json"
    real = b"".join(bytes.fromhex(h) for h in json.loads(vector.read_text())["frames_hex"])
    key = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
    at = datetime(2026, 5, 4, 9, 39, 20, tzinfo=UTC)
    with VirtualClock(epoch=at) as clock:
        sim = E450Simulator(clock=clock, seed=7, encryption_key=key)  # GUEK only on the reader's side
        ours = [b"".join(sim.push_encoder.frames(sim.snapshot())) for _ in range(2)]
    real_names, real_types, real_time = _gurux_push(real, None)
    for push in ours:
        names, types, stamp = _gurux_push(push, key)
        assert names == real_names and len(names) == 17
        assert types == real_types
        assert stamp.value.replace(tzinfo=None) == datetime(2026, 5, 4, 11, 39, 20)  # local, as the meter's
    assert real_time.value.replace(tzinfo=None) == datetime(2026, 5, 4, 11, 39, 20)


EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")


def _over_wrapper_with_hls(port: int, authentication_key: bytes) -> dict[str, Any]:
    client = GXDLMSSecureClient(True, 1, 1, Authentication.HIGH_GMAC, None, InterfaceType.WRAPPER)
    client.ciphering.security = Security.AUTHENTICATION_ENCRYPTION
    client.ciphering.systemTitle = b"GRX12345"
    client.ciphering.blockCipherKey = EK
    client.ciphering.authenticationKey = authentication_key
    client.maxReceivePDUSize = 512  # ciphered answers in blocks
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = GuruxHeadEnd(sock, client)
        client.parseAareResponse(head.request(client.aarqRequest()).data)
        reply = GXReplyData()
        for message in client.getApplicationAssociationRequest():  # HLS pass 3, the meter's pass 4
            head.packet(message, reply)
        client.parseApplicationAssociationResponse(reply.data)
        found = head.read_meter()
        head.request(client.releaseRequest())
    return found


async def test_gurux_management_client_with_hls_gmac_over_the_wrapper() -> None:
    sim = _simulator(hls_keys=SecurityKeys(EK, AK))
    async with await serve_tcp(sim.serve_wrapper, "127.0.0.1", 0) as server:
        found = await asyncio.to_thread(_over_wrapper_with_hls, server.port, AK)
        _check(found, sim)
        with pytest.raises(GXDLMSException, match="Authentication failure"):  # the meter's AARE
            await asyncio.to_thread(_over_wrapper_with_hls, server.port, bytes(16))  # wrong GAK
