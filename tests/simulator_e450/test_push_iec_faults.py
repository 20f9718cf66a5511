"""CII pushes decoded by the DLMS push decoder (plain, encrypted), the IEC readout over a real PTY, faults."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from meterbridge.errors import TransportError
from meterbridge.obis import ObisCode
from meterbridge.protocols.dlms.push import PushDecoder, PushError, PushReadings
from meterbridge.protocols.dlms.security import SecurityKeys
from meterbridge.protocols.iec62056_21 import (
    DataMessage,
    Identification,
    Iec62056Client,
    OptionSelect,
    SignOn,
    decode_readout,
)
from meterbridge.simulator.e450 import E450Simulator
from meterbridge.simulator.faults import FaultConfig, FaultyTransport, run_with_outages
from meterbridge.transports import (
    IEC_SIGN_ON,
    MBUS_2400,
    RealClock,
    ReopeningTransport,
    VirtualClock,
    open_pty_pair,
    open_serial,
    pipe_pair,
)

from .conftest import iec_next

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "dlms"
KEY = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
AUTH = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
START = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
OB = ObisCode.parse


def _pushes(sim_kwargs: dict[str, object], count: int) -> tuple[list[bytes], E450Simulator]:
    with VirtualClock(epoch=START) as clock:
        sim = E450Simulator(clock=clock, seed=7, **sim_kwargs)  # type: ignore[arg-type]
        meter, receiver = pipe_pair(clock=clock, line=MBUS_2400)
        chunks: list[bytes] = []

        async def main() -> None:
            await sim.push_loop(meter, 5.0, count=count)
            await meter.close()
            while True:
                try:
                    chunks.append(await receiver.read(4096, timeout=1))
                except TransportError:
                    return

        clock.run(main())
        assert clock.monotonic() == pytest.approx(5.0 * (count - 1))
        return chunks, sim


def test_plain_push_has_the_e450_layout_and_decodes() -> None:
    chunks, sim = _pushes({}, 3)
    decoder = PushDecoder(framing="hdlc", default_tz=ZoneInfo("Europe/Zurich"))  # pushes carry local time
    decoder.receive_data(b"".join(chunks))
    events = decoder.events()
    assert len(events) == 3 and all(isinstance(e, PushReadings) for e in events)
    first = events[0]
    assert isinstance(first, PushReadings)
    assert first.meter_id == sim.model.logical_device_name
    assert first.authenticated is None
    values = {str(r.key): r.value for r in first.readings}
    snap0 = sim.model.snapshot()  # energies only rose since the first push
    assert values["1-1:1.8.0.255"] <= snap0[OB("1-0:1.8.0")]
    # (the layout against the real capture, layer by layer: test_push_layout.py)
    ts = [e.timestamp for e in events if isinstance(e, PushReadings)]
    assert ts == [START, START + timedelta(seconds=5), START + timedelta(seconds=10)]


def _run_pushes(debug: bool) -> tuple[bytes, float]:
    with VirtualClock(epoch=START, debug=debug) as clock:
        assert clock.loop.get_debug() is debug
        sim = E450Simulator(clock=clock, seed=3, encryption_key=KEY)
        meter, receiver = pipe_pair(clock=clock, line=MBUS_2400)

        async def main() -> tuple[bytes, float]:
            await sim.push_loop(meter, 7.0, count=4)
            await meter.close()
            got = bytearray()
            with contextlib.suppress(TransportError):
                while True:
                    got += await receiver.read(4096, timeout=1)
            return bytes(got), clock.monotonic()

        return clock.run(main())


def test_virtual_clock_debug_mode_changes_nothing() -> None:
    """asyncio debug mode (on under ``-X dev`` unless the VirtualClock turns it off) only slows things."""
    debug, plain = _run_pushes(True), _run_pushes(False)
    assert debug == plain
    assert len(plain[0]) > 4 * 300 and plain[1] == pytest.approx(21.0)  # 4 pushes, 7 s apart


def test_encrypted_push_decrypts_verifies_and_refuses_replay() -> None:
    chunks, _sim = _pushes({"encryption_key": KEY, "authentication_key": AUTH}, 3)
    raw = b"".join(chunks)
    decoder = PushDecoder(framing="hdlc", keys=SecurityKeys(KEY, AUTH))
    decoder.receive_data(raw)
    events = decoder.events()
    assert [type(e) for e in events] == [PushReadings] * 3
    counters = [e.invocation_counter for e in events if isinstance(e, PushReadings)]
    assert counters == [1, 2, 3]
    assert all(e.authenticated for e in events if isinstance(e, PushReadings))
    assert all(
        e.system_title and e.system_title.startswith(b"LGZ") for e in events if isinstance(e, PushReadings)
    )
    decoder.receive_data(raw)  # the same pushes again: replays
    assert all(isinstance(e, PushError) for e in decoder.events())
    only_guek = PushDecoder(framing="hdlc", keys=SecurityKeys(KEY))
    only_guek.receive_data(raw)
    opened = only_guek.events()
    assert all(isinstance(e, PushReadings) and e.authenticated is False for e in opened)
    wrong = PushDecoder(framing="hdlc", keys=SecurityKeys(bytes(16), AUTH))
    wrong.receive_data(raw)
    assert all(isinstance(e, PushError) for e in wrong.events())


async def test_iec_readout_over_a_real_pty_with_baud_switch(tmp_path: Path) -> None:
    clock = RealClock()
    sim = E450Simulator(clock=clock, seed=5, reaction_time=0.01)
    meter, path = await open_pty_pair(str(tmp_path / "e450"), line=IEC_SIGN_ON)
    task = asyncio.ensure_future(sim.serve_optical(meter))
    reader = await open_serial(path, IEC_SIGN_ON)
    try:
        client = Iec62056Client("C")
        await reader.write(client.send(SignOn()))
        ident = await iec_next(client, reader)
        assert isinstance(ident, Identification) and ident.text.startswith("LGZ5")
        await reader.write(client.send(OptionSelect(ident.baud_char, "0")))
        message = await iec_next(client, reader)
        while not isinstance(message, DataMessage):
            message = await iec_next(client, reader)
        assert reader.line is not None and reader.line.baud == 9600  # switched as acknowledged
        values = {line[0].address: line[0].value for line in message.lines}
        energy = sim.model.energies()[OB("1-0:1.8.0")] / 1000
        assert 0 < energy - float(values["1.8.0"]) < 0.01  # read a moment ago, in kWh
        assert values["C.1.0"] == sim.model.serial_number
        assert 200 < float(values["32.7"]) < 260
        capture = decode_readout(message.encode())
        assert capture.message == message
    finally:
        task.cancel()
        await reader.close()
        await meter.close()


def test_faults_damage_what_the_meter_sends() -> None:
    with VirtualClock() as clock:
        a, b = pipe_pair(clock=clock)
        config = FaultConfig(drop_rate=0.05, flip_rate=0.05, extra_rate=0.5, late_rate=0.5, late_delay=2.0,
                             silent=((100.0, 50.0),), seed=3)  # fmt: skip
        faulty = FaultyTransport(a, config)
        sent = bytes(range(200))

        async def main() -> tuple[bytes, float, bytes]:
            got = bytearray()
            for _ in range(10):
                await faulty.write(sent)
            while True:
                try:
                    got += await b.read(4096, timeout=0.1)
                except TimeoutError:
                    break
            elapsed = clock.monotonic()
            await clock.sleep(120 - clock.monotonic())
            await faulty.write(b"silent")
            try:
                late = await b.read(10, timeout=1)
            except TimeoutError:
                late = b""
            return bytes(got), elapsed, late

        got, elapsed, late = clock.run(main())
        s = faulty.stats
        assert s.dropped > 0 and s.flipped > 0 and s.extra > 0 and s.late > 0
        assert len(got) == 10 * 200 - s.dropped + s.extra
        assert got != sent * 10
        assert elapsed >= s.late * 2.0  # late replies cost virtual time
        assert late == b"" and s.silenced == 1
        assert FaultyTransport(a, config).damage(sent) == FaultyTransport(a, config).damage(sent)  # seeded


def test_fault_config_parse() -> None:
    config = FaultConfig.parse("drop=0.01,flip=0.002,late=0.1,late_delay=0.6,silent=30+10,outage=60+5")
    assert config.drop_rate == 0.01 and config.late_delay == 0.6
    assert config.silent == ((30.0, 10.0),) and config.outages == ((60.0, 5.0),)
    with pytest.raises(ValueError, match="unknown"):
        FaultConfig.parse("jitter=1")
    with pytest.raises(ValueError, match=r"within 0\.\.1"):
        FaultConfig.parse("drop=2")
    with pytest.raises(ValueError, match="START\\+DURATION"):
        FaultConfig.parse("silent=30")


async def test_pty_port_vanishes_and_returns_and_the_reader_reopens(tmp_path: Path) -> None:
    clock = RealClock()
    link = str(tmp_path / "e450")
    sim = E450Simulator(clock=clock, seed=5, reaction_time=0)
    events: list[str] = []

    async def open_port():  # type: ignore[no-untyped-def]
        port, _ = await open_pty_pair(link, line=IEC_SIGN_ON)
        return port

    async def close_port(port) -> None:  # type: ignore[no-untyped-def]
        await port.close()

    outage = asyncio.ensure_future(
        run_with_outages(
            open_port,
            close_port,
            sim.serve_optical,
            [(0.3, 0.3)],
            clock=clock,
            on_event=lambda kind, t: events.append(kind),
        )
    )
    await asyncio.sleep(0.05)
    reader = await ReopeningTransport(
        lambda: open_serial(link, IEC_SIGN_ON), name=link, initial_delay=0.05, max_delay=0.1
    ).start(timeout=5)
    try:
        client = Iec62056Client("C")
        await reader.write(client.send(SignOn()))
        assert isinstance(await iec_next(client, reader), Identification)
        with pytest.raises(TransportError):
            await reader.read(10, timeout=5)  # the port vanished
        await reader.wait_open(timeout=5)
        assert events == ["down", "up"]
        client.reset()
        await reader.write(client.send(SignOn()))
        assert isinstance(await iec_next(client, reader), Identification)
    finally:
        outage.cancel()
        await reader.close()
        await asyncio.gather(outage, return_exceptions=True)
