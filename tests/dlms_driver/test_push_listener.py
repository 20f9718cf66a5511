"""The push listener on real transports: the E450 vector frames through a PTY and TCP with noise,
encrypted pushes built from the Green Book keys, M-Bus framed pushes, and the ``listen`` CLI."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from meterbridge.drivers.push_listener import PushListener
from meterbridge.errors import AuthenticationError, ChecksumError, ReplayError
from meterbridge.obis import ObisCode
from meterbridge.protocols.dlms.apdu import GeneralGloCiphering
from meterbridge.protocols.dlms.push import PushError, PushReadings, RegisterFormat
from meterbridge.protocols.dlms.security import SecurityKeys, encrypt
from meterbridge.protocols.dlms.transfer import split_general_block_transfer
from meterbridge.protocols.hdlc import HdlcFrame
from meterbridge.readings import Quality, Reading
from meterbridge.transports import (
    MBUS_2400,
    LoggedTransport,
    ReopeningTransport,
    Transport,
    open_pty_pair,
    open_serial,
    open_tcp,
    pipe_pair,
    serve_tcp,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "dlms"
PUSH = json.loads((VECTORS / "e450_cii_push_unencrypted.json").read_text())
GCM = json.loads((VECTORS / "green_book_gcm.json").read_text())
FRAMES = [bytes.fromhex(f) for f in PUSH["frames_hex"]]
WIRE = b"".join(FRAMES)
EXPECTED = {ObisCode.parse(k): v for k, v in PUSH["expected"]["values"].items()}
GUEK = bytes.fromhex(GCM["encryption_key"])
GAK = bytes.fromhex(GCM["authentication_key"])
TITLE = b"LGZ" + bytes.fromhex("6700BC614E")
CURRENTS = {ObisCode.parse(f"1-0:{c}.7.0.255"): RegisterFormat(scaler=-2) for c in (31, 51, 71)}
NOISE = bytes.fromhex("00 FF 7E 13 55 E5 7E 7E A0")  # junk, stray flags, a false frame start


def plain_apdu() -> bytes:
    return b"".join(HdlcFrame.decode(f).payload[7:] for f in FRAMES)


def hdlc_push(apdu: bytes, block_size: int = 112) -> bytes:
    template = HdlcFrame.decode(FRAMES[0])
    out = b""
    for i, block in enumerate(split_general_block_transfer(apdu, block_size)):
        info = (b"\xe6\xe7\x00" if i == 0 else b"") + block.encode()
        out += dataclasses.replace(template, information=info).encode()
    return out


def ciphered_push(counter: int, *, keys: SecurityKeys | None = None, sc: int = 0x30) -> bytes:
    protected = encrypt(
        plain_apdu(),
        system_title=TITLE,
        invocation_counter=counter,
        keys=keys or SecurityKeys(GUEK, GAK),
        security_control=sc,
    )
    return GeneralGloCiphering(TITLE, protected).encode()


def mbus_telegrams(apdu: bytes, first_size: int = 245) -> bytes:
    def frame(ci: int, chunk: bytes) -> bytes:
        body = bytes((0x53, 0xFF, ci, 0x01, 0x67)) + chunk
        return bytes((0x68, len(body), len(body), 0x68)) + body + bytes((sum(body) & 0xFF, 0x16))

    return frame(0x00, apdu[:first_size]) + frame(0x11, apdu[first_size:])


def check_push(readings: list[Reading], *, quality: Quality = Quality.OK) -> None:
    values = {r.key: r.value for r in readings}
    for code, raw in EXPECTED.items():
        wanted = Decimal(raw).scaleb(-2) if code in CURRENTS else raw
        assert values[code] == wanted, code
    assert {r.meter_id for r in readings} == {PUSH["expected"]["device_id"]}
    assert all(r.quality == quality for r in readings)


async def collect(listener: PushListener) -> tuple[list[PushReadings], list[PushError]]:
    pushes: list[PushReadings] = []
    errors: list[PushError] = []
    async for event in listener.pushes():
        (pushes if isinstance(event, PushReadings) else errors).append(event)  # type: ignore[arg-type]
    return pushes, errors


async def write_slowly(port: Transport, data: bytes, chunk: int = 37) -> None:
    for i in range(0, len(data), chunk):
        await port.write(data[i : i + chunk])
        await port.drain()


async def test_e450_frames_through_a_real_pty_with_noise() -> None:
    meter, path = await open_pty_pair(line=MBUS_2400)
    port = await open_serial(path, MBUS_2400)
    listener = PushListener(port, formats=CURRENTS)
    received: list[Reading] = []

    async def read_two_pushes() -> None:
        async for reading in listener:
            received.append(reading)
            if listener.pushes_read == 2 and len(received) == 2 * len(list(_pushed_registers())):
                return

    reader = asyncio.create_task(read_two_pushes())
    await write_slowly(meter, NOISE + WIRE + NOISE + NOISE + WIRE + b"\x00\x00")
    await asyncio.wait_for(reader, 10)
    await port.close()
    await meter.close()
    assert listener.pushes_read == 2
    check_push(received[: len(received) // 2])
    check_push(received[len(received) // 2 :])


def _pushed_registers() -> list[ObisCode]:
    from meterbridge.protocols.dlms.push import PushDecoder

    decoder = PushDecoder(formats=CURRENTS)
    decoder.receive_data(WIRE)
    (event,) = decoder.events()
    assert isinstance(event, PushReadings)
    return [r.key for r in event.readings if isinstance(r.key, ObisCode)]


async def test_tcp_with_garbage_and_a_corrupt_frame_reports_and_goes_on() -> None:
    bad = bytearray(FRAMES[1])
    bad[50] ^= 0x20

    async def meter(port: Transport) -> None:
        await port.write(NOISE + WIRE)
        await port.write(FRAMES[0] + bytes(bad) + FRAMES[2] + FRAMES[3])  # a push with a broken frame
        await port.write(bytes(range(256)) + WIRE + NOISE)
        await port.drain()

    server = await serve_tcp(meter)
    try:
        transport = await open_tcp("127.0.0.1", server.port)
        listener = PushListener(transport, formats=CURRENTS)
        pushes, errors = await asyncio.wait_for(collect(listener), 10)
        await transport.close()
    finally:
        await server.close()
    assert len(pushes) == 2  # the broken push is never a reading
    for push in pushes:
        check_push(list(push.readings))
    assert errors
    assert any(isinstance(e.error, ChecksumError) and "FCS" in str(e) for e in errors)
    assert listener.error_count == len(errors) and listener.pushes_read == 2


async def test_encrypted_pushes_with_green_book_keys() -> None:
    client_end, meter_end = pipe_pair()
    listener = PushListener(client_end, keys=SecurityKeys(GUEK, GAK), formats=CURRENTS)
    await meter_end.write(
        hdlc_push(ciphered_push(100))
        + NOISE
        + hdlc_push(ciphered_push(100))  # replayed
        + hdlc_push(ciphered_push(101, keys=SecurityKeys(GUEK, bytes(16))))  # forged tag
        + hdlc_push(ciphered_push(102), block_size=40)
    )
    await meter_end.close()
    pushes, errors = await asyncio.wait_for(collect(listener), 5)
    assert [p.invocation_counter for p in pushes] == [100, 102]
    assert all(p.authenticated is True and p.system_title == TITLE for p in pushes)
    for push in pushes:
        check_push(list(push.readings))
    kinds = [type(e.error) for e in errors]
    assert ReplayError in kinds and AuthenticationError in kinds


async def test_encrypted_push_with_only_the_encryption_key_is_flagged() -> None:
    client_end, meter_end = pipe_pair()
    reported: list[PushError] = []
    listener = PushListener(client_end, keys=SecurityKeys(GUEK), formats=CURRENTS, on_error=reported.append)
    await meter_end.write(hdlc_push(ciphered_push(7)))
    await meter_end.close()
    readings = [r async for r in listener]
    check_push(readings, quality=Quality.UNAUTHENTICATED)
    assert reported == []


async def test_wrong_key_gives_errors_never_readings() -> None:
    client_end, meter_end = pipe_pair()
    reported: list[PushError] = []
    listener = PushListener(client_end, keys=SecurityKeys(bytes(16)), on_error=reported.append)
    await meter_end.write(hdlc_push(ciphered_push(1)) + hdlc_push(ciphered_push(2)))
    await meter_end.close()
    assert [r async for r in listener] == []
    assert len(reported) == 2
    assert "00000000000000000000000000000000" not in repr(listener) + "".join(str(e) for e in reported)


async def test_mbus_framed_encrypted_push() -> None:
    client_end, meter_end = pipe_pair()
    listener = PushListener(client_end, keys=SecurityKeys(GUEK), formats=CURRENTS)
    apdu = ciphered_push(9, keys=SecurityKeys(GUEK), sc=0x20)
    await meter_end.write(
        b"\xe5\xe5" + mbus_telegrams(apdu) + b"\xe5" + mbus_telegrams(ciphered_push(10, sc=0x20))
    )
    await meter_end.close()
    pushes, errors = await asyncio.wait_for(collect(listener), 5)
    assert errors == []
    assert [p.invocation_counter for p in pushes] == [9, 10]
    for push in pushes:
        check_push(list(push.readings), quality=Quality.UNAUTHENTICATED)


async def test_a_port_that_vanishes_and_comes_back() -> None:
    meter_ends: asyncio.Queue[Transport] = asyncio.Queue()

    async def opener() -> Transport:
        client_end, meter_end = pipe_pair()
        await meter_ends.put(meter_end)
        return client_end

    port = await ReopeningTransport(opener, name="cii", initial_delay=0.01, max_delay=0.05).start()
    logged = LoggedTransport(port, lambda record: None)  # found through wrappers too
    listener = PushListener(logged, formats=CURRENTS)
    got: list[PushReadings] = []

    async def run() -> None:
        async for event in listener.pushes():
            if isinstance(event, PushReadings):
                got.append(event)
                if len(got) == 2:
                    await port.close()

    task = asyncio.create_task(run())
    first = await meter_ends.get()
    await first.write(WIRE + FRAMES[0][:40])  # unplugged in the middle of the next push
    await first.close()
    second = await asyncio.wait_for(meter_ends.get(), 5)
    await second.write(WIRE)
    await asyncio.wait_for(task, 5)
    assert listener.reopens == 1
    for push in got:
        check_push(list(push.readings))


async def test_idle_timeout() -> None:
    client_end, _meter_end = pipe_pair()
    listener = PushListener(client_end, idle_timeout=0.05)
    with pytest.raises(TimeoutError):
        await collect(listener)


# ---------------------------------------------------------------------------------------------- CLI


async def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "meterbridge",
        "listen",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@contextlib.asynccontextmanager
async def pushing_meter(data: bytes):  # type: ignore[no-untyped-def]
    async def meter(port: Transport) -> None:
        await port.write(data)
        await port.drain()
        with contextlib.suppress(Exception):
            await port.read(1, 30)  # stay connected until the listener hangs up

    server = await serve_tcp(meter)
    try:
        yield f"tcp://127.0.0.1:{server.port}"
    finally:
        await server.close()


async def test_cli_json_lines_with_keys_and_scalers_never_prints_keys() -> None:
    wire = NOISE + hdlc_push(ciphered_push(5)) + hdlc_push(ciphered_push(5)) + hdlc_push(ciphered_push(6))
    async with pushing_meter(wire) as url:
        code, out, err = await run_cli(
            url,
            "--key",
            GUEK.hex(),
            "--auth-key",
            GAK.hex(),
            "--scaler",
            "1-0:31.7.0=-2",
            "--scaler",
            "1-0:51.7.0=-2",
            "--scaler",
            "1-0:71.7.0=-2:A",
            "--json",
            "--count",
            "2",
            "--log-frames",
            "-",
        )
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 2 * len(_pushed_registers())
    by_code = {row["obis"]: row for row in rows[: len(rows) // 2]}
    assert by_code["1-1:1.8.0.255"]["value"] == 482939
    assert by_code["1-0:31.7.0.255"]["value"] == 0.09
    assert by_code["1-0:31.7.0.255"]["name"] == "Current L1"  # from the catalogue
    assert all(row["authenticated"] is True for row in rows)
    assert "replay" in err.lower() or "counter" in err.lower()  # the repeated push was reported
    assert " rx " in err  # --log-frames hex dump on stderr
    for secret in (GUEK.hex(), GAK.hex(), GUEK.hex().upper(), GAK.hex().upper()):
        assert secret not in out and secret not in err


async def test_cli_table_output_and_bad_key() -> None:
    async with pushing_meter(WIRE) as url:
        code, out, err = await run_cli(url, "--count", "1", env={"COLUMNS": "160"})
    assert code == 0, err
    assert "1-1:1.8.0.255" in out and "482939" in out and "LGZ1030653520967" in out
    async with pushing_meter(WIRE) as url:
        code, out, err = await run_cli(url, "--count", "1", "--json", "--timezone", "Europe/Zurich")
    assert code == 0, err
    stamps = {json.loads(line)["timestamp"] for line in out.splitlines()}
    assert stamps == {"2026-05-04T11:39:21+02:00"}  # the push's local time, no deviation on the wire
    code, out, err = await run_cli("tcp://127.0.0.1:9", "--key", "abcd")
    assert code == 2
    assert "16 bytes" in err and "abcd" not in err
