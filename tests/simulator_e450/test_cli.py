"""``meterbridge simulate e450`` as a separate process, read with the protocol codecs.

Each test starts the command in a subprocess, waits for its ``ready`` line on stderr, talks to
the endpoints it announced (a PTY opened as a serial port, wrapper TCP and UDP sockets) and
stops it with SIGTERM at the end - which must end it cleanly and remove the PTY link.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from meterbridge.cli import _load_commands, app
from meterbridge.obis import ObisCode
from meterbridge.protocols.dlms.apdu import AttributeDescriptor
from meterbridge.protocols.dlms.association import (
    Associated,
    AuthenticationPending,
    DlmsClient,
    GetResult,
    HlsGmac,
    Lls,
)
from meterbridge.protocols.dlms.cosem import ClassId, value_of
from meterbridge.protocols.dlms.push import PushDecoder, PushReadings
from meterbridge.protocols.dlms.security import SecurityContext, SecurityKeys
from meterbridge.protocols.dlms.wrapper import WrapperFrame, WrapperStream
from meterbridge.protocols.events import NEED_DATA
from meterbridge.protocols.iec62056_21 import (
    DataMessage,
    Identification,
    Iec62056Client,
    OptionSelect,
    SignOn,
)
from meterbridge.transports import IEC_SIGN_ON, MBUS_2400, open_serial, open_tcp, open_udp

from .conftest import iec_next

# the command registers itself on ``meterbridge simulate``, which the M-Bus simulator's CLI module creates
pytest.importorskip(
    "meterbridge.cli.simulate", reason="meterbridge.cli.simulate (the simulate sub-app) is missing"
)

KEY = "000102030405060708090A0B0C0D0E0F"
AUTH = "D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF"
NAME = AttributeDescriptor(ClassId.DATA, ObisCode.parse("0-0:42.0.0.255"), 2)
ENERGY = AttributeDescriptor(ClassId.REGISTER, ObisCode.parse("1-0:1.8.0.255"), 2)


class Simulator:
    """The running command: its announced endpoints (``what -> where``) and its process."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.endpoints: list[tuple[str, str]] = []
        self.name = ""

    async def wait_ready(self, timeout: float = 30.0) -> None:
        assert self.process.stderr is not None
        while True:
            line = (await asyncio.wait_for(self.process.stderr.readline(), timeout)).decode()
            if not line:
                raise AssertionError("the simulator ended before it was ready")
            found = re.match(r"E450 (\S+): (.+?)(?: on (\S+)(?: -> \S+)?)?$", line.strip())
            if found is None:
                continue
            self.name = found[1]
            if found[2] == "ready":
                return
            self.endpoints.append((found[2], found[3]))

    def where(self, what: str, scheme: str = "") -> str:
        (found,) = (w for k, w in self.endpoints if k == what and w.startswith(scheme))
        return found

    def address(self, what: str, scheme: str) -> tuple[str, int]:
        host, port = self.where(what, scheme).removeprefix(f"{scheme}://").rsplit(":", 1)
        return host, int(port)


@contextlib.asynccontextmanager
async def simulator(*args: str) -> AsyncIterator[Simulator]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "meterbridge", "simulate", "e450", *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    sim = Simulator(process)
    try:
        await sim.wait_ready()
        yield sim
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()
    assert process.returncode == 0  # SIGTERM ends it cleanly


async def test_cii_pushes_on_a_pty_decrypt_and_verify(tmp_path: Path) -> None:
    link = tmp_path / "e450-cii"
    args = ("--pty", str(link), "--cii", "--key", KEY, "--auth-key", AUTH, "--push-interval", "0.2")
    async with simulator(*args, "--speed", "50", "--seed", "3") as sim:
        assert sim.where("CII push") == str(link)
        port = await open_serial(str(link), MBUS_2400)
        try:
            decoder = PushDecoder(framing="hdlc", keys=SecurityKeys(bytes.fromhex(KEY), bytes.fromhex(AUTH)))
            pushes: list[PushReadings] = []
            while len(pushes) < 3:
                decoder.receive_data(await port.read(4096, 10))
                for event in decoder.events():
                    assert isinstance(event, PushReadings), event  # not one error: every push verifies
                    pushes.append(event)
        finally:
            await port.close()
    assert all(p.authenticated and p.meter_id == sim.name for p in pushes)
    counters = [p.invocation_counter for p in pushes]
    assert counters == sorted(set(counters))  # rising: the replay guard accepted each one
    energy = [next(r.value for r in p.readings if str(r.key) == "1-1:1.8.0.255") for p in pushes]
    assert energy == sorted(energy)
    assert not link.exists() and not link.is_symlink()  # removed on SIGTERM


