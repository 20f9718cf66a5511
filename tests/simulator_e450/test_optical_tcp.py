"""The optical port over a real TCP socket (``--tcp``: a meter behind a TCP-to-serial converter).

An IEC 62056-21 client codec talks to ``serve_optical`` through ``serve_tcp`` / ``open_tcp``: mode C
readout, then on the same connection mode E, HDLC, DLMS association and GET, DISC, and sign-on again.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

from meterbridge.obis import ObisCode
from meterbridge.protocols.dlms.apdu import AttributeDescriptor
from meterbridge.protocols.dlms.association import Associated, DlmsClient, GetResult, Lls, Released
from meterbridge.protocols.dlms.cosem import ScalerUnit, value_of
from meterbridge.protocols.hdlc import Disconnected, HdlcAddress, HdlcConnection, Role
from meterbridge.protocols.iec62056_21 import (
    DataMessage,
    HdlcHandOver,
    Identification,
    Iec62056Client,
    OptionSelect,
    SignOn,
    to_readings,
)
from meterbridge.simulator.e450 import E450Simulator
from meterbridge.transports import IEC_SIGN_ON, LineSettings, RealClock, TcpTransport, open_tcp, serve_tcp

from .conftest import dlms_request, hdlc_connect, hdlc_next, iec_next

OB = ObisCode.parse


async def _readout(port: TcpTransport) -> DataMessage:
    client = Iec62056Client("C")
    await port.write(client.send(SignOn()))
    ident = await iec_next(client, port)
    assert isinstance(ident, Identification) and ident.manufacturer == "LGZ" and ident.mode_e
    await port.write(client.send(OptionSelect(ident.baud_char, "0")))
    while not isinstance(message := await iec_next(client, port), DataMessage):
        pass
    assert port.line is not None and port.line.baud == 9600  # recorded: the converter's side
    return message


async def test_mode_c_readout_then_mode_e_dlms_on_one_tcp_connection() -> None:
    sim = E450Simulator(clock=RealClock(), seed=9, reaction_time=0.01, dlms_password=b"secret12")
    async with await serve_tcp(sim.serve_optical, "127.0.0.1", 0) as server:
        port = await open_tcp("127.0.0.1", server.port, line=IEC_SIGN_ON)
        try:
            message = await _readout(port)
            values = {line[0].address: line[0].value for line in message.lines}
            assert values["C.1.0"] == sim.model.serial_number
            readings = {str(r.key): r for r in to_readings(message.data_sets, received_at=datetime.now(UTC))}
            energy = readings["1-0:1.8.0.255"]
            assert energy.unit == "kWh" and isinstance(energy.value, Decimal)
            assert 0 <= sim.model.energies()[OB("1-0:1.8.0")] / 1000 - float(energy.value) < 0.01
            assert 200 < float(values["32.7"]) < 260

            # the meter is back at 300 baud 7E1: mode E on the same connection
            await port.set_line(IEC_SIGN_ON)
            iec = Iec62056Client("E")
            await port.write(iec.send(SignOn()))
            ident = await iec_next(iec, port)
            assert isinstance(ident, Identification)
            await port.write(iec.send(OptionSelect(ident.baud_char, "2", "2")))
            while not isinstance(await iec_next(iec, port), HdlcHandOver):
                pass
            assert port.line == LineSettings(9600)  # 8N1 for HDLC

            link = HdlcConnection(
                Role.CLIENT, client_address=HdlcAddress.client(1), server_address=HdlcAddress.server(1, 17)
            )
            await hdlc_connect(link, port)
            client = DlmsClient(authentication=Lls(b"secret12"))
            assert isinstance(await dlms_request(client, link, port, client.associate()), Associated)
            code = OB("1-0:1.8.0.255")
            got = await dlms_request(
                client, link, port, client.get_with_list([(AttributeDescriptor(3, code, 2), None),
                                                          (AttributeDescriptor(3, code, 3), None)])
            )  # fmt: skip
            assert isinstance(got, GetResult)
            raw, su = got.results
            wh = ScalerUnit.from_data(su).apply(value_of(raw))  # type: ignore[arg-type]
            assert abs(float(wh) - sim.model.energies()[OB("1-0:1.8.0")]) < 50  # type: ignore[arg-type]
            assert isinstance(await dlms_request(client, link, port, client.release()), Released)
            link.disconnect()
            assert isinstance(await hdlc_next(link, port), Disconnected)

            # after DISC the optical port listens for a sign-on again
            await port.set_line(IEC_SIGN_ON)
            again = Iec62056Client("C")
            await port.write(again.send(SignOn()))
            assert isinstance(await iec_next(again, port), Identification)
        finally:
            await port.close()
    assert sim.sessions == 3 and sim.dlms_sessions == 1


async def test_two_tcp_clients_read_the_same_meter_at_once() -> None:
    sim = E450Simulator(clock=RealClock(), seed=9, reaction_time=0.01)
    async with await serve_tcp(sim.serve_optical, "127.0.0.1", 0) as server:
        ports = [await open_tcp("127.0.0.1", server.port, line=IEC_SIGN_ON) for _ in range(2)]
        try:
            first, second = await asyncio.gather(*(_readout(p) for p in ports))
        finally:
            for port in ports:
                await port.close()
    serials = {m.lines[1][0].value for m in (first, second)}
    assert serials == {sim.model.serial_number}
