"""The optical reader: IEC 62056-21 sessions over any transport (async).

``OpticalReader(transport)`` pairs the sans-IO ``Iec62056Client`` with a
``meterbridge.transports`` port and carries out what the codec asks for:

* ``await reader.readout()``: mode C data readout. Sign-on at 300 baud 7E1, the
  identification, ``ACK 0 Z 0`` and the switch to the agreed speed at the instant the
  acknowledgement has left the port (the transport drains, then switches), the readout
  with its BCC, back to 300 baud. Returns an ``OpticalReadout`` with the data lines and
  ``Reading`` values.
* ``await reader.read_registers(["1.8.0", ...], password=...)``: programming mode
  (``ACK 0 Z 1``), P1 password, one R1 per address, B0 at the end.
* ``await reader.hand_over()``: mode E, ``ACK 2 Z 2``; the line switches to 8N1 and
  belongs to HDLC. ``await read_mode_e(reader, obis)`` then hands the transport to the
  DLMS client driver (``meterbridge.drivers.dlms_client``), which reads the registers.
  The DLMS client is the public client (16, no authentication) without a password and,
  with ``password=``, the Landis+Gyr reading client (32) with LLS; ``client=`` overrides.
  Whatever happens, the HDLC link is ended with DISC, so that the meter returns to
  IEC 62056-21 at once (also after a refused association, e.g. a wrong password).

Nothing here sleeps a fixed time: every wait is for bytes, bounded by
``response_timeout`` (IEC 62056-21 allows a meter 1.5 s to react and 1.5 s between
characters). The one exception is the mode E hand-over: there the reader speaks first
at the new speed, so it gives the meter ``hand_over_delay`` (0.3 s, above the
standard's 200 ms minimum reaction time) to switch its UART. Faults are recovered and reported, never turned into values: a readout
with a wrong BCC or a time-out is abandoned (the port returns to 300 baud, waits until
the line is quiet) and repeated up to ``retries`` times, each failure listed in the
result's ``attempts``; in programming mode a garbled answer is answered with NAK and the
meter repeats it, an unanswered request is sent again. When every attempt fails the
last error is raised (``ChecksumError``, ``FramingError``, ``TransportTimeout`` ...)
naming the attempts.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

from meterbridge.errors import (
    AuthenticationError,
    ChecksumError,
    ConfigError,
    MeterbridgeError,
    ProtocolError,
    TransportError,
    UnsupportedError,
)
from meterbridge.protocols.events import NEED_DATA
from meterbridge.protocols.hdlc import HdlcAddress
from meterbridge.protocols.iec62056_21 import (
    BAUD_MODE_C,
    Ack,
    Break,
    ClientEvent,
    ClientState,
    DataLine,
    DataMessage,
    DataSet,
    DataValue,
    HdlcHandOver,
    Identification,
    Iec62056Client,
    Nak,
    OptionSelect,
    Password,
    PasswordOperand,
    ReadRequest,
    SignOn,
    SwitchLine,
    baud_char_for,
    meter_id_of,
    reading_of,
    to_readings,
)
from meterbridge.protocols.iec62056_21 import LineSettings as IecLine
from meterbridge.readings import Reading
from meterbridge.transports import IEC_SIGN_ON, LineSettings, Parity, Transport, TransportTimeout

if TYPE_CHECKING:
    from meterbridge.protocols.dlms.association import Authentication

__all__ = [
    "DEFAULT_RESPONSE_TIMEOUT",
    "PUBLIC_CLIENT",
    "READING_CLIENT",
    "HandOver",
    "OpticalReader",
    "OpticalReadout",
    "RegisterRead",
    "RegisterReadout",
    "read_mode_e",
    "transport_line",
]

DEFAULT_RESPONSE_TIMEOUT: Final = 1.5  # IEC 62056-21: reaction time and inter-character time at most 1.5 s
PUBLIC_CLIENT: Final = 16
"""DLMS client SAP of the public client: no authentication (every DLMS meter has it)."""
READING_CLIENT: Final = 32
"""DLMS client SAP of the Landis+Gyr reading client (E450 and others): LLS password."""
_PROGRAMMING_STATES: Final = frozenset(
    {
        ClientState.AWAIT_OPERAND,
        ClientState.PASSWORD_REQUIRED,
        ClientState.AWAIT_PASSWORD_ACK,
        ClientState.PROGRAMMING,
        ClientState.AWAIT_ANSWER,
        ClientState.PARTIAL_ANSWER,
        ClientState.AWAIT_WRITE_ACK,
    }
)


def transport_line(line: IecLine) -> LineSettings:
    """The codec's line settings as the transports' ``LineSettings``."""
    return LineSettings(line.baud, line.bytesize, Parity(line.parity), line.stopbits)


@dataclass(frozen=True, slots=True)
class OpticalReadout:
    """A successful data readout.

    ``attempts`` lists the failures before it (empty when the first try worked);
    ``started``/``finished`` are the transport clock's monotonic seconds.
    """

    identification: Identification
    lines: tuple[DataLine, ...]
    readings: tuple[Reading, ...]
    baud: int
    attempts: tuple[str, ...] = ()
    started: float = 0.0
    finished: float = 0.0

    @property
    def data_sets(self) -> tuple[DataSet, ...]:
        return tuple(s for line in self.lines for s in line)

    @property
    def duration(self) -> float:
        return self.finished - self.started


@dataclass(frozen=True, slots=True)
class RegisterRead:
    """One R1 answer: the values, or the meter's error code (never both)."""

    address: str
    values: tuple[DataValue, ...] | None
    error: str | None
    reading: Reading | None


