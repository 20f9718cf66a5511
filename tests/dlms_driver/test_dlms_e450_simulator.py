"""The DLMS client against the virtual E450 (``meterbridge.simulator``): optical port over a real PTY, wrapper over TCP and UDP.

The reader signs on at 300 baud (IEC 62056-21), asks for mode E, and the optical driver hands
the line to this DLMS client (``read_after_hand_over``), exactly as with a real optical head.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from meterbridge.drivers.dlms_client import AssociationRefused, DlmsSession, HdlcLink, open_session
from meterbridge.drivers.optical import read_mode_e
from meterbridge.obis import ObisCode
from meterbridge.protocols.dlms.association import Lls
from meterbridge.simulator.e450 import E450Simulator
from meterbridge.transports import RealClock, serve_tcp

ENERGY = ObisCode.parse("1-0:1.8.0")
VOLTAGE = ObisCode.parse("1-0:32.7.0")
CURRENT = ObisCode.parse("1-0:31.7.0")
FREQUENCY = ObisCode.parse("1-0:14.7.0")


def simulator(**options: object) -> E450Simulator:
    now = datetime.now(UTC)
    return E450Simulator(
        clock=RealClock(), seed=7, start=now - timedelta(hours=6), reaction_time=0.05, **options
    )  # type: ignore[arg-type]


async def test_mode_e_hand_over_to_the_dlms_client(optical_port: Any) -> None:
    sim = simulator()
    async with optical_port(sim) as reader:
        before = sim.snapshot()
        readings = await read_mode_e(reader, [str(ENERGY), str(VOLTAGE), str(CURRENT), str(FREQUENCY)])
        after = sim.snapshot()
    got = {r.key: r for r in readings}
    assert set(got) == {ENERGY, VOLTAGE, CURRENT, FREQUENCY}
    assert before[ENERGY] <= got[ENERGY].value <= after[ENERGY]
    assert got[ENERGY].unit == "Wh" and isinstance(got[ENERGY].value, int)
    voltage = got[VOLTAGE].value
    assert isinstance(voltage, Decimal) and voltage.as_tuple().exponent == -1 and 200 < voltage < 260
    assert got[VOLTAGE].unit == "V" and got[CURRENT].unit == "A" and got[FREQUENCY].unit == "Hz"
    assert isinstance(got[FREQUENCY].value, Decimal) and 49 < got[FREQUENCY].value < 51
    assert {r.meter_id for r in readings} == {sim.model.logical_device_name}
    assert sim.dlms_sessions == 1


async def test_mode_e_with_a_password(optical_port: Any) -> None:
    sim = simulator(dlms_password=b"secret12")
    async with optical_port(sim) as reader:
        readings = await read_mode_e(reader, [str(ENERGY)], password="secret12")
    assert [(r.key, r.unit) for r in readings] == [(ENERGY, "Wh")]


async def test_lls_client_and_load_profile_after_hand_over(optical_port: Any) -> None:
    sim = simulator(dlms_password=b"secret12")
    async with optical_port(sim) as reader:
        hand_over = await reader.hand_over()
        link = HdlcLink(hand_over.transport, client=1, pending=hand_over.pending, timeout=1.5)
        async with DlmsSession(link, authentication=Lls(b"secret12")) as meter:
            clock = await meter.read_clock()
            end = clock
            start = end - timedelta(hours=2)
            profile = await meter.read_profile("1-0:99.1.0", start, end)
    assert abs((clock - datetime.now(UTC)).total_seconds()) < 60
    energies = [r for r in profile if r.key == ENERGY]
    assert 7 <= len(energies) <= 9  # 15-minute rows in two hours
    assert all(start <= r.timestamp <= end for r in profile)
    values = [r.value for r in energies]
    assert values == sorted(values)  # an energy register only rises
    assert all(r.unit == "Wh" for r in energies)


async def test_wrong_lls_password_is_refused(optical_port: Any) -> None:
    sim = simulator(dlms_password=b"secret12")
    async with optical_port(sim) as reader:
        hand_over = await reader.hand_over()
        link = HdlcLink(hand_over.transport, client=1, pending=hand_over.pending, timeout=1.5)
        with pytest.raises(AssociationRefused):
            await DlmsSession(link, authentication=Lls(b"wrong123")).open()


async def test_wrapper_over_tcp_and_udp_as_a_head_end() -> None:
    sim = simulator()
    server = await serve_tcp(sim.serve_wrapper)
    udp = await sim.serve_wrapper_udp()
    try:
        for url in (f"tcp://127.0.0.1:{server.port}", f"udp://127.0.0.1:{udp.port}"):
            meter = await open_session(url, framing="wrapper", timeout=2.0)
            try:
                before = sim.snapshot()
                readings = await meter.read_registers([ENERGY, VOLTAGE, CURRENT])
                after = sim.snapshot()
                now = await meter.read_clock()
                profile = await meter.read_profile("1-0:99.1.0", now - timedelta(hours=1), now)
            finally:
                await meter.close()
            got = {r.key: r for r in readings}
            assert before[ENERGY] <= got[ENERGY].value <= after[ENERGY], url
            assert got[VOLTAGE].unit == "V" and got[CURRENT].unit == "A"
            assert meter.meter_id == sim.model.logical_device_name
            assert 3 <= len([r for r in profile if r.key == ENERGY]) <= 5
    finally:
        await server.close()
        await udp.close()
