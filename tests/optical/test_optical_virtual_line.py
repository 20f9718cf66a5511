"""The optical reader on a VirtualLine in virtual time: exact switch-over instants, line time, faults.

A VirtualLine delivers each character at the end of its stop bit and garbles it when the
receiver is set to another speed or format, so ``line_errors == 0`` proves that both sides
switched between the acknowledgement and the data, with the meter answering after the
fast reaction time (20 ms) that IEC 62056-21 allows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal

import pytest

from meterbridge.drivers.optical import OpticalReader, OpticalReadout, transport_line
from meterbridge.errors import ChecksumError
from meterbridge.obis import ObisCode
from meterbridge.protocols.events import NEED_DATA
from meterbridge.protocols.iec62056_21 import (
    DataMessage,
    HdlcHandOver,
    Identification,
    Iec62056Meter,
    SignOn,
    SwitchLine,
    Transmit,
    parse_data_block,
)
from meterbridge.transports import IEC_SIGN_ON, Transport, VirtualClock, VirtualLine, shared_topology

READOUT = parse_data_block(
    "C.1.0(27182818)\r\n1.8.0(000123.456*kWh)\r\n2.8.0(000000.000*kWh)\r\n16.7.0(-00.250*kW)\r\n"
    "32.7.0(229.9*V)\r\n52.7.0(230.4*V)\r\n72.7.0(231.0*V)\r\n32.7.124(002.1*%)\r\n"
)
REACTION = 0.02
IDENT = Identification("LGz", "5", "E450TEST", "2")  # lower-case third letter: 20 ms reaction


async def serve(
    port: Transport, meter: Iec62056Meter, mangle: Callable[[bytes], bytes] = lambda b: b
) -> None:
    await port.set_line(IEC_SIGN_ON)
    while True:
        meter.receive_data(await port.read(4096))
        first = True
        while (event := meter.next_event()) is not NEED_DATA:
            if isinstance(event, Transmit):
                if first:
                    await port.clock.sleep(REACTION)
                    first = False
                await port.write(mangle(event.data))
                await port.drain()
            elif isinstance(event, SwitchLine | HdlcHandOver):
                await port.set_line(transport_line(event.line))


def run(
    mangle: Callable[[bytes], bytes] = lambda b: b, **reader: object
) -> tuple[OpticalReadout, VirtualLine]:
    clock = VirtualClock()

    async def main() -> tuple[OpticalReadout, VirtualLine]:
        line = VirtualLine(IEC_SIGN_ON, clock=clock, hears=shared_topology)
        meter_port = line.attach("meter")
        reader_port = line.attach("reader", role="master")
        server = asyncio.create_task(serve(meter_port, Iec62056Meter(IDENT, readout=READOUT), mangle))
        try:
            result = await OpticalReader(reader_port, **reader).readout()  # type: ignore[arg-type]
        finally:
            server.cancel()
            await asyncio.gather(server, return_exceptions=True)
        return result, line

    with clock:
        return clock.run(main())


def test_switch_instants_and_line_time() -> None:
    result, line = run()
    assert line.line_errors == 0
    assert result.lines == READOUT and result.baud == 9600
    values = {r.key: r.value for r in result.readings}
    assert values[ObisCode.parse("1-0:16.7.0")] == Decimal("-0.25")
    slow = len(SignOn().encode()) + len(IDENT.encode()) + 6  # sign-on, identification, ACK at 300 baud
    fast = len(DataMessage(READOUT).encode())
    floor = slow * 10 / 300 + fast * 10 / 9600
    # line time plus the meter's two reaction times, nothing else (no sleeps, no time-outs)
    assert result.duration == pytest.approx(floor + 2 * REACTION, abs=1e-6)


def test_every_speed() -> None:
    for baud in (300, 600, 1200, 2400, 4800, 9600):
        result, line = run(baud=baud)
        assert result.baud == baud and line.line_errors == 0 and result.lines == READOUT


def test_garbled_readouts_never_become_values() -> None:
    count = 0

    def flip_two_in_a_row(data: bytes) -> bytes:
        nonlocal count
        if not data.startswith(b"\x02"):
            return data
        count += 1
        if count > 2:
            return data
        i = data.index(b"229.9") + 1
        return data[:i] + b"3" + data[i + 1 :]  # 229.9 -> 239.9: BCC no longer matches

    result, _ = run(flip_two_in_a_row)
    assert len(result.attempts) == 2 and all("BCC" in a for a in result.attempts)
    assert {r.key: r.value for r in result.readings}[ObisCode.parse("1-0:32.7.0")] == Decimal("229.9")
    count = -100
    with pytest.raises(ChecksumError, match="gave up after 3 attempts"):
        run(flip_two_in_a_row)
