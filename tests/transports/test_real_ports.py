"""Real file descriptors and sockets: PTY pair with baud/parity switching, TCP, UDP, reopening.

These run on the real event loop (pytest-asyncio); time-outs are generous and nothing
asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import socket
import termios
from pathlib import Path

import pytest

from meterbridge.errors import TransportError
from meterbridge.transports import (
    IEC_SIGN_ON,
    LineSettings,
    Parity,
    ReopeningTransport,
    TcpTransport,
    TransportClosed,
    TransportEvent,
    TransportTimeout,
    open_pty_pair,
    open_serial,
    open_tcp,
    open_transport,
    open_udp,
    serial_port,
    serve_tcp,
)

T = 5.0  # generous time-out: these tests never measure time


async def test_pty_pair_with_baud_and_parity_switch(tmp_path: Path) -> None:
    link = str(tmp_path / "meter")
    meter, path = await open_pty_pair(link, line=IEC_SIGN_ON)
    assert path == link and os.path.islink(link)
    reader = await open_serial(link, IEC_SIGN_ON)
    try:
        assert meter.peer_baud() == 300
        await reader.write(b"/?!\r\n")
        assert await meter.read_until(b"\r\n", timeout=T) == b"/?!\r\n"
        await meter.write(b"/LGZ5E450\r\n")
        assert await reader.read_until(b"\r\n", timeout=T) == b"/LGZ5E450\r\n"
        await reader.write(b"\x86\xb0\x35\xb0\x8d\x0a")  # a reader that sets the parity bit itself
        assert await meter.read_exactly(6, timeout=T) == b"\x06050\r\n"  # the meter's 7E1 UART
        fast = LineSettings(9600, 7, "E", 1)  # type: ignore[arg-type]
        await reader.set_line(fast)
        assert meter.peer_baud() == 9600  # the meter sees the reader switched
        assert reader.line == fast
        await meter.set_line(LineSettings(19200, 8, "N", 1))  # type: ignore[arg-type]
        assert meter.peer_baud() == 19200  # written into the slave's termios
        payload = bytes(range(256)) * 8  # raw mode: every byte value passes unchanged
        await meter.write(payload)
        assert await reader.read_exactly(len(payload), timeout=T) == payload
        await reader.set_line(LineSettings(2400, 8, "O", 2))  # type: ignore[arg-type]
        peer = meter.peer_termios_line()
        assert peer is not None and (peer.baud, peer.stopbits) == (2400, 2)
    finally:
        await reader.close()
        await meter.close()
    assert not os.path.lexists(link)


async def test_pty_reader_sees_vanished_meter() -> None:
    meter, path = await open_pty_pair()
    reader = await open_serial(path, LineSettings(2400))
    await meter.close()
    with pytest.raises(TransportClosed):
        await reader.read(10, timeout=T)
    await reader.close()


async def test_open_serial_names_the_missing_device(tmp_path: Path) -> None:
    missing = str(tmp_path / "ttyUSB9")
    with pytest.raises(TransportClosed, match="ttyUSB9"):
        await open_serial(missing, LineSettings(2400))


async def test_tcp_loopback_both_ways() -> None:
    async def echo_upper(t: TcpTransport) -> None:
        while True:
            data = await t.read(100)
            await t.write(data.upper())

    server = await serve_tcp(echo_upper)
    try:
        client = await open_transport(f"tcp://127.0.0.1:{server.port}")
        await client.write(b"hello\n")
        assert await client.read_until(b"\n", timeout=T) == b"HELLO\n"
        assert client.line is None  # a socket has no serial line
        with pytest.raises(TransportTimeout):
            await client.read(1, timeout=0.05)
        await client.close()
    finally:
        await server.close()


async def test_tcp_server_going_away_is_reported() -> None:
    async def hang_up(t: TcpTransport) -> None:
        await t.write(b"bye")

    server = await serve_tcp(hang_up)
    client = await open_tcp("127.0.0.1", server.port)
    assert await client.read_exactly(3, timeout=T) == b"bye"
    with pytest.raises(TransportClosed):
        await client.read(1, timeout=T)
    await client.close()
    await server.close()


async def test_tcp_connect_refused_names_the_address() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(TransportClosed, match=f"tcp://127.0.0.1:{port}"):
        await open_tcp("127.0.0.1", port)


async def test_udp_loopback_keeps_datagrams() -> None:
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        peer.setblocking(False)
        client = await open_udp(*peer.getsockname())
        try:
            await client.write(b"\x00\x01\x00\x10\x00\x01\x00\x05abcde")
            data, addr = await asyncio.wait_for(loop.sock_recvfrom(peer, 100), T)
            assert data == b"\x00\x01\x00\x10\x00\x01\x00\x05abcde"
            assert addr == client.local_address
            await loop.sock_sendto(peer, b"first", addr)
            await loop.sock_sendto(peer, b"second", addr)
            assert await client.read_datagram(timeout=T) == b"first"  # boundaries kept ...
            assert await client.read(3, timeout=T) == b"sec"  # ... or read as a stream
            assert await client.read_datagram(timeout=T) == b"ond"
        finally:
            await client.close()


async def test_reopen_after_tcp_server_goes_away_and_returns() -> None:
    async def greeter(t: TcpTransport) -> None:
        while True:
            await t.write(await t.read(100))

    server = await serve_tcp(greeter)
    port = server.port
    events: list[TransportEvent] = []
    port_t = await ReopeningTransport(
        lambda: open_tcp("127.0.0.1", port, connect_timeout=T),
        name=f"tcp://127.0.0.1:{port}",
        initial_delay=0.01,
        max_delay=0.05,
        on_event=events.append,
    ).start()
    try:
        await port_t.write(b"one")
        assert await port_t.read_exactly(3, timeout=T) == b"one"
        await server.close()  # the gateway reboots
        with pytest.raises(TransportClosed):
            await port_t.read(1, timeout=T)
        with pytest.raises(TransportClosed, match="reopening"):
            await port_t.write(b"x")  # down: fails at once
        await asyncio.sleep(0.1)  # let some retries fail while nobody listens
        server = await serve_tcp(greeter, port=port)  # ... and comes back on the same port
        await port_t.wait_open(timeout=T)
        await port_t.write(b"two")
        assert await port_t.read_exactly(3, timeout=T) == b"two"
    finally:
        await port_t.close()
        await server.close()
    kinds = [e.kind for e in events]
    assert kinds[0] == "opened"
    assert "lost" in kinds and "reopened" in kinds and kinds[-1] == "closed"
    assert kinds.index("lost") < kinds.index("reopened")
    assert port_t.reopen_count == 1


async def test_reopen_serial_when_pty_device_vanishes_and_returns(tmp_path: Path) -> None:
    """A USB adapter unplugged and plugged back: the by-id style link points at a new device."""
    link = str(tmp_path / "usb-FTDI_FT232R-if00-port0")
    meter, _ = await open_pty_pair(link)
    line = LineSettings(2400, 8, "E", 1)  # type: ignore[arg-type]
    reader = await ReopeningTransport(
        lambda: open_serial(link, LineSettings(300, 7, "E", 1)),  # type: ignore[arg-type]
        name=link,
        initial_delay=0.01,
        max_delay=0.05,
    ).start()
    try:
        await reader.set_line(line)
        await meter.write(b"A")
        assert await reader.read(1, timeout=T) == b"A"
        await meter.close()  # unplugged: the device and its link disappear
        with pytest.raises(TransportClosed):
            await reader.read(1, timeout=T)
        meter, _ = await open_pty_pair(link)  # plugged back in: a new /dev/pts/N
        await reader.wait_open(timeout=T)
        assert reader.line == line  # line settings restored after reopening
        assert meter.peer_baud() == 2400
        await meter.write(b"B")
        assert await reader.read(1, timeout=T) == b"B"
        await reader.write(b"C")
        assert await meter.read(1, timeout=T) == b"C"
    finally:
        await reader.close()
        await meter.close()


def _slave_attrs(path: str) -> list:  # type: ignore[type-arg]
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        return termios.tcgetattr(fd)
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    "line",
    [LineSettings(2400, 8, Parity.EVEN, 1), IEC_SIGN_ON, LineSettings(9600, 7, Parity.ODD, 2)],
    ids=str,
)
async def test_pty_opened_again_after_another_reader(line: LineSettings) -> None:
    """A second reader opens a PTY that the first left at this speed (Linux may answer EINVAL)."""
    meter, path = await open_pty_pair(line=line)
    try:
        for _ in range(3):
            reader = await open_serial(path, line)
            assert reader.line == line
            await meter.write(b"\x7e\xa0")
            assert await reader.read_exactly(2, timeout=T) == b"\x7e\xa0"
            await reader.close()
        peer = meter.peer_termios_line()
        assert peer is not None and (peer.baud, peer.stopbits) == (line.baud, line.stopbits)
    finally:
        await meter.close()


async def test_pty_refusing_parity_still_gets_the_rest_of_the_line() -> None:
    """The read time-out is applied even when the PTY refuses the parity that came with it."""
    meter, path = await open_pty_pair(line=LineSettings(2400))
    try:
        first = await open_serial(path, LineSettings(2400, 8, Parity.EVEN, 1))
        await first.close()
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:  # a program before us left the port with a read time-out
            attrs = termios.tcgetattr(fd)
            attrs[6][termios.VTIME] = 5
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
        finally:
            os.close(fd)
        reader = await open_serial(path, LineSettings(2400, 8, Parity.EVEN, 1))
        try:
            attrs = _slave_attrs(path)
            assert attrs[6][termios.VTIME] == 0 and attrs[6][termios.VMIN] == 0
            assert attrs[4] == termios.B2400 and attrs[3] & termios.ICANON == 0
            await reader.write(b"ping")
            assert await meter.read_exactly(4, timeout=T) == b"ping"
        finally:
            await reader.close()
    finally:
        await meter.close()


@pytest.mark.parametrize("code", [errno.EIO, errno.EINVAL])
async def test_open_serial_wraps_a_refused_setting(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    """A termios refusal that is not a PTY's 8N1 becomes a TransportError naming port and setting."""
    meter, path = await open_pty_pair()
    try:

        def refuse(fd: int, when: int, attrs: list) -> None:  # type: ignore[type-arg]
            raise termios.error(code, os.strerror(code))

        monkeypatch.setattr(termios, "tcsetattr", refuse)
        if code == errno.EINVAL:  # EINVAL is tolerated on PTYs only: pretend a UART
            monkeypatch.setattr(serial_port, "_is_pty_path", lambda path: False)
        with pytest.raises(TransportError, match=rf"{re.escape(path)}.*300 7E1.*{os.strerror(code)}"):
            await open_serial(path, IEC_SIGN_ON)
    finally:
        monkeypatch.undo()
        await meter.close()


