"""The M-Bus master driver against the simulated bus: in virtual line time, over TCP, on a PTY."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import TypeVar

import pytest

from meterbridge.drivers.mbus_master import (
    MBusMaster,
    MBusReadError,
    Outcome,
    parse_target,
    reply_window,
)
from meterbridge.protocols.mbus import SndNke, VariableDataResponse, decode_telegram
from meterbridge.simulator.faults import FaultConfig
from meterbridge.simulator.mbus import MBusSimulator, build_bus
from meterbridge.transports import RealClock, VirtualClock, VirtualLine
from meterbridge.transports.line import MBUS_2400

T = TypeVar("T")


def on_virtual_bus(
    sim: MBusSimulator, body: Callable[[MBusMaster], Awaitable[T]], **master_options: object
) -> T:
    """Run ``body(master)`` against ``sim`` on a VirtualLine in virtual time."""
    clock = VirtualClock()

    async def main() -> T:
        line = VirtualLine(MBUS_2400, clock=clock)
        master_port = line.attach("master", role="master")
        bus_port = line.attach("bus", role="slave")
        task = asyncio.ensure_future(sim.serve(bus_port))
        try:
            return await body(MBusMaster(master_port, **master_options))  # type: ignore[arg-type]
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    try:
        return clock.run(main())
    finally:
        clock.close()


def sent_records(sim: MBusSimulator, primary: int) -> object:
    last = sim.slave(primary)._last
    assert last is not None
    response = decode_telegram(last)
    assert isinstance(response, VariableDataResponse)
    return response.records


def test_twenty_meters_primary_secondary_and_reads() -> None:
    sim = build_bus(20, seed=11)

    async def body(master: MBusMaster) -> None:
        primary = await master.scan_primary()
        assert [e.address for e in primary.found] == list(range(1, 21))
        assert not primary.collisions and primary.retries == 0
        by_address = {s.primary: s for s in sim.slaves}
        for entry in primary.found:
            assert entry.secondary == by_address[entry.address].secondary
            assert entry.medium in ("electricity", "heat_outlet", "water", "gas")
        secondary = await master.scan_secondary()
        assert {str(e.secondary) for e in secondary.found} == {str(s.secondary) for s in sim.slaves}
        assert not secondary.unresolved
        # faster than any primary scan can be (251 x (request + reply window))
        floor = 251 * (MBUS_2400.transmit_time(5) + reply_window(MBUS_2400))
        assert secondary.line_time < floor
        for address in (1, 2, 3, 4):
            result = await master.read(address)
            (response,) = result.responses
            assert isinstance(response, VariableDataResponse)
            assert response.records == sent_records(sim, address)  # the simulator's values
            readings = result.readings()
            assert readings and all(
                r.meter_id.endswith(by_address[address].secondary.identification) for r in readings
            )
        # read by secondary address (select + application reset)
        slave = sim.slaves[7]
        result = await master.read(slave.secondary)
        assert result.responses[0].records == sent_records(sim, slave.primary)  # type: ignore[union-attr]

    on_virtual_bus(sim, body)


def test_counters_rise_between_reads() -> None:
    sim = build_bus(1, seed=5, kinds=["electricity"])

    async def body(master: MBusMaster) -> None:
        first = {r.key: r.value for r in (await master.read(1)).readings()}
        await master.clock.sleep(3600)
        second = {r.key: r.value for r in (await master.read(1)).readings()}
        key = "mbus/1/energy/instantaneous/s0/t0/u0"
        assert isinstance(first[key], int) and second[key] > first[key]  # type: ignore[operator]

    on_virtual_bus(sim, body)


def test_shared_primary_address_with_consecutive_serials() -> None:
    # meters 3 and 4 share primary address 3; serial numbers are consecutive
    sim = build_bus(5, seed=3, primary=[1, 2, 3, 3, 4], consecutive=True, first_id=41000000)

    async def body(master: MBusMaster) -> None:
        primary = await master.scan_primary(range(0, 8))
        assert primary.collisions == (3,)
        assert [e.address for e in primary.found] == [1, 2, 3, 4]
        entry = next(e for e in primary.found if e.address == 3)
        assert entry.collision and entry.retries == master.retries
        secondary = await master.scan_secondary()
        assert sorted(e.secondary.identification for e in secondary.found) == [
            f"{41000000 + i}" for i in range(5)
        ]
        assert secondary.collisions >= 7  # shared prefix 4100000x is narrowed digit by digit
        with pytest.raises(MBusReadError):
            await master.read(3)  # two meters answer: never a value

    on_virtual_bus(sim, body)


def test_ten_consecutive_meters_cost_about_ten_probes_per_prefix() -> None:
    sim = build_bus(10, seed=8, consecutive=True, first_id=55500000)

    async def body(master: MBusMaster) -> None:
        result = await master.scan_secondary()
        assert len(result.found) == 10
        assert 70 <= result.probes <= 110  # FIELD_NOTES: at least 70

    on_virtual_bus(sim, body)


def test_secondary_scan_hex_digits_and_same_identification() -> None:
    from meterbridge.protocols.mbus import SecondaryAddress
    from meterbridge.simulator.mbus_slave import make_slave

    slaves = [make_slave(i + 1, 10000000 + i, "water", seed=i) for i in range(5)]
    # identifications with hex digits (seen on real electricity meters: "0500023E")
    slaves[0].secondary = SecondaryAddress("0500023A", 0x4CAE, 1, 2)
    slaves[1].secondary = SecondaryAddress("0500023B", 0x4CAE, 1, 2)
    # the same identification, told apart only by the medium (a hex field)
    slaves[2].secondary = SecondaryAddress("77777777", 0x4CAE, 1, 7)
    slaves[3].secondary = SecondaryAddress("77777777", 0x4CAE, 1, 6)
    # two slaves with one and the same secondary address: reported, never merged
    slaves[4].secondary = SecondaryAddress("77777777", 0x4CAE, 1, 6)
    sim = MBusSimulator(slaves)

    async def body(master: MBusMaster) -> None:
        result = await master.scan_secondary()
        found = {str(e.secondary) for e in result.found}
        assert {"0500023A4CAE0102", "0500023B4CAE0102", "777777774CAE0107"} <= found
        assert result.unresolved == ("777777774CAE0106",)

    on_virtual_bus(sim, body)


def test_empty_bus_primary_scan_is_at_the_floor() -> None:
    sim = build_bus(0)

    async def body(master: MBusMaster) -> float:
        result = await master.scan_primary()
        assert result.found == () and result.probes == 251
        return result.line_time

    line_time = on_virtual_bus(sim, body)
    floor = 251 * (MBUS_2400.transmit_time(5) + reply_window(MBUS_2400))
    assert floor <= line_time <= floor * 1.05


def test_multi_telegram_read_with_fcb() -> None:
    sim = build_bus(2, seed=2, multi_telegram=[0])

    async def body(master: MBusMaster) -> None:
        result = await master.read(1)
        assert len(result.responses) >= 2
        assert all(r.more_records_follow for r in result.responses[:-1])
        assert not result.responses[-1].more_records_follow
        keys = [r.key for r in result.readings()]
        assert len(keys) == len(set(keys))  # indices continue across telegrams
        storages = {r.key.split("/")[4] for r in result.readings()}  # type: ignore[union-attr]
        assert "s15" in storages  # the history on the second telegram arrived

    on_virtual_bus(sim, body)


def test_faults_recover_and_report() -> None:
    faults = FaultConfig(
        drop_rate=0.002, extra_rate=0.05, late_rate=0.03, late_delay=0.5, mute_rate=0.05, seed=4
    )
    sim = build_bus(3, seed=6, faults=faults, multi_telegram=[1])

    async def body(master: MBusMaster) -> tuple[int, int]:
        ok = failed = 0
        for round_ in range(24):
            address = 1 + round_ % 3
            try:
                result = await master.read(address)
            except MBusReadError:
                failed += 1  # reported, never a value
                continue
            ok += 1
            slave = sim.slave(address)
            layouts = {len(decode_telegram(p).records) for p in slave.pages(0)}  # type: ignore[union-attr]
            for response in result.responses:
                assert isinstance(response, VariableDataResponse)
                assert response.identification == slave.secondary.identification
                assert response.address == address
                assert len(response.records) in layouts
        return ok, failed

    ok, _failed = on_virtual_bus(sim, body, retries=3)
    assert ok >= 16  # retries with the same FCB recover most reads


class OneCorruptBytePerReply:
    """Wraps the bus port: every other long reply gets exactly one byte changed."""

    def __init__(self, inner: object, seed: int) -> None:
        import random

        self.inner = inner
        self.rng = random.Random(seed)
        self.count = 0
        self.corrupted = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    async def write(self, data: bytes) -> None:
        if len(data) > 1:
            self.count += 1
        if len(data) > 1 and self.count % 2:
            data = bytearray(data)
            data[self.rng.randrange(len(data))] ^= self.rng.randrange(1, 256)
            data = bytes(data)
            self.corrupted += 1
        await self.inner.write(data)  # type: ignore[attr-defined]


def test_corrupt_reply_is_retried_with_same_fcb_and_values_match() -> None:
    # One changed byte always changes the arithmetic checksum (or the frame's structure):
    # the master must reject it, ask again with the same FCB, and get the slave's repeat.
    sim = build_bus(2, seed=1, kinds=["heat"], multi_telegram=[1])
    clock = VirtualClock()

    async def main() -> int:
        line = VirtualLine(MBUS_2400, clock=clock)
        master_port = line.attach("master", role="master")
        bus_port = OneCorruptBytePerReply(line.attach("bus", role="slave"), seed=3)
        task = asyncio.ensure_future(sim.serve(bus_port))  # type: ignore[arg-type]
        master = MBusMaster(master_port, retries=3)
        for address in (1, 2, 1, 2, 1, 2):
            result = await master.read(address)
            assert result.retries >= 1
            pages = [decode_telegram(p) for p in sim.slave(address).pages(0)]
            assert len(result.responses) == len(pages)
            assert result.responses[-1].records == sent_records(sim, address)  # type: ignore[union-attr]
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return bus_port.corrupted

    try:
        assert clock.run(main()) >= 6
    finally:
        clock.close()


def test_silent_and_late_meters() -> None:
    sim = build_bus(3, seed=7, silent=[1])
    sim.slave(3).reply_delay_bits = 330 + 2400 * 0.2  # answers after the reply window closed

    async def body(master: MBusMaster) -> None:
        # meter 3 answers after the window: not found (its late E5 falls after the scan)
        result = await master.scan_primary(range(0, 4), identify=False)
        assert [e.address for e in result.found] == [1]
        await master.clock.sleep(1.0)  # let the late E5 pass
        answer = await master.exchange(SndNke(2))
        assert answer.outcome is Outcome.NONE

    on_virtual_bus(sim, body)


def test_set_primary_address_and_switch_baud() -> None:
    sim = build_bus(2, seed=3)

    async def body(master: MBusMaster) -> None:
        await master.set_primary_address(2, 42)
        result = await master.scan_primary(range(40, 45), identify=False)
        assert [e.address for e in result.found] == [42]
        await master.set_primary_address(sim.slaves[0].secondary, 7)
        assert sim.slaves[0].primary == 7
        await master.switch_baud(42, 9600)
        assert master.line.baud == 9600
        read = await master.read(42)
        assert read.responses

    on_virtual_bus(sim, body)


def test_address_zero_and_broadcast() -> None:
    sim = build_bus(2, seed=3, primary=[0, 5])

    async def body(master: MBusMaster) -> None:
        result = await master.scan_primary(range(0, 6), identify=False)
        assert [e.address for e in result.found] == [0, 5]
        answer = await master.exchange(SndNke(254), full_window=True)  # everyone answers
        assert answer.outcome is Outcome.GARBLED

    on_virtual_bus(sim, body)


def test_parse_target() -> None:
    assert parse_target("5") == 5
    assert str(parse_target("1234567830E20203")) == "1234567830E20203"
    assert parse_target("1234FFFFFFFFFFFF") == "1234FFFFFFFFFFFF"
    with pytest.raises(ValueError):
        parse_target("251")
    with pytest.raises(ValueError):
        parse_target("xyz")


def test_over_tcp_real_time() -> None:
    from meterbridge.transports import open_transport
    from meterbridge.transports.sockets import serve_tcp

    sim = build_bus(2, seed=12)

    async def main() -> None:
        server = await serve_tcp(sim.serve, "127.0.0.1", 0)
        try:
            transport = await open_transport(f"tcp://127.0.0.1:{server.port}", line=MBUS_2400)
            master = MBusMaster(transport, line=MBUS_2400, extra_timeout=0.1)
            result = await master.scan_primary(range(0, 3))
            assert [e.address for e in result.found] == [1, 2]
            assert result.found[0].secondary == sim.slave(1).secondary
            read = await master.read(2)
            assert read.responses[0].records == sent_records(sim, 2)  # type: ignore[union-attr]
            value = next(
                r.value for r in read.readings() if "/volume/" in str(r.key) or "/energy/" in str(r.key)
            )
            assert isinstance(value, (int, Decimal))
            await transport.close()
        finally:
            await server.close()

    asyncio.run(main())
    assert RealClock() is not None


@pytest.mark.skipif(not os.path.exists("/dev/ptmx"), reason="no PTY support on this machine")
def test_over_a_real_pty(tmp_path: object) -> None:
    from meterbridge.transports import open_transport
    from meterbridge.transports.pty import open_pty_pair

    sim = build_bus(2, seed=13)

    async def main() -> None:
        pty_master, path = await open_pty_pair(line=MBUS_2400)
        task = asyncio.ensure_future(sim.serve(pty_master))
        try:
            transport = await open_transport(path, line=MBUS_2400)
            master = MBusMaster(transport, line=MBUS_2400, extra_timeout=0.05)
            result = await master.scan_primary(range(1, 3))
            assert [e.address for e in result.found] == [1, 2]
            read = await master.read(1)
            assert read.responses[0].records == sent_records(sim, 1)  # type: ignore[union-attr]
            await transport.close()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
            await pty_master.close()

    asyncio.run(main())
