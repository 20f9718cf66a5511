"""meterbridge.transports: byte streams to meters, a replaceable clock, and a line model.

May import the standard library and pyserial only (never ``meterbridge.protocols``).

The API in one screen (details in each module's docstring)
==========================================================

Transport (``transport.py``) - every port and wrapper has the same async interface::

    data = await t.read(max_bytes=4096, timeout=0.3)   # >=1 byte, or TransportTimeout (a TimeoutError)
    frame = await t.read_exactly(n, timeout=1.0)       # n bytes; on timeout the partial bytes stay buffered
    line = await t.read_until(b"\\r\\n", timeout=1.5)    # up to and including the terminator
    await t.write(b"..."); await t.drain()            # drain: bytes have left (tcdrain / line time)
    t.discard_input()                                  # drop unread input before a new request
    await t.set_line(LineSettings(9600, 7, "E", 1))   # drains first, then switches (IEC baud switch)
    t.line, t.clock, t.name, t.closed; await t.close()
    # peer gone / device vanished -> TransportClosed (a ConnectionError); both are TransportError

Opening ports:

* ``await open_transport("tcp://10.0.0.5:4059" | "udp://h:p" | "/dev/serial/by-id/..." |
  "rfc2217://h:p" | "pty:///tmp/e450", line=MBUS_2400)`` (``url.py``); query options
  ``?line=2400/8E1``, ``reopen=1``, ``echo=1``. Bad URLs raise ``ConfigError`` naming the part.
* ``await open_serial(path, line)`` (``serial_port.py``): pyserial, read via the event loop.
* ``await open_tcp(host, port)``, ``await open_udp(host, port)``,
  ``await serve_tcp(handler, host, port)`` (``sockets.py``).
* ``master, path = await open_pty_pair(link="/tmp/e450")`` (``pty.py``): a simulated meter
  as a serial device; ``master.peer_baud()`` tells the speed the reader set.
* ``a, b = pipe_pair()`` (``memory.py``): in-memory, instant.

Wrappers (each is a Transport around a Transport):

* ``EchoCanceller(t)`` (``echo.py``) drops the echo of our own bytes (M-Bus level converters).
* ``LoggedTransport(t, open_frame_log(path_or_dash))`` (``frame_log.py``): ``--log-frames``;
  timestamped hex per direction, nothing decoded.
* ``await ReopeningTransport(opener, name=...).start()`` (``reopen.py``): reopens a vanished
  port with backoff, reports ``TransportEvent`` s, ``await wait_open()``.

Clock (``clock.py``): ``Clock`` protocol (``now()``, ``monotonic()``, ``await sleep()``,
``await wait_for(aw, timeout)``); ``RealClock()``; ``VirtualClock()`` owning a
``VirtualTimeEventLoop`` where time jumps to the next timer when all tasks wait - run code
with ``clock.run(coro())`` from a plain test; ``ScaledClock(base, speed)`` for accelerated
simulations. Every transport takes ``clock=`` and measures its time-outs on it.

Line model (``line.py``, ``bus.py``): ``LineSettings(baud, bytesize, parity, stopbits)`` with
``bits_per_char``, ``char_time``, ``transmit_time(n)``, ``bits(n)``; ``MBUS_2400`` (2400 8E1:
11 bits, 4.583 ms/char), ``IEC_SIGN_ON`` (300 7E1). ``VirtualLine(line, clock=...)`` is a
bus in (virtual) time: ``port = line.attach("slave-5", role="slave")`` gives a Transport whose
writes take their transmit time; overlapping characters of two senders collide
(``wired_and`` by default, recorded in ``line.collisions``).
"""

from meterbridge.transports.bus import (
    Collision,
    LinePort,
    VirtualLine,
    mbus_topology,
    shared_topology,
    wired_and,
    wired_or,
)
from meterbridge.transports.clock import (
    Clock,
    RealClock,
    ScaledClock,
    VirtualClock,
    VirtualTimeDeadlock,
    VirtualTimeEventLoop,
)
from meterbridge.transports.echo import EchoCanceller
from meterbridge.transports.fd import FdTransport
from meterbridge.transports.frame_log import (
    FrameRecord,
    FrameSink,
    HexDumpWriter,
    LoggedTransport,
    open_frame_log,
)
from meterbridge.transports.line import IEC_SIGN_ON, MBUS_2400, LineSettings, Parity
from meterbridge.transports.memory import MemoryTransport, pipe_pair
from meterbridge.transports.pty import PtyTransport, open_pty_pair
from meterbridge.transports.reopen import ReopeningTransport
from meterbridge.transports.serial_port import (
    SerialTransport,
    ThreadedSerialTransport,
    open_serial,
    open_serial_url,
)
from meterbridge.transports.sockets import (
    TcpServer,
    TcpTransport,
    UdpTransport,
    open_tcp,
    open_udp,
    serve_tcp,
)
from meterbridge.transports.transport import (
    BufferedTransport,
    EventCallback,
    Transport,
    TransportClosed,
    TransportEvent,
    TransportTimeout,
    TransportWrapper,
)
from meterbridge.transports.url import TransportUrl, open_transport, parse_transport_url

__all__ = [
    "IEC_SIGN_ON",
    "MBUS_2400",
    "BufferedTransport",
    "Clock",
    "Collision",
    "EchoCanceller",
    "EventCallback",
    "FdTransport",
    "FrameRecord",
    "FrameSink",
    "HexDumpWriter",
    "LinePort",
    "LineSettings",
    "LoggedTransport",
    "MemoryTransport",
    "Parity",
    "PtyTransport",
    "RealClock",
    "ReopeningTransport",
    "ScaledClock",
    "SerialTransport",
    "TcpServer",
    "TcpTransport",
    "ThreadedSerialTransport",
    "Transport",
    "TransportClosed",
    "TransportEvent",
    "TransportTimeout",
    "TransportUrl",
    "TransportWrapper",
    "UdpTransport",
    "VirtualClock",
    "VirtualLine",
    "VirtualTimeDeadlock",
    "VirtualTimeEventLoop",
    "mbus_topology",
    "open_frame_log",
    "open_pty_pair",
    "open_serial",
    "open_serial_url",
    "open_tcp",
    "open_transport",
    "open_udp",
    "parse_transport_url",
    "pipe_pair",
    "serve_tcp",
    "shared_topology",
    "wired_and",
    "wired_or",
]
