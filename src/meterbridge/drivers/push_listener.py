"""The push listener: a passive receiver of DLMS pushes on a transport, yielding ``Reading`` s.

It never transmits. It reads whatever the line carries - the Landis+Gyr E450 customer
interface (HDLC UI frames, General Block Transfer, Data-Notification, plain or
general-glo-ciphered) or DLMS pushes in M-Bus long frames (Kaifa, Sagemcom) - and hands the
bytes to the DLMS helper's sans-IO ``PushDecoder`` (``meterbridge.protocols.dlms.push``),
which frames, reassembles, decrypts (with the encryption key; verifies the tag when it also
has the authentication key; refuses replayed invocation counters) and maps values to OBIS
codes with the configured scalers::

    listener = PushListener(transport, keys=SecurityKeys(guek, gak),
                            formats={ObisCode.parse("1-0:31.7.0"): RegisterFormat(scaler=-2)})
    async for reading in listener:          # or: async for push in listener.pushes()
        ...

Garbage, broken frames, wrong keys and replays do not stop it: each becomes a ``PushError``
(``pushes()`` yields it; ``readings()`` hands it to ``on_error`` and counts it in
``errors``) and the listener goes on with the next push. It ends when the transport closes
(a ``ReopeningTransport``, e.g. a ``?reopen=1`` URL, is waited for instead: a USB adapter that
comes back is read again); with ``idle_timeout`` a silent line raises ``TransportTimeout``
after that many seconds.

``listen(url, ...)`` opens a transport URL at the CII's line settings (2400 baud 8E1) first.
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, tzinfo
from typing import Literal, Protocol

from meterbridge.obis import ObisCode
from meterbridge.protocols.dlms.push import PushDecoder, PushError, PushEvent, PushReadings, RegisterFormat
from meterbridge.protocols.dlms.security import ReplayGuard, SecurityKeys
from meterbridge.readings import Reading
from meterbridge.transports import MBUS_2400, Transport, TransportClosed, open_transport

__all__ = ["PushListener", "listen"]

Framing = Literal["auto", "hdlc", "mbus"]


class PushListener:
    """Reads pushes from ``transport`` (see the module docstring)."""

    def __init__(
        self,
        transport: Transport,
        *,
        keys: SecurityKeys | None = None,
        formats: Mapping[ObisCode, RegisterFormat] | None = None,
        layout: Sequence[ObisCode | None] | None = None,
        meter_id: str | None = None,
        framing: Framing = "auto",
        default_tz: tzinfo = UTC,
        guard: ReplayGuard | None = None,
        idle_timeout: float | None = None,
        on_error: Callable[[PushError], None] | None = None,
        keep_errors: int = 100,
    ) -> None:
        self.transport = transport
        self.decoder = PushDecoder(
            framing=framing,
            keys=keys,
            guard=guard,
            formats=formats,
            layout=layout,
            meter_id=meter_id,
            default_tz=default_tz,
        )
        self.idle_timeout = idle_timeout
        self.on_error = on_error
        self.pushes_read = 0
        self.reopens = 0
        """Times the port vanished and came back (``?reopen=1`` URLs, ``ReopeningTransport``)."""
        self.error_count = 0
        self.errors: deque[PushError] = deque(maxlen=keep_errors)
        """The most recent errors (``error_count`` counts them all)."""

    def __repr__(self) -> str:
        return f"PushListener({self.transport.name}, {self.decoder!r})"

    async def pushes(self) -> AsyncIterator[PushEvent]:
        """Every push (``PushReadings``) and every error (``PushError``) until the transport closes."""
        clock = self.transport.clock
        reopener = _reopener(self.transport)
        while True:
            try:
                chunk = await self.transport.read(4096, self.idle_timeout)
            except TransportClosed:
                if reopener is None or reopener.closed:
                    return
                try:  # the port vanished and reopens by itself: wait for it, then go on
                    await reopener.wait_open()
                except TransportClosed:
                    return
                self.reopens += 1
                continue
            self.decoder.receive_data(chunk, received_at=clock.now())
            for event in self.decoder.events():
                if isinstance(event, PushReadings):
                    self.pushes_read += 1
                else:
                    self.error_count += 1
                    self.errors.append(event)
                yield event

    async def readings(self) -> AsyncIterator[Reading]:
        """The readings of every push; errors go to ``on_error`` (and ``errors``)."""
        async for event in self.pushes():
            if isinstance(event, PushReadings):
                for reading in event.readings:
                    yield reading
            elif self.on_error is not None:
                self.on_error(event)

    def __aiter__(self) -> AsyncIterator[Reading]:
        return self.readings()


class _Reopening(Protocol):
    @property
    def closed(self) -> bool: ...

    async def wait_open(self, timeout: float | None = None) -> None: ...


def _reopener(transport: object) -> _Reopening | None:
    """The ``ReopeningTransport`` in a chain of wrappers (``.inner``), if there is one."""
    seen = 0
    current: object | None = transport
    while current is not None and seen < 16:
        if callable(getattr(current, "wait_open", None)):
            return current  # type: ignore[return-value]
        current = getattr(current, "inner", None)
        seen += 1
    return None


async def listen(url: str, **options: object) -> PushListener:
    """Open ``url`` (serial ports at 2400 baud 8E1 unless the URL says otherwise) and listen on it."""
    transport = await open_transport(url, line=MBUS_2400)
    return PushListener(transport, **options)  # type: ignore[arg-type]
