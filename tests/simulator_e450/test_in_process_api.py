"""The in-process API as ``meterbridge.simulator``'s docstring shows it (what ``make demo`` uses).

One simulator, run the documented way: optical port and encrypted CII pushes on two PTYs and the
DLMS wrapper on TCP and UDP, all at once; each read by its own client, then cancelled cleanly.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from zoneinfo import ZoneInfo

import meterbridge.simulator as simulator_api
from meterbridge.protocols.dlms.association import Associated, DlmsClient
from meterbridge.protocols.dlms.push import PushDecoder, PushReadings
from meterbridge.protocols.dlms.security import SecurityKeys
from meterbridge.protocols.dlms.wrapper import WrapperFrame, WrapperStream
from meterbridge.protocols.events import NEED_DATA
from meterbridge.protocols.iec62056_21 import Identification, Iec62056Client, SignOn
from meterbridge.simulator import E450Simulator, WrapperUdpServer
from meterbridge.transports import (
    IEC_SIGN_ON,
    MBUS_2400,
    RealClock,
    TcpServer,
    open_pty_pair,
    open_serial,
    open_tcp,
    open_udp,
    serve_tcp,
)

from .conftest import iec_next

GUEK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")


def test_the_package_exports_what_its_docstring_uses() -> None:
    assert simulator_api.__doc__ is not None
    for name in simulator_api.__all__:
        assert hasattr(simulator_api, name), name
    for used in ("serve_optical", "push_loop", "serve_wrapper", "serve_wrapper_udp"):
        assert used in simulator_api.__doc__ and callable(getattr(E450Simulator, used))


async def test_optical_and_cii_ptys_and_the_wrapper_side_by_side(tmp_path: Path) -> None:
    optical_link, cii_link = str(tmp_path / "e450-optical"), str(tmp_path / "e450-cii")
    started: list[TcpServer | WrapperUdpServer] = []

    async def run_e450(guek: bytes) -> None:  # the docstring's example, with free ports
        sim = E450Simulator(clock=RealClock(), seed=1, encryption_key=guek, reaction_time=0.01)
        optical, _ = await open_pty_pair(optical_link, line=IEC_SIGN_ON)
        cii, _ = await open_pty_pair(cii_link, line=MBUS_2400)
        wrapper = await serve_tcp(sim.serve_wrapper, "127.0.0.1", 0)
        udp = await sim.serve_wrapper_udp("127.0.0.1", 0)
        started.extend((wrapper, udp))
        try:
            await asyncio.gather(sim.serve_optical(optical), sim.push_loop(cii, interval=0.2))
        finally:
            for closing in (optical, cii, wrapper, udp):
                await closing.close()

    demo = asyncio.ensure_future(run_e450(GUEK))
    try:
        while len(started) < 2:
            await asyncio.sleep(0.01)
        wrapper, udp = started
        assert isinstance(wrapper, TcpServer) and isinstance(udp, WrapperUdpServer)

        cii = await open_serial(cii_link, MBUS_2400)
        try:
            decoder = PushDecoder(
                framing="hdlc", keys=SecurityKeys(GUEK), default_tz=ZoneInfo("Europe/Zurich")
            )
            pushes: list[PushReadings] = []
            while len(pushes) < 2:
                decoder.receive_data(await cii.read(4096, 5))
                pushes += [e for e in decoder.events() if isinstance(e, PushReadings)]
            assert all(p.authenticated is False for p in pushes)  # GUEK only: decrypted, not verified
        finally:
            await cii.close()

        optical = await open_serial(optical_link, IEC_SIGN_ON)
        try:
            iec = Iec62056Client("C")
            await optical.write(iec.send(SignOn()))
            assert isinstance(await iec_next(iec, optical), Identification)
        finally:
            await optical.close()

        tcp = await open_tcp("127.0.0.1", wrapper.port)
        try:
            client, stream = DlmsClient(), WrapperStream()
            await tcp.write(WrapperFrame(16, 1, client.associate()).encode())
            while (frame := stream.next_event()) is NEED_DATA:
                stream.receive_data(await tcp.read(4096, 5))
            assert isinstance(frame, WrapperFrame) and isinstance(client.receive(frame.data), Associated)
        finally:
            await tcp.close()

        datagrams = await open_udp("127.0.0.1", udp.port)
        try:
            client = DlmsClient()
            await datagrams.write(WrapperFrame(16, 1, client.associate()).encode())
            answer = WrapperFrame.decode(await datagrams.read_datagram(5))
            assert isinstance(client.receive(answer.data), Associated)
        finally:
            await datagrams.close()
    finally:
        demo.cancel()
        await asyncio.gather(demo, return_exceptions=True)
    assert not Path(optical_link).exists() and not Path(cii_link).exists()  # links removed on close
