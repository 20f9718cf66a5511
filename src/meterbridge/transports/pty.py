"""PTY pairs: a simulated meter that any program can open as a serial port.

``master, slave_path = await open_pty_pair(link="/tmp/e450")`` gives the master side
as a :class:`PtyTransport` and the slave device path (``/dev/pts/N``); with ``link``
a symlink is created there (and removed on close) so that the meter has a stable
name. A reader program opens the slave (or the link) like any serial device.

The slave starts in raw mode (no echo, no line editing). The master keeps one slave
descriptor open itself so that the master never reads ``EIO`` while no program has
the port open (a reader that closes and reopens the port sees one continuous meter).

Baud rate and parity on a PTY change nothing on the bytes. Linux keeps the speed and
the stop bits in the slave's termios but forces every PTY to 8 bits without parity.
So, where meaningful: :meth:`PtyTransport.set_line` writes speed and stop bits into the
slave's termios (a reader can query them), and :meth:`PtyTransport.peer_baud` reads the
speed the program on the slave side set last - a simulated meter can check that the
reader really switched to the acknowledged speed. Bytes the master receives while its
own line has fewer than 8 data bits are masked to them (``0x7F`` at 7E1), like a UART
would: a reader that computes the parity bit itself still reads as 7E1.
"""

from __future__ import annotations

import contextlib
import errno
import os
import termios
import tty
from typing import Final

from meterbridge.transports.clock import Clock
from meterbridge.transports.fd import FdTransport
from meterbridge.transports.line import LineSettings, Parity

__all__ = ["PtyTransport", "open_pty_pair"]

_SPEEDS: Final = {
    b: getattr(termios, f"B{b}")
    for b in (50, 75, 110, 134, 150, 200, 300, 600, 1200, 1800, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
    if hasattr(termios, f"B{b}")
}
_SPEED_OF: Final = {v: k for k, v in _SPEEDS.items()}
_CSIZE: Final = {5: termios.CS5, 6: termios.CS6, 7: termios.CS7, 8: termios.CS8}
_SIZE_OF: Final = {v: k for k, v in _CSIZE.items()}
_CMSPAR: Final = getattr(termios, "CMSPAR", 0o10000000000)

_MASKS: Final = {n: bytes(b & ((1 << n) - 1) for b in range(256)) for n in (5, 6, 7)}

# termios.tcgetattr list positions
_IFLAG, _OFLAG, _CFLAG, _LFLAG, _ISPEED, _OSPEED, _CC = range(7)


def _write_termios(fd: int, line: LineSettings) -> None:
    """Speed and stop bits into a PTY's termios (Linux forces 8 bits, no parity, on PTYs)."""
    attrs = termios.tcgetattr(fd)
    before = list(attrs)
    speed = _SPEEDS.get(line.baud)
    if speed is not None:
        attrs[_ISPEED] = attrs[_OSPEED] = speed
    cflag = attrs[_CFLAG] & ~termios.CSTOPB
    if line.stopbits != 1:
        cflag |= termios.CSTOPB
    attrs[_CFLAG] = cflag
    if attrs == before:
        return
    try:
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
    except termios.error as exc:
        # Linux 6.x answers EINVAL when nothing it keeps on a PTY would change
        if not (exc.args and exc.args[0] == errno.EINVAL):
            raise


def _read_termios(fd: int) -> LineSettings | None:
    attrs = termios.tcgetattr(fd)
    baud = _SPEED_OF.get(attrs[_OSPEED])
    if not baud:
        return None
    cflag = attrs[_CFLAG]
    parity = Parity.NONE
    if cflag & termios.PARENB:
        odd = bool(cflag & termios.PARODD)
        if cflag & _CMSPAR:
            parity = Parity.MARK if odd else Parity.SPACE
        else:
            parity = Parity.ODD if odd else Parity.EVEN
    return LineSettings(baud, _SIZE_OF[cflag & termios.CSIZE], parity, 2 if cflag & termios.CSTOPB else 1)


class PtyTransport(FdTransport):
    """The master side of a PTY pair (see the module docstring)."""

    def __init__(
        self,
        master_fd: int,
        slave_fd: int,
        slave_path: str,
        *,
        link: str | None,
        clock: Clock | None,
        line: LineSettings | None,
    ) -> None:
        super().__init__(f"pty:{link or slave_path}", master_fd, clock=clock, line=line)
        self._slave_fd = slave_fd
        self.slave_path = slave_path
        self.link = link

    @property
    def path(self) -> str:
        """What a reader opens: the link if one was made, else the slave device."""
        return self.link or self.slave_path

    def peer_baud(self) -> int | None:
        """The speed the program on the slave side set last (``None`` if not a standard rate)."""
        if self._slave_fd < 0:
            return None
        line = _read_termios(self._slave_fd)
        return None if line is None else line.baud

    def peer_termios_line(self) -> LineSettings | None:
        """All of the slave's termios as line settings (on Linux always 8 bits, no parity)."""
        if self._slave_fd < 0:
            return None
        return _read_termios(self._slave_fd)

    def _feed(self, data: bytes) -> None:
        line = self._line
        if line is not None and line.bytesize < 8:
            data = data.translate(_MASKS[line.bytesize])
        super()._feed(data)

    async def _apply_line(self, line: LineSettings) -> None:
        if self._slave_fd >= 0:
            _write_termios(self._slave_fd, line)

    def _discard_os_input(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(termios.error):
                termios.tcflush(self._fd, termios.TCIFLUSH)

    def _close_fd(self) -> None:
        super()._close_fd()
        if self._slave_fd >= 0:
            os.close(self._slave_fd)
            self._slave_fd = -1
        if self.link is not None:
            with contextlib.suppress(FileNotFoundError):
                if os.path.islink(self.link) and os.readlink(self.link) == self.slave_path:
                    os.unlink(self.link)


async def open_pty_pair(
    link: str | None = None,
    *,
    line: LineSettings | None = None,
    clock: Clock | None = None,
) -> tuple[PtyTransport, str]:
    """Create a PTY pair; return the master as a transport and the path readers open.

    ``link``: create (or replace) a symlink at this path pointing at the slave; an
    existing non-symlink file there is refused with ``FileExistsError``.
    """
    master_fd, slave_fd = os.openpty()
    try:
        tty.setraw(slave_fd)
        slave_path = os.ttyname(slave_fd)
        if line is not None:
            _write_termios(slave_fd, line)
        if link is not None:
            if os.path.lexists(link):
                if not os.path.islink(link):
                    raise FileExistsError(f"pty: {link} exists and is not a symlink; not replacing it")
                os.unlink(link)
            os.symlink(slave_path, link)
    except BaseException:
        os.close(master_fd)
        os.close(slave_fd)
        raise
    transport = PtyTransport(master_fd, slave_fd, slave_path, link=link, clock=clock, line=line)
    transport.start()
    return transport, transport.path
