"""Serial ports through pyserial, with speed and parity changed mid-session.

:func:`open_serial` opens a local device (``/dev/ttyUSB0``, ``/dev/serial/by-id/...``,
a PTY slave) and returns a :class:`SerialTransport` that reads through the event
loop (no thread). Paths under ``/dev/serial/by-id/`` are symlinks that udev recreates
when the adapter comes back: keep using the by-id path (with
:class:`~meterbridge.transports.reopen.ReopeningTransport`) and the port follows the
adapter even if it becomes ``ttyUSB1``.

pyserial URL handlers without a file descriptor (``rfc2217://``, ``socket://``,
``loop://``) get a :class:`ThreadedSerialTransport`: one reader thread per port.

``set_line()`` waits until the output has left the UART (``tcdrain``), then applies
baud, byte size, parity and stop bits in one ``tcsetattr``: that is the IEC 62056-21
baud switch after the acknowledgement. On a PTY slave (a simulated meter) Linux keeps
8 bits without parity whatever is asked and may refuse a change of parity alone with
``EINVAL``; that refusal is tolerated for PTYs (the bytes pass unchanged anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import termios
import threading
from typing import Any

import serial

from meterbridge.transports.clock import Clock
from meterbridge.transports.fd import FdTransport
from meterbridge.transports.line import LineSettings
from meterbridge.transports.transport import BufferedTransport, TransportClosed

__all__ = ["SerialTransport", "ThreadedSerialTransport", "open_serial", "open_serial_url"]


def _settings(line: LineSettings) -> dict[str, Any]:
    return {
        "baudrate": line.baud,
        "bytesize": line.bytesize,
        "parity": line.parity.value,
        "stopbits": line.stopbits,
    }


def _is_pty(fd: int) -> bool:
    try:
        return os.ttyname(fd).startswith("/dev/pts/")
    except OSError:
        return False


def _open_error(name: str, exc: Exception) -> TransportClosed:
    return TransportClosed(f"{name}: cannot open serial port ({exc})")


class SerialTransport(FdTransport):
    """A local serial device read through the event loop's ``add_reader``."""

    def __init__(self, name: str, port: serial.Serial, *, clock: Clock | None, line: LineSettings) -> None:
        super().__init__(name, port.fileno(), clock=clock, line=line)
        self.port = port

    async def _apply_line(self, line: LineSettings) -> None:
        # One setting at a time: Linux forces every PTY to 8 bits without parity and
        # (6.x) answers EINVAL to a tcsetattr that changes nothing else; the other
        # settings must still be applied. Elsewhere any failure is an error.
        for key, value in _settings(line).items():
            if getattr(self.port, key) == value:
                continue
            try:
                setattr(self.port, key, value)
            except termios.error as exc:
                if not (exc.args and exc.args[0] == errno.EINVAL and _is_pty(self._fd)):
                    raise TransportClosed(f"{self.name}: cannot set line {line} ({exc})") from exc
            except (serial.SerialException, OSError, ValueError) as exc:
                raise TransportClosed(f"{self.name}: cannot set line {line} ({exc})") from exc

    async def _drain(self) -> None:
        if self._fd >= 0:
            try:
                await asyncio.to_thread(self.port.flush)
            except (serial.SerialException, OSError) as exc:
                raise TransportClosed(f"{self.name}: drain failed ({exc})") from exc

    def _discard_os_input(self) -> None:
        if self._fd >= 0:
            try:
                self.port.reset_input_buffer()
            except (serial.SerialException, OSError, ValueError) as exc:
                # The device vanished; the next read reports it.
                self._feed_eof(TransportClosed(f"{self.name}: {exc}"))

    def _close_fd(self) -> None:
        if self._fd >= 0:
            self._fd = -1
            # closing a vanished device: nothing left to release
            with contextlib.suppress(serial.SerialException, OSError):
                self.port.close()


async def open_serial(
    path: str,
    line: LineSettings,
    *,
    clock: Clock | None = None,
    exclusive: bool = True,
) -> SerialTransport:
    """Open a local serial device at ``line`` (raises ``TransportClosed`` naming the path)."""
    try:
        port = serial.Serial(
            port=path,
            timeout=0,
            write_timeout=None,
            exclusive=exclusive,
            **_settings(line),
        )
    except (serial.SerialException, OSError, ValueError) as exc:
        raise _open_error(path, exc) from exc
    try:
        transport = SerialTransport(path, port, clock=clock, line=line)
    except (OSError, AttributeError) as exc:  # no fileno(): not a local device
        port.close()
        raise _open_error(path, exc) from exc
    transport.start()
    return transport


class ThreadedSerialTransport(BufferedTransport):
    """A pyserial port without a usable file descriptor, read by one daemon thread."""

    _POLL = 0.05  # seconds a blocking read waits before checking for close

    def __init__(self, name: str, port: Any, *, clock: Clock | None, line: LineSettings) -> None:
        super().__init__(name, clock=clock, line=line)
        self.port: Any = port
        self._loop = asyncio.get_running_loop()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._reader, name=f"serial-reader {name}", daemon=True)
        self._thread.start()

    def _reader(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.port.read(max(1, self.port.in_waiting or 1))
            except (serial.SerialException, OSError, TypeError, AttributeError) as exc:
                if not self._stop.is_set():
                    self._post(None, exc)
                return
            if data:
                self._post(bytes(data), None)

    def _post(self, data: bytes | None, exc: BaseException | None) -> None:
        def deliver() -> None:
            if data is not None:
                self._feed(data)
            else:
                self._feed_eof(TransportClosed(f"{self.name}: port failed ({exc})"))

        try:
            self._loop.call_soon_threadsafe(deliver)
        except RuntimeError:  # loop already closed
            self._stop.set()

    async def _send(self, data: bytes) -> None:
        try:
            await asyncio.to_thread(self.port.write, data)
        except (serial.SerialException, OSError) as exc:
            raise TransportClosed(f"{self.name}: write failed ({exc})") from exc

    async def _drain(self) -> None:
        await asyncio.to_thread(self.port.flush)

    async def _apply_line(self, line: LineSettings) -> None:
        try:
            self.port.apply_settings(_settings(line))
        except (serial.SerialException, OSError, ValueError) as exc:
            raise TransportClosed(f"{self.name}: cannot set line {line} ({exc})") from exc

    def _discard_os_input(self) -> None:
        # a vanished port reports itself on the next read
        with contextlib.suppress(serial.SerialException, OSError):
            self.port.reset_input_buffer()

    async def _close(self) -> None:
        self._stop.set()
        await asyncio.to_thread(self.port.close)
        await asyncio.to_thread(self._thread.join, 2.0)
        self._feed_eof(TransportClosed(f"{self.name}: transport is closed"))


async def open_serial_url(url: str, line: LineSettings, *, clock: Clock | None = None) -> BufferedTransport:
    """Open any pyserial URL (``rfc2217://host:port``, ``socket://``, ``loop://``) or device path."""
    if url.startswith("/") or os.path.exists(url):
        return await open_serial(url, line, clock=clock)
    try:
        port = await asyncio.to_thread(
            serial.serial_for_url, url, timeout=ThreadedSerialTransport._POLL, **_settings(line)
        )
    except (serial.SerialException, OSError, ValueError) as exc:
        raise _open_error(url, exc) from exc
    return ThreadedSerialTransport(url, port, clock=clock, line=line)
