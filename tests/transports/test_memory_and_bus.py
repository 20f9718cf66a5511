"""In-memory pipe, the virtual line (timing, topology, collisions), echo cancelling, frame log."""

from __future__ import annotations

import asyncio
import io

import pytest

from meterbridge.transports import (
    MBUS_2400,
    EchoCanceller,
    FrameRecord,
    HexDumpWriter,
    LineSettings,
    LoggedTransport,
    TransportClosed,
    TransportTimeout,
    VirtualClock,
    VirtualLine,
    pipe_pair,
    shared_topology,
    wired_and,
)


def test_pipe_pair_read_write_exactly_until_and_close() -> None:
    with VirtualClock() as clock:

        async def main() -> None:
            a, b = pipe_pair(clock=clock)
            await a.write(b"/?!\r\n")
            assert await b.read_until(b"\r\n", timeout=1) == b"/?!\r\n"
            await a.write(b"\x10\x40")
            with pytest.raises(TransportTimeout) as err:
                await b.read_exactly(3, timeout=0.5)
            assert err.value.received == 2
            assert clock.monotonic() == 0.5  # timed out in virtual time
            await a.write(b"\xfe\x3e\x16")
            assert await b.read_exactly(5, timeout=1) == b"\x10\x40\xfe\x3e\x16"  # nothing was lost
            await a.write(b"ab")
            await a.close()
            assert await b.read(10) == b"ab"  # buffered bytes first ...
            with pytest.raises(TransportClosed):
                await b.read(10)  # ... then the close
            with pytest.raises(TransportClosed):
                await a.write(b"x")

        clock.run(main())


def test_read_returns_at_most_max_bytes_and_discard_drops_input() -> None:
    with VirtualClock() as clock:

        async def main() -> None:
            a, b = pipe_pair(clock=clock)
            await a.write(bytes(range(10)))
            assert await b.read(4) == bytes(range(4))
            b.discard_input()
            with pytest.raises(TransportTimeout):
                await b.read(4, timeout=0.1)

        clock.run(main())


def test_virtual_line_takes_transmit_time() -> None:
    with VirtualClock() as clock:
        bus = VirtualLine(MBUS_2400, clock=clock)
        master = bus.attach("master", role="master")
        slave = bus.attach("slave", role="slave")

        async def main() -> tuple[bytes, float, float]:
            await master.write(b"\x10\x40\x05\x45\x16")
            t_write = clock.monotonic()
            data = await slave.read_exactly(5, timeout=1)
            t_read = clock.monotonic()
            await master.drain()
            return data, t_write, t_read

        data, t_write, t_read = clock.run(main())
        assert data == b"\x10\x40\x05\x45\x16"
        assert t_write == 0  # write queues like a UART FIFO
        assert t_read == pytest.approx(5 * 11 / 2400)


def test_mbus_topology_slaves_do_not_hear_each_other_and_collide_at_master() -> None:
    with VirtualClock() as clock:
        bus = VirtualLine(MBUS_2400, clock=clock)
        master = bus.attach("master", role="master")
        s1 = bus.attach("s1")
        s2 = bus.attach("s2")

        async def main() -> tuple[bytes, bytes]:
            await s1.write(b"\x68\x11")
            await s2.write(b"\x68\x22")  # same start time: characters merge and AND
            got = await master.read_exactly(2, timeout=1)
            with pytest.raises(TransportTimeout):
                await s2.read(1, timeout=0.1)  # s2 did not hear s1
            await s1.write(b"\xe5")
            await s2.write(b"\xe5")  # two E5 still read as one clean E5
            e5 = await master.read(10, timeout=1)
            return got, e5

        got, e5 = clock.run(main())
        assert got == bytes([0x68, 0x11 & 0x22])
        assert e5 == b"\xe5"
        assert bus.collision_count == 3
        first = bus.collisions[0]
        assert first.receiver == "master"
        assert set(first.senders) == {"s1", "s2"}
        assert first.result == wired_and(first.values)


def test_shifted_overlap_garbles_each_character() -> None:
    with VirtualClock() as clock:
        bus = VirtualLine(MBUS_2400, clock=clock)
        master = bus.attach("master", role="master")
        s1 = bus.attach("s1")
        s2 = bus.attach("s2")

        async def main() -> bytes:
            await s1.write(b"\xff\xff")
            await clock.sleep(MBUS_2400.char_time / 2)
            await s2.write(b"\x0f\x0f")
            return await master.read_exactly(4, timeout=1)

        got = clock.run(main())
        assert got == b"\x0f\x0f\x0f\x0f"
        assert bus.collision_count == 4


def test_no_collision_when_transmissions_follow_each_other() -> None:
    with VirtualClock() as clock:
        bus = VirtualLine(MBUS_2400, clock=clock)
        master = bus.attach("master", role="master")
        s1 = bus.attach("s1")
        s2 = bus.attach("s2")

        async def main() -> bytes:
            await s1.write(b"\x01\x02")
            await s1.drain()
            await s2.write(b"\x03")
            return await master.read_exactly(3, timeout=1)

        assert clock.run(main()) == b"\x01\x02\x03"
        assert bus.collision_count == 0


