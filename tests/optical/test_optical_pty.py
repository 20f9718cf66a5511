"""The optical reader driver against our own meter role over a real PTY pair, with baud switching and faults.

The meter side runs on the PTY master; the driver opens the slave as a serial port (pyserial),
exactly as it would open an optical head. Before the meter transmits it checks the speed the
reader has set on its side of the PTY: the reader must have switched (within a second of slack
for a loaded machine; the exact instants are proven on a VirtualLine in test_optical_virtual_line).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from meterbridge.drivers.optical import OpticalReader, transport_line
from meterbridge.errors import AuthenticationError, ChecksumError, TransportError
from meterbridge.obis import ObisCode
from meterbridge.protocols.events import NEED_DATA
from meterbridge.protocols.iec62056_21 import (
    DataValue,
    HdlcHandOver,
    Identification,
    Iec62056Meter,
    MeterState,
    SwitchLine,
    Transmit,
    parse_data_block,
)
from meterbridge.transports import IEC_SIGN_ON, LineSettings, Parity, PtyTransport, open_pty_pair, open_serial

READOUT = parse_data_block(
    "F.F(00)\r\nC.1.0(31415926)\r\n1.8.0(012345.678*kWh)\r\n2.8.0(000010.490*kWh)\r\n"
    "32.7.0(231.4*V)\r\n31.7.0(001.25*A)\r\n14.7.0(49.98*Hz)\r\n1.6.0(01.234*kW)(2611281015)\r\n"
)
REACTION = 0.2  # IEC 62056-21 minimum reaction time of a meter (without the 20 ms flag)


@dataclass
class FakeMeter:
    """Serves one ``Iec62056Meter`` on a PTY master, with fault hooks."""

    port: PtyTransport
    meter: Iec62056Meter
    mangle: Callable[[bytes, int], bytes] | None = None  # (data, n-th transmit) -> data on the wire
    ignore_sign_ons: int = 0
    transmits: int = 0
    peer_mismatch: list[tuple[int | None, int]] = field(default_factory=list)
    handed_over: list[HdlcHandOver] = field(default_factory=list)
    hdlc_bytes: bytearray = field(default_factory=bytearray)

    async def run(self) -> None:
        await self.port.set_line(IEC_SIGN_ON)
        while True:
            data = await self.port.read(4096)
            if self.handed_over:
                self.hdlc_bytes += data
                continue
            if data.startswith(b"/?") and self.ignore_sign_ons:
                self.ignore_sign_ons -= 1
                continue
            self.meter.receive_data(data)
            first = True
            while (event := self.meter.next_event()) is not NEED_DATA:
                if isinstance(event, Transmit):
                    if first:
                        await asyncio.sleep(REACTION)
                        first = False
                    assert self.port.line is not None
                    peer = self.port.peer_baud()
                    for _ in range(100):  # on a loaded machine the reader's task may run late
                        if peer == self.port.line.baud:
                            break
                        await asyncio.sleep(0.01)
                        peer = self.port.peer_baud()
                    if peer != self.port.line.baud:
                        self.peer_mismatch.append((peer, self.port.line.baud))
                    wire = event.data
                    if self.mangle is not None:
                        wire = self.mangle(wire, self.transmits)
                    self.transmits += 1
                    await self.port.write(wire)
                    await self.port.drain()
                elif isinstance(event, SwitchLine):
                    await self.port.set_line(transport_line(event.line))
                elif isinstance(event, HdlcHandOver):
                    await self.port.set_line(transport_line(event.line))
                    self.handed_over.append(event)
                    self.hdlc_bytes += self.meter.trailing_data()


def make_meter(**kwargs: object) -> Iec62056Meter:
    options: dict[str, object] = {
        "readout": READOUT,
        "registers": {"1.8.0": (DataValue("012345.678", "kWh"),), "C.1.0": (DataValue("31415926"),)},
        "password": "00000000",
    }
    options.update(kwargs)
    return Iec62056Meter(Identification("LGZ", "5", "ZMF100AC.M26", "2"), **options)  # type: ignore[arg-type]


@pytest.fixture
async def pty() -> AsyncIterator[tuple[PtyTransport, str]]:
    master, path = await open_pty_pair(line=IEC_SIGN_ON)
    try:
        yield master, path
    finally:
        await master.close()


async def session(
    pty: tuple[PtyTransport, str], fake: FakeMeter, body: Callable[[OpticalReader], object], **reader: object
) -> object:
    _master, path = pty
    task = asyncio.create_task(fake.run())
    port = await open_serial(path, IEC_SIGN_ON)
    try:
        options: dict[str, object] = {"response_timeout": 1.0}
        options.update(reader)
        result = await body(OpticalReader(port, **options))  # type: ignore[arg-type, misc]
        for _ in range(200):  # a B0 gets no answer: give the meter its moment to read it
            if fake.meter.state is not MeterState.PROGRAMMING:
                break
            await asyncio.sleep(0.01)
        return result
    finally:
        await port.close()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def flip_in_readout(data: bytes, n: int, *, times: int = 1) -> bytes:
    """Flip one bit in the value of 1.8.0 of the first ``times`` readouts (the BCC no longer matches)."""
    if data.startswith(b"\x02") and b"1.8.0(" in data and n < 2 * times:
        i = data.index(b"1.8.0(") + 8
        return data[:i] + bytes((data[i] ^ 0x01,)) + data[i + 1 :]
    return data


async def test_readout_with_baud_switch(pty: tuple[PtyTransport, str]) -> None:
    fake = FakeMeter(pty[0], make_meter())
    result = await session(pty, fake, lambda r: r.readout())
    assert result.baud == 9600 and result.attempts == ()  # type: ignore[attr-defined]
    assert result.lines == READOUT  # type: ignore[attr-defined]
    by = {r.key: r for r in result.readings}  # type: ignore[attr-defined]
    assert by[ObisCode.parse("1-0:1.8.0")].value == Decimal("12345.678")
    assert by[ObisCode.parse("1-0:32.7.0")].unit == "V"
    assert {r.meter_id for r in result.readings} == {"31415926"}  # type: ignore[attr-defined]
    assert fake.peer_mismatch == []  # the reader was at the meter's speed whenever the meter spoke
    assert fake.port.line == IEC_SIGN_ON  # and both went back to 300 baud


async def test_lower_agreed_baud(pty: tuple[PtyTransport, str]) -> None:
    fake = FakeMeter(pty[0], make_meter())
    result = await session(pty, fake, lambda r: r.readout(), baud=2400)
    assert result.baud == 2400 and fake.peer_mismatch == []  # type: ignore[attr-defined]


async def test_garbled_bcc_is_retried_and_reported(pty: tuple[PtyTransport, str]) -> None:
    fake = FakeMeter(pty[0], make_meter(), mangle=flip_in_readout)
    result = await session(pty, fake, lambda r: r.readout())
    assert len(result.attempts) == 1 and "BCC mismatch" in result.attempts[0]  # type: ignore[attr-defined]
    assert result.lines == READOUT  # type: ignore[attr-defined]


async def test_silent_meter_times_out_then_answers(pty: tuple[PtyTransport, str]) -> None:
    fake = FakeMeter(pty[0], make_meter(), ignore_sign_ons=1)
    result = await session(pty, fake, lambda r: r.readout())
    assert len(result.attempts) == 1 and "timed out" in result.attempts[0]  # type: ignore[attr-defined]
    assert result.lines == READOUT  # type: ignore[attr-defined]


async def test_always_garbled_never_gives_a_value(pty: tuple[PtyTransport, str]) -> None:
    fake = FakeMeter(pty[0], make_meter(), mangle=lambda d, n: flip_in_readout(d, n, times=99))
    with pytest.raises(ChecksumError, match="gave up after 2 attempts"):
        await session(pty, fake, lambda r: r.readout(), retries=1)


async def test_silent_meter_gives_up(pty: tuple[PtyTransport, str]) -> None:
    fake = FakeMeter(pty[0], make_meter(), ignore_sign_ons=99)
    with pytest.raises(TransportError, match="gave up after 2 attempts"):
        await session(pty, fake, lambda r: r.readout(), retries=1)


async def test_programming_mode_reads(pty: tuple[PtyTransport, str]) -> None:
    def garble_first_answer(data: bytes, n: int) -> bytes:
        if data.startswith(b"\x021.8.0") and not garbled:
            garbled.append(n)
            return data[:4] + b"9" + data[5:]
        return data

    garbled: list[int] = []
    fake = FakeMeter(pty[0], make_meter(), mangle=garble_first_answer)
    result = await session(
        pty, fake, lambda r: r.read_registers(["1.8.0", "C.1.0", "99.99.9"], password="00000000")
    )
    regs = {r.address: r for r in result.registers}  # type: ignore[attr-defined]
    assert garbled  # the first answer was garbled, NAKed, and repeated
    assert regs["1.8.0"].reading.value == Decimal("12345.678")
    assert regs["1.8.0"].reading.meter_id == "31415926"
    assert regs["99.99.9"].values is None and regs["99.99.9"].error == "ER02"
    assert fake.peer_mismatch == [] and fake.port.line == IEC_SIGN_ON


async def test_wrong_password(pty: tuple[PtyTransport, str]) -> None:
    fake = FakeMeter(pty[0], make_meter())
    with pytest.raises(AuthenticationError, match="refused the P1 password"):
        await session(pty, fake, lambda r: r.read_registers(["1.8.0"], password="nope"))


async def test_mode_e_hand_over(pty: tuple[PtyTransport, str]) -> None:
    fake = FakeMeter(pty[0], make_meter())

    async def body(reader: OpticalReader) -> object:
        hand_over = await reader.hand_over()
        await hand_over.transport.write(b"\x7e\xa0\x07\x03\x21\x93\x0f\x01\x7e")
        await hand_over.transport.drain()
        for _ in range(100):
            if fake.hdlc_bytes:
                break
            await asyncio.sleep(0.01)
        return hand_over

    hand_over = await session(pty, fake, body)
    assert hand_over.line == LineSettings(9600, 8, Parity.NONE, 1)  # type: ignore[attr-defined]
    assert fake.handed_over and fake.port.line == LineSettings(9600, 8, Parity.NONE, 1)
    assert bytes(fake.hdlc_bytes).startswith(b"\x7e\xa0")
