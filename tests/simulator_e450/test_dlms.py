"""DLMS over HDLC against the simulator, with the codecs' client roles: association, GET of the guide's table."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest

from meterbridge.obis import CATALOGUE, ObisCode
from meterbridge.protocols.dlms.apdu import AttributeDescriptor, DataAccessResult
from meterbridge.protocols.dlms.association import (
    Associated,
    AssociationRejected,
    DlmsClient,
    GetResult,
    Lls,
)
from meterbridge.protocols.dlms.axdr import CosemDateTime
from meterbridge.protocols.dlms.cosem import (
    CaptureObject,
    ClassId,
    ScalerUnit,
    entry_descriptor,
    profile_rows,
    range_descriptor,
    value_of,
)
from meterbridge.protocols.hdlc import Disconnected, HdlcAddress, HdlcConnection, Role
from meterbridge.protocols.iec62056_21 import (
    HdlcHandOver,
    Identification,
    Iec62056Client,
    OptionSelect,
    SignOn,
)
from meterbridge.simulator.e450 import E450Simulator
from meterbridge.simulator.e450_cosem import ASSOCIATION_OBIS, CLOCK_OBIS, REGISTERS
from meterbridge.simulator.e450_model import PROFILE_OBIS
from meterbridge.transports import IEC_SIGN_ON, LineSettings, VirtualClock, pipe_pair

from .conftest import dlms_request, hdlc_connect, hdlc_next, iec_next

SERVER = HdlcAddress.server(1, 17)


def _value(result: object) -> object:
    assert isinstance(result, GetResult), result
    (only,) = result.results
    return only


def test_mode_e_then_lls_association_and_get_of_every_register() -> None:
    with VirtualClock() as clock:

        async def main() -> None:
            meter_port, head = pipe_pair(clock=clock, line=IEC_SIGN_ON)
            sim = E450Simulator(clock=clock, seed=11)
            task = asyncio.ensure_future(sim.serve_optical(meter_port))
            await clock.sleep(2 * 3600)
            iec = Iec62056Client("E")
            await head.write(iec.send(SignOn()))
            ident = await iec_next(iec, head)
            assert isinstance(ident, Identification) and ident.mode_e and ident.manufacturer == "LGZ"
            await head.write(iec.send(OptionSelect(ident.baud_char, "2", "2")))
            while not isinstance(await iec_next(iec, head), HdlcHandOver):
                pass
            assert head.line == LineSettings(9600)  # 8N1 at the acknowledged speed

            link = HdlcConnection(Role.CLIENT, client_address=HdlcAddress.client(32), server_address=SERVER)
            await hdlc_connect(link, head)
            client = DlmsClient(authentication=Lls(b"00000000"))
            assert isinstance(await dlms_request(client, link, head, client.associate()), Associated)

            snap = sim.snapshot()
            for code, spec in REGISTERS.items():
                raw = _value(
                    await dlms_request(client, link, head, client.get(AttributeDescriptor(3, code, 2)))
                )
                su = _value(
                    await dlms_request(client, link, head, client.get(AttributeDescriptor(3, code, 3)))
                )
                scaler_unit = ScalerUnit.from_data(su)  # type: ignore[arg-type]
                assert scaler_unit.scaler == spec.scaler
                assert scaler_unit.symbol == spec.unit == CATALOGUE[code].unit
                value = scaler_unit.apply(value_of(raw))  # type: ignore[arg-type]
                expected = snap.values[code]
                assert isinstance(value, (int, Decimal)) and isinstance(expected, (int, float))
                # the clock did not move: values are those of the snapshot, to the register's resolution
                assert abs(float(value) - expected) <= 10.0**spec.scaler, code
            for code in (ObisCode.parse("0-0:42.0.0.255"), ObisCode.parse("0-0:96.1.0.255")):
                text = value_of(
                    _value(
                        await dlms_request(client, link, head, client.get(AttributeDescriptor(1, code, 2)))
                    )
                )  # type: ignore[arg-type]
                assert (text if isinstance(text, str) else bytes(text).decode()) == snap.values[code]  # type: ignore[arg-type]
            stamp = _value(
                await dlms_request(client, link, head, client.get(AttributeDescriptor(8, CLOCK_OBIS, 2)))
            )
            assert CosemDateTime.decode(stamp.value).to_datetime() == snap.at  # type: ignore[union-attr,arg-type]
            missing = _value(
                await dlms_request(
                    client, link, head, client.get(AttributeDescriptor(3, ObisCode.parse("1-0:99.99.0"), 2))
                )
            )
            assert missing is DataAccessResult.OBJECT_UNDEFINED

            link.disconnect()
            assert isinstance(await hdlc_next(link, head), Disconnected)
            iec.reset()  # the session is over: back to 300 baud 7E1, where the meter now listens
            await iec_next(iec, head)
            assert head.line == IEC_SIGN_ON
            await head.write(iec.send(SignOn()))
            assert isinstance(await iec_next(iec, head), Identification)
            task.cancel()

        clock.run(main())


def test_public_client_load_profile_with_range_and_entry_access() -> None:
    with VirtualClock() as clock:

        async def main() -> None:
            meter_port, head = pipe_pair(clock=clock)
            sim = E450Simulator(clock=clock, seed=2, reaction_time=0)
            task = asyncio.ensure_future(sim.serve_optical(meter_port))
            await clock.sleep(6 * 3600)
            iec = Iec62056Client("E")
            await head.write(iec.send(SignOn()))
            ident = await iec_next(iec, head)
            await head.write(iec.send(OptionSelect(ident.baud_char, "2", "2")))  # type: ignore[union-attr]
            while not isinstance(await iec_next(iec, head), HdlcHandOver):
                pass
            link = HdlcConnection(Role.CLIENT, client_address=HdlcAddress.client(16), server_address=SERVER)
            await hdlc_connect(link, head)
            client = DlmsClient()  # public client: no authentication
            assert isinstance(await dlms_request(client, link, head, client.associate()), Associated)
            capture = _value(
                await dlms_request(client, link, head, client.get(AttributeDescriptor(7, PROFILE_OBIS, 3)))
            )
            columns = CaptureObject.list_from_data(capture)  # type: ignore[arg-type]
            assert columns[0].class_id == ClassId.CLOCK
            buffer = _value(
                await dlms_request(client, link, head, client.get(AttributeDescriptor(7, PROFILE_OBIS, 2)))
            )
            rows = profile_rows(buffer, columns)  # type: ignore[arg-type]
            assert len(rows) == 25  # 0:00 .. 6:00 every quarter hour, fetched with block transfer
            start = sim.model.start
            window = range_descriptor(start + timedelta(hours=1), start + timedelta(hours=2))
            part = _value(
                await dlms_request(
                    client, link, head, client.get(AttributeDescriptor(7, PROFILE_OBIS, 2), window)
                )
            )
            selected = profile_rows(part, columns)  # type: ignore[arg-type]
            assert [r.timestamp for r in selected] == [
                start + timedelta(minutes=m) for m in (60, 75, 90, 105, 120)
            ]
            last_two = _value(
                await dlms_request(
                    client,
                    link,
                    head,
                    client.get(AttributeDescriptor(7, PROFILE_OBIS, 2), entry_descriptor(24, 25)),
                )
            )
            assert len(profile_rows(last_two, columns)) == 2  # type: ignore[arg-type]
            objects = _value(
                await dlms_request(
                    client, link, head, client.get(AttributeDescriptor(15, ASSOCIATION_OBIS, 2))
                )
            )
            listed = {bytes(item.items[2].value) for item in objects.items}  # type: ignore[union-attr,arg-type]
            assert all(bytes(code) in listed for code in REGISTERS)
            task.cancel()

        clock.run(main())


@pytest.mark.parametrize(("client_address", "auth"), [(32, Lls(b"wrong-pw")), (32, None)])
def test_association_refused_without_the_password(client_address: int, auth: Lls | None) -> None:
    with VirtualClock() as clock:

        async def main() -> object:
            meter_port, head = pipe_pair(clock=clock)
            sim = E450Simulator(clock=clock, seed=2, reaction_time=0)
            task = asyncio.ensure_future(sim.serve_optical(meter_port))
            iec = Iec62056Client("E")
            await head.write(iec.send(SignOn()))
            ident = await iec_next(iec, head)
            await head.write(iec.send(OptionSelect(ident.baud_char, "2", "2")))  # type: ignore[union-attr]
            while not isinstance(await iec_next(iec, head), HdlcHandOver):
                pass
            link = HdlcConnection(
                Role.CLIENT, client_address=HdlcAddress.client(client_address), server_address=SERVER
            )
            await hdlc_connect(link, head)
            client = DlmsClient(authentication=auth)
            result = await dlms_request(client, link, head, client.associate())
            task.cancel()
            return result

        assert isinstance(clock.run(main()), AssociationRejected)