def test_speed_mismatch_delivers_nonsense_and_7bit_receiver_masks() -> None:
    with VirtualClock() as clock:
        bus = VirtualLine(LineSettings(300, 7, "E", 1), clock=clock, hears=shared_topology)  # type: ignore[arg-type]
        meter = bus.attach("meter")
        head = bus.attach("head")

        async def main() -> tuple[bytes, bytes]:
            await meter.write(b"\xaf")  # 7 data bits on the wire
            masked = await head.read(1, timeout=1)
            await meter.set_line(LineSettings(9600, 7, "E", 1))  # type: ignore[arg-type]
            await meter.write(b"A")
            wrong = await head.read(1, timeout=1)
            return masked, wrong

        masked, wrong = clock.run(main())
        assert masked == b"\x2f"
        assert wrong != b"A"
        assert bus.line_errors == 1


def test_echo_canceller_drops_own_echo_only() -> None:
    with VirtualClock() as clock:
        bus = VirtualLine(MBUS_2400, clock=clock)
        raw = bus.attach("master", role="master", echo=True)
        master = EchoCanceller(raw)
        slave = bus.attach("slave")

        async def main() -> tuple[bytes, bytes]:
            await master.write(b"\x10\x5b\x01\x5c\x16")
            request = await slave.read_exactly(5, timeout=1)
            await slave.write(b"\xe5")
            reply = await master.read(10, timeout=1)
            return request, reply

        request, reply = clock.run(main())
        assert request == b"\x10\x5b\x01\x5c\x16"
        assert reply == b"\xe5"
        assert master.echo_dropped == 5
        assert master.echo_mismatches == 0


def test_echo_canceller_without_echo_passes_replies_that_start_like_the_request() -> None:
    with VirtualClock() as clock:
        a, b = pipe_pair(clock=clock, line=MBUS_2400)  # an adapter that does not echo
        master = EchoCanceller(a)

        async def main() -> bytes:
            await master.write(b"\x68\x03")
            await clock.sleep(1.0)  # the echo window has passed
            await b.write(b"\x68\x03\x03\x68")
            return await master.read_exactly(4, timeout=1)

        assert clock.run(main()) == b"\x68\x03\x03\x68"
        assert master.echo_missing == 2
        assert master.echo_dropped == 0


def test_logged_transport_records_both_directions_and_line_changes() -> None:
    with VirtualClock() as clock:
        a, b = pipe_pair(("dev-a", "dev-b"), clock=clock, line=MBUS_2400)
        records: list[FrameRecord] = []
        logged = LoggedTransport(a, records.append)

        async def main() -> None:
            await logged.write(b"\x10\x40\xfe\x3e\x16")
            await clock.sleep(0.5)
            await b.write(b"\xe5")
            assert await logged.read(1) == b"\xe5"
            await logged.set_line(LineSettings(9600, 8, "E", 1))  # type: ignore[arg-type]
            await logged.close()

        clock.run(main())
        assert [(r.direction, r.data) for r in records] == [
            ("tx", b"\x10\x40\xfe\x3e\x16"),
            ("rx", b"\xe5"),
            ("line", b""),
            ("event", b""),
        ]
        stream = io.StringIO()
        writer = HexDumpWriter(stream)
        for r in records:
            writer(r)
        lines = stream.getvalue().splitlines()
        assert lines[0] == "2026-01-01T00:00:00.000000Z tx dev-a 10 40 fe 3e 16"
        assert lines[1] == "2026-01-01T00:00:00.500000Z rx dev-a e5"
        assert lines[2].endswith("line dev-a 9600 8E1")


def test_wrapper_read_until_keeps_the_rest() -> None:
    with VirtualClock() as clock:
        a, b = pipe_pair(clock=clock)
        logged = LoggedTransport(a, lambda r: None)

        async def main() -> tuple[bytes, bytes]:
            await b.write(b"line1\r\nrest")
            first = await logged.read_until(b"\r\n", timeout=1)
            return first, await logged.read(100, timeout=1)

        assert clock.run(main()) == (b"line1\r\n", b"rest")


def test_many_devices_scan_in_virtual_time() -> None:
    """250 request/timeout cycles at 2400 baud: minutes of line time, no wall time."""
    with VirtualClock() as clock:
        bus = VirtualLine(MBUS_2400, clock=clock)
        master = bus.attach("master", role="master")
        slave = bus.attach("slave-7")

        async def responder() -> None:
            while True:
                req = await slave.read_exactly(5)
                if req[2] == 7:
                    await clock.sleep(MBUS_2400.bits(11))
                    await slave.write(b"\xe5")

        async def scan() -> list[int]:
            task = asyncio.get_running_loop().create_task(responder())
            found = []
            window = MBUS_2400.bits(330) + 0.05
            for address in range(250):
                await master.write(bytes([0x10, 0x40, address, (0x40 + address) & 0xFF, 0x16]))
                await master.drain()
                try:
                    await master.read(1, timeout=window)
                    found.append(address)
                except TimeoutError:
                    pass
            task.cancel()
            return found

        assert clock.run(scan()) == [7]
        # each address: 5 characters out, then the full reply window (one answers early)
        assert clock.monotonic() == pytest.approx(250 * (5 * 11 / 2400 + 0.1875), rel=0.01)