async def test_set_line_wraps_a_refused_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    meter, path = await open_pty_pair()
    reader = await open_serial(path, IEC_SIGN_ON)
    try:

        def refuse(fd: int, when: int, attrs: list) -> None:  # type: ignore[type-arg]
            raise termios.error(errno.EIO, "Input/output error")

        monkeypatch.setattr(termios, "tcsetattr", refuse)
        with pytest.raises(TransportError, match=rf"{re.escape(path)}.*9600 7E1"):
            await reader.set_line(LineSettings(9600, 7, Parity.EVEN, 1))
    finally:
        monkeypatch.undo()
        await reader.close()
        await meter.close()


async def test_parity_is_checked_whenever_the_line_has_parity() -> None:
    """pyserial clears INPCK: we set INPCK | IGNPAR (a byte failing parity is dropped by the kernel) with
    every line that has parity, also after a mid-session change, and leave it off without parity."""
    meter, path = await open_pty_pair(line=LineSettings(2400))
    checked = termios.INPCK | termios.IGNPAR
    try:
        reader = await open_serial(path, LineSettings(2400, 8, Parity.EVEN, 1))
        try:
            assert _slave_attrs(path)[0] & checked == checked
            assert not _slave_attrs(path)[0] & termios.PARMRK  # dropped, not marked in the data
            await reader.set_line(LineSettings(9600, 8, Parity.NONE, 1))
            assert not _slave_attrs(path)[0] & termios.INPCK
            await reader.set_line(IEC_SIGN_ON)  # 300 7E1
            assert _slave_attrs(path)[0] & checked == checked
            await meter.write(b"\x06050\r\n")  # bytes still pass (a PTY has no parity to get wrong)
            assert await reader.read_exactly(6, timeout=T) == b"\x06050\r\n"
        finally:
            await reader.close()
    finally:
        await meter.close()