async def _wrapper_get(
    reader: WrapperStream, port, client: DlmsClient, apdu: bytes, source: int = 16
) -> object:  # type: ignore[no-untyped-def]
    await port.write(WrapperFrame(source, 1, apdu).encode())
    while (frame := reader.next_event()) is NEED_DATA:
        reader.receive_data(await port.read(4096, 10))
    assert isinstance(frame, WrapperFrame)
    return client.receive(frame.data)


async def test_optical_pty_and_wrapper_tcp_and_udp_are_one_meter(tmp_path: Path) -> None:
    link = tmp_path / "e450"
    args = (
        "--pty",
        str(link),
        "--wrapper-tcp",
        "127.0.0.1:0",
        "--wrapper-udp",
        "127.0.0.1:0",
        "--hls",
        f"{KEY}:{AUTH}",
    )
    async with simulator(*args, "--seed", "8", "--password", "pw345678") as sim:
        # the optical port: a mode C readout through the PTY with the baud switch
        port = await open_serial(str(link), IEC_SIGN_ON)
        try:
            iec = Iec62056Client("C")
            await port.write(iec.send(SignOn()))
            ident = await iec_next(iec, port, timeout=10)
            assert isinstance(ident, Identification) and ident.manufacturer == "LGZ"
            await port.write(iec.send(OptionSelect(ident.baud_char, "0")))
            while not isinstance(message := await iec_next(iec, port, timeout=10), DataMessage):
                pass
            serial = next(line[0].value for line in message.lines if line[0].address == "C.1.0")
        finally:
            await port.close()

        # a head-end over the wrapper on TCP: public client, GET of the logical device name
        tcp = await open_tcp(*sim.address("DLMS wrapper", "tcp"))
        try:
            stream, client = WrapperStream(), DlmsClient()
            assert isinstance(await _wrapper_get(stream, tcp, client, client.associate()), Associated)
            got = await _wrapper_get(stream, tcp, client, client.get(NAME))
            assert isinstance(got, GetResult)
            name = value_of(got.results[0])  # type: ignore[arg-type]
            assert (name.decode() if isinstance(name, bytes) else name) == sim.name
            # the management client (1) needs HLS-GMAC with the keys of --hls
            manager = DlmsClient(
                authentication=HlsGmac(
                    SecurityContext(keys=SecurityKeys(bytes.fromhex(KEY), bytes.fromhex(AUTH)))
                )
            )
            stream = WrapperStream()
            aarq = manager.associate()
            manager.outbox.clear()
            event = await _wrapper_get(stream, tcp, manager, aarq, source=1)
            assert isinstance(event, AuthenticationPending)
            event = await _wrapper_get(stream, tcp, manager, manager.outbox.popleft(), source=1)
            assert isinstance(event, Associated)
            assert isinstance(
                await _wrapper_get(stream, tcp, manager, manager.get(ENERGY), source=1), GetResult
            )
        finally:
            await tcp.close()

        # and on UDP, with the LLS password given on the command line (client 32)
        udp = await open_udp(*sim.address("DLMS wrapper", "udp"))
        try:
            lls_client = DlmsClient(authentication=Lls(b"pw345678"))
            await udp.write(WrapperFrame(32, 1, lls_client.associate()).encode())
            assert isinstance(
                lls_client.receive(WrapperFrame.decode(await udp.read_datagram(10)).data), Associated
            )
            await udp.write(WrapperFrame(32, 1, lls_client.get(ENERGY)).encode())
            energy = lls_client.receive(WrapperFrame.decode(await udp.read_datagram(10)).data)
            assert isinstance(energy, GetResult) and isinstance(value_of(energy.results[0]), int)  # type: ignore[arg-type]
        finally:
            await udp.close()
    assert serial.isdigit() and not link.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "at least one of"),
        (("--tcp", "4059"), "HOST:PORT"),
        (("--pty", "/tmp/x", "--tcp", "127.0.0.1:1"), "not both"),
        (("--wrapper-tcp", "127.0.0.1:0", "--cii"), "--cii needs"),
        (("--pty", "/tmp/x", "--key", "00"), "32 hex digits"),
        (("--pty", "/tmp/x", "--faults", "jitter=1"), "unknown"),
        (("--wrapper-tcp", "127.0.0.1:0", "--hls", KEY), "GUEK:GAK"),
    ],
)
def test_bad_options_are_refused_before_anything_starts(args: tuple[str, ...], message: str) -> None:
    _load_commands()
    result = CliRunner().invoke(app, ["simulate", "e450", *args])
    assert result.exit_code == 2
    assert message in result.output
