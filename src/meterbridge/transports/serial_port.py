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
baud, byte size, parity and stop bits: that is the IEC 62056-21 baud switch after the
acknowledgement.

PTY slaves (a simulated meter, ``meterbridge simulate ... --pty``): Linux keeps 8 bits
without parity whatever is asked, and some kernels answer ``EINVAL`` to a ``tcsetattr``
whose only changes are ones the PTY cannot hold (byte size, parity) - for example when
a second reader opens a PTY that the first one left at the same speed. On a PTY,
:func:`open_serial` then opens at 8 bits without parity (so that speed, stop bits, raw
mode and time-outs are applied) and records the asked byte size and parity; ``set_line``
applies one setting at a time and tolerates the same refusal. The bytes pass unchanged
anyway. Any other refusal (another errno, or ``EINVAL`` from a real UART) raises
``TransportClosed`` naming the port and the line settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import os
import termios
import threading
from typing import Any

import serial

from meterbridge.transports.clock import Clock
from meterbridge.transports.fd import FdTransport
from meterbridge.transports.line import LineSettings, Parity
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


def _is_pty_path(path: str) -> bool:
    """Whether ``path`` (or the device a symlink such as a simulator's link names) is a PTY slave."""
    return os.path.realpath(path).startswith("/dev/pts/")


def _refused_by_pty(exc: termios.error, is_pty: bool) -> bool:
    return is_pty and bool(exc.args) and exc.args[0] == errno.EINVAL


def _open_error(name: str, exc: Exception) -> TransportClosed:
    return TransportClosed(f"{name}: cannot open serial port ({exc})")


def _setting_error(name: str, line: LineSettings, exc: Exception, *, opening: bool) -> TransportClosed:
    what = "cannot open serial port at" if opening else "cannot set line"
    return TransportClosed(f"{name}: {what} {line} ({exc})")


def _set_one_by_one(port: serial.Serial, name: str, line: LineSettings, *, is_pty: bool) -> None:
    """Apply ``line`` to an open port one setting at a time (see the module docstring)."""
    for key, value in _settings(line).items():
        if getattr(port, key) == value:
            continue
        try:
            setattr(port, key, value)  # pyserial records the value, then calls tcsetattr
        except termios.error as exc:
            if not _refused_by_pty(exc, is_pty):
                raise _setting_error(name, line, exc, opening=False) from exc
        except (serial.SerialException, OSError, ValueError) as exc:
            raise _setting_error(name, line, exc, opening=False) from exc


def _check_parity(port: serial.Serial, name: str) -> None:
    """With parity on, have the kernel check it and drop every byte that fails (``INPCK | IGNPAR``).

    pyserial sets the parity bit on the line but clears ``INPCK``, so a byte received with a parity
    error would pass as good: M-Bus (8E1) and IEC 62056-21 (7E1) count on that bit, and an M-Bus
    frame's additive checksum alone misses two bit errors that cancel out. A dropped byte makes the frame
    fail its length or checksum instead, and the master asks again. (A PTY has no parity to check.)
    """
    if port.parity == serial.PARITY_NONE:
        return
    fd = port.fileno()
    try:
        attrs = termios.tcgetattr(fd)
        attrs[0] = (attrs[0] | termios.INPCK | termios.IGNPAR) & ~(termios.PARMRK | termios.ISTRIP)
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    except termios.error as exc:
        if not _refused_by_pty(exc, _is_pty(fd)):
            raise TransportClosed(f"{name}: cannot turn on parity checking ({exc})") from exc


class SerialTransport(FdTransport):
    """A local serial device read through the event loop's ``add_reader``."""

    def __init__(self, name: str, port: serial.Serial, *, clock: Clock | None, line: LineSettings) -> None:
        super().__init__(name, port.fileno(), clock=clock, line=line)
        self.port = port

    async def _apply_line(self, line: LineSettings) -> None:
        # One setting at a time: a PTY's refusal of byte size or parity must not keep
        # the speed from being applied. Elsewhere any failure is an error.
        _set_one_by_one(self.port, self.name, line, is_pty=_is_pty(self._fd))
        _check_parity(self.port, self.name)  # pyserial cleared it with every change

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
    """Open a local serial device at ``line`` (raises ``TransportClosed`` naming the path).

    A PTY slave that refuses the byte size or parity of ``line`` is opened at 8 bits
    without parity and keeps ``line`` as its recorded settings (see the module docstring).
    """
    try:
        port = _open_port(path, line, exclusive)
    except termios.error as exc:
        if not _refused_by_pty(exc, _is_pty_path(path)):
            raise _setting_error(path, line, exc, opening=True) from exc
        port = _open_pty_at_8n1(path, line, exclusive)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise _open_error(path, exc) from exc
    try:
        _check_parity(port, path)
    except TransportClosed:
        port.close()
        raise
    try:
        transport = SerialTransport(path, port, clock=clock, line=line)
    except (OSError, AttributeError) as exc:  # no fileno(): not a local device
        port.close()
        raise _open_error(path, exc) from exc
    transport.start()
    return transport


def _open_port(path: str, line: LineSettings, exclusive: bool) -> serial.Serial:
    return serial.Serial(port=path, timeout=0, write_timeout=None, exclusive=exclusive, **_settings(line))


def _open_pty_at_8n1(path: str, line: LineSettings, exclusive: bool) -> serial.Serial:
    """A PTY refused ``line``'s byte size or parity: open at 8N1, then record ``line``."""
    held = dataclasses.replace(line, bytesize=8, parity=Parity.NONE)
    try:
        port = _open_port(path, held, exclusive)
    except termios.error as exc:
        raise _setting_error(path, held, exc, opening=True) from exc
    except (serial.SerialException, OSError, ValueError) as exc:
        raise _open_error(path, exc) from exc
    try:
        _set_one_by_one(port, path, line, is_pty=True)
    except TransportClosed:
        port.close()
        raise
    return port


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
        except (serial.SerialException, OSError, ValueError, termios.error) as exc:  # spy:// wraps a device
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
    except termios.error as exc:  # spy:// around a local device
        raise _setting_error(url, line, exc, opening=True) from exc
    except (serial.SerialException, OSError, ValueError) as exc:
        raise _open_error(url, exc) from exc
    return ThreadedSerialTransport(url, port, clock=clock, line=line)