@dataclass(frozen=True, slots=True)
class RegisterReadout:
    """The result of a programming-mode session."""

    identification: Identification
    registers: tuple[RegisterRead, ...]
    baud: int
    attempts: tuple[str, ...] = ()

    @property
    def readings(self) -> tuple[Reading, ...]:
        return tuple(r.reading for r in self.registers if r.reading is not None)


@dataclass(frozen=True, slots=True)
class HandOver:
    """Mode E: the transport now runs HDLC at ``line``; ``pending`` holds bytes already received."""

    transport: Transport
    identification: Identification
    line: LineSettings
    pending: bytes = field(default=b"", repr=False)


class OpticalReader:
    """IEC 62056-21 client sessions on one transport (see the module docstring).

    ``baud``: the highest speed to agree on (default: what the meter offers);
    ``address``: the device address for the sign-on (``""``: any meter);
    ``response_timeout``: the longest silence accepted while a message is due;
    ``retries``: further attempts after a failed readout; ``max_repeats``: NAKs or
    repeated requests per programming-mode message.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        baud: int | None = None,
        address: str = "",
        response_timeout: float = DEFAULT_RESPONSE_TIMEOUT,
        retries: int = 2,
        max_repeats: int = 3,
        hand_over_delay: float = 0.3,
    ) -> None:
        if baud is not None and baud not in BAUD_MODE_C.values():
            raise ValueError(
                f"baud {baud} is not an IEC 62056-21 mode C rate ({sorted(BAUD_MODE_C.values())})"
            )
        self.transport = transport
        self.baud = baud
        self.address = address
        self.response_timeout = response_timeout
        self.retries = retries
        self.max_repeats = max_repeats
        self.hand_over_delay = hand_over_delay
        self._pending: deque[ClientEvent] = deque()

    # ------------------------------------------------------------------ public sessions
    async def readout(self) -> OpticalReadout:
        """A mode C data readout (retried on faults, see the module docstring)."""
        failures: list[str] = []
        for attempt in range(self.retries + 1):
            client = Iec62056Client("C")
            try:
                return await self._readout_once(client, tuple(failures))
            except (ProtocolError, TransportTimeout) as exc:
                failures.append(f"attempt {attempt + 1}: {exc}")
                last = exc
                await self._recover(client)
        raise _gave_up(last, failures)

    async def read_registers(
        self, addresses: Sequence[str], *, password: str | None = None, meter_id: str | None = None
    ) -> RegisterReadout:
        """Programming mode: P1 ``password`` (if given), then R1 for each address, then B0."""
        failures: list[str] = []
        for attempt in range(self.retries + 1):
            client = Iec62056Client("C")
            try:
                return await self._registers_once(client, addresses, password, meter_id, tuple(failures))
            except AuthenticationError:
                await self._recover(client)
                raise
            except (ProtocolError, TransportTimeout) as exc:
                failures.append(f"attempt {attempt + 1}: {exc}")
                last = exc
                await self._recover(client)
        raise _gave_up(last, failures)

    async def hand_over(self) -> HandOver:
        """Mode E: sign on, ``ACK 2 Z 2``, switch to 8N1; the line then belongs to HDLC."""
        client = Iec62056Client("E")
        try:
            ident = await self._sign_on(client)
            if not ident.mode_e:
                raise UnsupportedError(
                    f"meter {ident.text!r} does not offer mode E (no \\2 in its identification)",
                    layer="iec62056-21",
                )
            baud = self._agreed_baud(ident)
            await self._send(client, OptionSelect(baud_char_for("E", baud), mode="2", protocol="2"))
            event = await self._expect(client, (HdlcHandOver,))
            assert isinstance(event, HdlcHandOver)
        except (MeterbridgeError, TimeoutError):
            await self._recover(client)
            raise
        # The meter speaks next only when asked: give it its reaction time to read the
        # acknowledgement and switch its UART before the first HDLC frame arrives.
        await self.transport.clock.sleep(self.hand_over_delay)
        return HandOver(self.transport, ident, transport_line(event.line), client.trailing_data())

    # ------------------------------------------------------------------ one attempt each
    async def _readout_once(self, client: Iec62056Client, failures: tuple[str, ...]) -> OpticalReadout:
        started = self.transport.clock.monotonic()
        ident = await self._sign_on(client)
        baud = self._agreed_baud(ident)
        await self._send(client, OptionSelect(baud_char_for("C", baud)))
        message = await self._expect(client, (DataMessage,))
        assert isinstance(message, DataMessage)
        await self._settle(client)  # the switch back to 300 baud
        finished = self.transport.clock.monotonic()
        readings = to_readings(
            message.data_sets, received_at=self.transport.clock.now(), identification=ident
        )
        return OpticalReadout(ident, message.lines, tuple(readings), baud, failures, started, finished)

    async def _registers_once(
        self,
        client: Iec62056Client,
        addresses: Sequence[str],
        password: str | None,
        meter_id: str | None,
        failures: tuple[str, ...],
    ) -> RegisterReadout:
        ident = await self._sign_on(client)
        baud = self._agreed_baud(ident)
        await self._send(client, OptionSelect(baud_char_for("C", baud), mode="1"))
        await self._expect(client, (PasswordOperand,))
        if password is not None:
            await self._send(client, Password(password))
            answer = await self._answer(client, (Ack, Break, DataMessage))
            if not isinstance(answer, Ack):
                await self._settle(client)
                raise AuthenticationError(
                    "meter refused the P1 password "
                    + ("(it signed off)" if isinstance(answer, Break) else f"({_error_text(answer)})"),
                    layer="iec62056-21",
                )
        now = self.transport.clock.now()
        owner = meter_id or ident.text
        results = []
        for address in addresses:
            await self._send(client, ReadRequest(address))
            answer = await self._answer(client, (DataMessage,))
            assert isinstance(answer, DataMessage)
            sets = answer.data_sets
            error = sets[0].error if sets else "empty answer"
            if error is not None or not sets:
                results.append(RegisterRead(address, None, error, None))
                continue
            data = DataSet(address, sets[0].values)
            results.append(RegisterRead(address, data.values, None, reading_of(data, owner, now)))
        if meter_id is None:
            found = meter_id_of([DataSet(r.address, r.values) for r in results if r.values], None)
            if found:
                results = [
                    RegisterRead(
                        r.address,
                        r.values,
                        r.error,
                        reading_of(DataSet(r.address, r.values), found, now) if r.values else None,
                    )
                    for r in results
                ]
        await self._send(client, Break())
        await self._settle(client)
        return RegisterReadout(ident, tuple(results), baud, failures)

    # ------------------------------------------------------------------ mechanics
    def _agreed_baud(self, ident: Identification) -> int:
        offered = BAUD_MODE_C.get(ident.baud_char, 300)
        return offered if self.baud is None else min(offered, self.baud)

    async def _sign_on(self, client: Iec62056Client) -> Identification:
        self._pending.clear()
        if self.transport.line != IEC_SIGN_ON:
            await self.transport.set_line(IEC_SIGN_ON)
        self.transport.discard_input()
        await self._send(client, SignOn(self.address))
        ident = await self._expect(client, (Identification,))
        assert isinstance(ident, Identification)
        return ident

    async def _send(self, client: Iec62056Client, message: Any) -> None:
        wire = client.send(message)
        await self.transport.write(wire)
        await self._pump(client)  # a switch the message causes: set_line drains first, then switches
        await self.transport.drain()

    async def _pump(self, client: Iec62056Client) -> None:
        while (event := client.next_event()) is not NEED_DATA:
            if isinstance(event, SwitchLine):
                await self.transport.set_line(transport_line(event.line))
            else:
                if isinstance(event, HdlcHandOver):
                    await self.transport.set_line(transport_line(event.line))
                self._pending.append(event)

    async def _expect(self, client: Iec62056Client, kinds: tuple[type, ...]) -> ClientEvent:
        """The next event of one of ``kinds``; anything else the meter sends is a protocol error."""
        while True:
            while self._pending:
                event = self._pending.popleft()
                if isinstance(event, kinds):
                    return event
                raise ProtocolError(
                    f"expected {' or '.join(k.__name__ for k in kinds)} from the meter, got {type(event).__name__}",
                    layer="iec62056-21",
                )
            data = await self.transport.read(4096, self.response_timeout)
            client.receive_data(data)
            await self._pump(client)

    async def _answer(self, client: Iec62056Client, kinds: tuple[type, ...]) -> ClientEvent:
        """Programming mode: wait for an answer; NAK a garbled one, repeat an unanswered request."""
        repeats = 0
        while True:
            try:
                event = await self._expect(client, (*kinds, Nak))
            except ChecksumError:
                if repeats >= self.max_repeats:
                    raise
                repeats += 1
                self.transport.discard_input()
                await self._send(client, Nak())
                continue
            except TransportTimeout:
                if repeats >= self.max_repeats:
                    raise
                repeats += 1
                await self.transport.write(client.repeat())
                await self.transport.drain()
                continue
            if isinstance(event, Nak):  # the meter got our request garbled
                if repeats >= self.max_repeats:
                    raise ProtocolError(
                        f"meter refused the request {repeats + 1} times (NAK)", layer="iec62056-21"
                    )
                repeats += 1
                await self.transport.write(client.repeat())
                await self.transport.drain()
                continue
            return event

    async def _settle(self, client: Iec62056Client) -> None:
        await self._pump(client)

    async def _recover(self, client: Iec62056Client) -> None:
        """After a failure: sign off if in programming mode, wait for a quiet line, back to 300 baud."""
        try:
            if client.state in _PROGRAMMING_STATES:
                await self.transport.write(Break().encode())
                await self.transport.drain()
            await self._quiet()
            client.reset()
            await self._pump(client)
            if self.transport.line != IEC_SIGN_ON:
                await self.transport.set_line(IEC_SIGN_ON)
        except (MeterbridgeError, TimeoutError):  # the port itself failed: the next attempt reports it
            pass
        self._pending.clear()
        self.transport.discard_input()

    async def _quiet(self) -> None:
        """Drop input until the line has been silent for ``response_timeout`` (the meter is done)."""
        for _ in range(10_000):
            try:
                await self.transport.read(4096, self.response_timeout)
            except TransportTimeout:
                return


def _error_text(answer: object) -> str:
    if isinstance(answer, DataMessage) and answer.data_sets:
        return answer.data_sets[0].error or "unexpected answer"
    return "unexpected answer"


def _gave_up(last: BaseException, failures: list[str]) -> MeterbridgeError:
    summary = f"gave up after {len(failures)} attempts: " + "; ".join(failures)
    if isinstance(last, ProtocolError):
        return type(last)(summary, layer=last.layer)
    if isinstance(last, TransportTimeout):
        return TransportTimeout(summary)
    return TransportError(summary)


async def read_mode_e(
    reader: OpticalReader,
    obis: Sequence[str],
    *,
    client: int | None = None,
    password: bytes | str | None = None,
    authentication: Authentication = None,
    server: HdlcAddress | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    **session: Any,
) -> list[Reading]:
    """Mode E: hand the line over and let the DLMS client driver read ``obis``.

    ``client`` defaults to :data:`PUBLIC_CLIENT` (16) without ``password`` or
    ``authentication`` and to :data:`READING_CLIENT` (32) with them: the public client
    never authenticates. A client address outside 0..127 raises ``ValueError`` before
    anything is sent. ``password`` is the LLS password. ``server``, ``timeout``,
    ``retries`` go to ``meterbridge.drivers.dlms_client.HdlcLink`` and ``session`` to
    ``DlmsSession``. The link is always ended with DISC (also when the meter refuses the
    association), so that the meter returns to IEC 62056-21 for the next sign-on.
    """
    from meterbridge.drivers.dlms_client import DEFAULT_RETRIES, DEFAULT_TIMEOUT, DlmsSession, HdlcLink

    if password is not None and authentication is None:
        from meterbridge.protocols.dlms.association import Lls

        try:
            secret = password.encode("ascii") if isinstance(password, str) else password
        except UnicodeEncodeError:
            raise ConfigError("an LLS password is ASCII characters", where="password") from None
        authentication = Lls(secret)
    if client is None:
        client = PUBLIC_CLIENT if authentication is None else READING_CLIENT
    # a bad address is refused before the line is handed over (ValueError)
    client_address = HdlcAddress.client(client)
    hand_over = await reader.hand_over()
    link = HdlcLink(
        hand_over.transport,
        client=client_address,
        server=server,
        timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
        retries=DEFAULT_RETRIES if retries is None else retries,
        pending=hand_over.pending,
    )
    meter = DlmsSession(link, authentication=authentication, **session)
    try:
        # open() inside: a refused association (or a time-out) must still send DISC
        await meter.open()
        return await meter.read_registers(obis)
    finally:
        await meter.close()
