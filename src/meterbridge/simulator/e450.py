"""The virtual Landis+Gyr E450: optical port (IEC 62056-21 C/E, DLMS/HDLC), DLMS wrapper, CII pushes.

:class:`E450Simulator` ties the register model (``e450_model``), the COSEM objects
(``e450_cosem``) and the push encoder (``e450_push``) to the protocol codecs in the meter
role and to any :class:`~meterbridge.transports.Transport` (a PTY that a reader opens as
a serial port, a TCP connection, an in-memory pipe in tests)::

    sim = E450Simulator(seed=1, clock=RealClock())
    await sim.serve_optical(port)          # until the port closes
    await sim.push_loop(port, interval=5)  # the customer interface

Optical port, faithful to IEC 62056-21 and IEC 62056-46/53:

* sign-on ``/?!`` at 300 baud 7E1 -> identification ``/LGZ5\\2E450...`` (baud character
  5 = 9600, ``\\2`` = mode E offered), answered after the reaction time (200 ms);
* ``ACK 0 Z 0``: data readout at the acknowledged speed, then back to 300 baud;
  ``ACK 0 Z 1``: programming mode (P1 password ``iec_password``, R1 reads by OBIS);
  ``ACK 2 Z 2``: mode E, the line switches to 8N1 at the acknowledged speed and belongs to HDLC;
* HDLC server: the first SNRM names the client and server addresses; client 16 (public)
  associates without authentication, every other client needs the LLS password
  (``dlms_password``); GET (normal, with-list, with-block) of every register, scaler and
  unit, clock, load profile with range/entry access, object list; DISC ends it and the
  port returns to 300 baud 7E1. After ``inactivity`` seconds of silence a session is
  dropped the same way.

Behind the DLMS wrapper (IEC 62056-47), as a G3-PLC meter reached by a head-end through
its data concentrator: ``serve_wrapper(port)`` answers one TCP connection (hand it to
``serve_tcp``), ``await serve_wrapper_udp(host, port)`` a UDP socket (see ``e450_wrapper``).
Client wPort 16 is the public client, others need the LLS password (client 1, management,
needs HLS-GMAC with ciphered APDUs when ``hls_keys`` are given, as head-ends use on G3-PLC),
server wPort 1 is the management logical device. ``new_association(client_sap)`` is the one DLMS server both the
optical port and the wrapper use.

Protocol timing (the reaction time, ``inactivity``) runs on the port's clock, real time on
real ports, whatever speed the model runs at; the push interval is in model seconds.

The model time is ``clock.now()`` (use a ``ScaledClock`` for accelerated time; it never
goes backwards even if the wall clock does).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Sequence
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo

from meterbridge.errors import LocalProtocolError, ProtocolError
from meterbridge.obis import ObisCode
from meterbridge.protocols.dlms.apdu import Conformance, ExceptionResponse
from meterbridge.protocols.dlms.association import DEFAULT_CONFORMANCE, DlmsServer
from meterbridge.protocols.dlms.security import SecurityContext, SecurityKeys
from meterbridge.protocols.dlms.wrapper import WrapperStream
from meterbridge.protocols.events import NEED_DATA
from meterbridge.protocols.hdlc import (
    DataReceived,
    Disconnected,
    FrameKind,
    HdlcConnection,
    HdlcFrame,
    HdlcParameters,
    HdlcStream,
    Role,
)
from meterbridge.protocols.iec62056_21 import (
    DataSet,
    DataValue,
    HdlcHandOver,
    Identification,
    Iec62056Meter,
    MeterState,
    SwitchLine,
    Transmit,
    obis_of,
)
from meterbridge.protocols.iec62056_21 import LineSettings as IecLine
from meterbridge.simulator.e450_cosem import E450Objects
from meterbridge.simulator.e450_model import E450Model, ModelConfig, Snapshot
from meterbridge.simulator.e450_push import CiiPushEncoder
from meterbridge.simulator.e450_wrapper import (
    MAX_WRAPPER_APDU,
    AssociationHandler,
    WrapperSessions,
    WrapperUdpServer,
)
from meterbridge.simulator.faults import FaultConfig, FaultyTransport
from meterbridge.transports import (
    IEC_SIGN_ON,
    MBUS_2400,
    Clock,
    LineSettings,
    Parity,
    RealClock,
    Transport,
    TransportClosed,
    TransportTimeout,
)

__all__ = ["MANAGEMENT_CLIENT", "PUBLIC_CLIENT", "E450Simulator", "iec_line", "readout_lines"]

log = logging.getLogger(__name__)

PUBLIC_CLIENT: Final = 16
# What the meter offers in its InitiateResponse: only services the DlmsServer answers. Requests
# in general-protection (DB/DD) and general-block-transfer (E0) envelopes are not answered, so
# they are not offered: a client such as Gurux then uses glo-ciphering and GET with-block.
SERVER_CONFORMANCE: Final = DEFAULT_CONFORMANCE & ~(
    Conformance.GENERAL_PROTECTION | Conformance.GENERAL_BLOCK_TRANSFER
)
MANAGEMENT_CLIENT: Final = 1
_E = ObisCode.parse

# The optical readout: (address printed, OBIS code, unit, decimals, divisor)
_READOUT: Final = (
    ("1.8.0", _E("1-0:1.8.0"), "kWh", 3, 1000),
    ("1.8.1", _E("1-0:1.8.1"), "kWh", 3, 1000),
    ("1.8.2", _E("1-0:1.8.2"), "kWh", 3, 1000),
    ("2.8.0", _E("1-0:2.8.0"), "kWh", 3, 1000),
    ("2.8.1", _E("1-0:2.8.1"), "kWh", 3, 1000),
    ("2.8.2", _E("1-0:2.8.2"), "kWh", 3, 1000),
    ("3.8.0", _E("1-0:3.8.0"), "kvarh", 3, 1000),
    ("4.8.0", _E("1-0:4.8.0"), "kvarh", 3, 1000),
    ("15.8.0", _E("1-0:15.8.0"), "kWh", 3, 1000),
    ("1.7.0", _E("1-0:1.7.0"), "kW", 3, 1000),
    ("2.7.0", _E("1-0:2.7.0"), "kW", 3, 1000),
    ("32.7", _E("1-0:32.7.0"), "V", 1, 1),
    ("52.7", _E("1-0:52.7.0"), "V", 1, 1),
    ("72.7", _E("1-0:72.7.0"), "V", 1, 1),
    ("31.7", _E("1-0:31.7.0"), "A", 2, 1),
    ("51.7", _E("1-0:51.7.0"), "A", 2, 1),
    ("71.7", _E("1-0:71.7.0"), "A", 2, 1),
    ("14.7", _E("1-0:14.7.0"), "Hz", 2, 1),
    ("13.7", _E("1-0:13.7.0"), None, 3, 1),
)


def iec_line(line: IecLine) -> LineSettings:
    """The codec's line settings as a transport's."""
    return LineSettings(line.baud, line.bytesize, Parity(line.parity), line.stopbits)


def _fixed(value: float, decimals: int, width: int) -> str:
    scaled = math.floor(value * 10**decimals) / 10**decimals if value >= 0 else value
    return f"{scaled:0{width}.{decimals}f}"


def readout_lines(snapshot: Snapshot, timezone: str) -> list[tuple[DataSet, ...]]:
    """The data lines of the optical readout (mode C), E350/E450 style."""
    local = snapshot.at.astimezone(ZoneInfo(timezone))
    serial = str(snapshot.values[_E("0-0:96.1.0")])
    lines: list[DataSet] = [
        DataSet("F.F", (DataValue("00"),)),
        DataSet("0.0.0", (DataValue(serial),)),
        DataSet("C.1.0", (DataValue(serial),)),
        DataSet("0.9.1", (DataValue(local.strftime("%H:%M:%S")),)),
        DataSet("0.9.2", (DataValue(local.strftime("%y-%m-%d")),)),
        DataSet("C.7.0", (DataValue("0000"),)),
    ]
    for address, code, unit, decimals, divisor in _READOUT:
        raw = snapshot.values[code]
        assert isinstance(raw, (int, float))
        width = 10 if divisor == 1000 else decimals + 4
        text = _fixed(raw / divisor, decimals, width)
        lines.append(DataSet(address, (DataValue(text, unit),)))
    lines.append(DataSet("0.2.0", (DataValue(str(snapshot.values[_E("1-0:0.2.0")])),)))
    return [(s,) for s in lines]


class E450Simulator:
    """See the module docstring."""

    def __init__(
        self,
        *,
        clock: Clock,
        seed: int = 0,
        start: datetime | None = None,
        config: ModelConfig | None = None,
        dlms_password: bytes = b"00000000",
        iec_password: str | None = "00000000",
        encryption_key: bytes | None = None,
        authentication_key: bytes | None = None,
        system_title: bytes | None = None,
        invocation_counter: int = 1,
        baud_char: str = "5",
        reaction_time: float = 0.2,
        inactivity: float = 120.0,
        faults: FaultConfig | None = None,
        max_pdu_size: int = 1224,
        hls_keys: SecurityKeys | None = None,
    ) -> None:
        self.clock = clock
        self.model = E450Model(seed=seed, start=start or clock.now(), config=config)
        self.objects = E450Objects(self.model, self.snapshot)
        self._dlms_password = dlms_password
        self.identification = Identification("LGZ", baud_char, f"E450{self.model.serial_number[-4:]}", "2")
        self._iec_password = iec_password
        kwargs: dict[str, object] = {"invocation_counter": invocation_counter}
        if system_title is not None:
            kwargs["system_title"] = system_title
        self.push_encoder = CiiPushEncoder(
            encryption_key=encryption_key,
            authentication_key=authentication_key,
            timezone=self.model.config.timezone,
            **kwargs,  # type: ignore[arg-type]
        )
        self.reaction_time = reaction_time
        self.inactivity = inactivity
        self.faults = faults
        self.max_pdu_size = max_pdu_size
        self._hls = (
            None
            if hls_keys is None
            else SecurityContext(system_title=self.push_encoder.system_title, keys=hls_keys)
        )
        self.sessions = 0
        self.dlms_sessions = 0
        self.wrapper_connections = 0
        self.pushes = 0

    # ------------------------------------------------------------------ model
    def snapshot(self) -> Snapshot:
        """The registers now (the model never runs backwards)."""
        now = max(self.clock.now(), self.model.now)
        return self.model.snapshot(now)

    def _registers(self, address: str) -> Sequence[DataValue] | None:
        snap = self.snapshot()
        for line in readout_lines(snap, self.model.config.timezone):
            data = line[0]
            if data.address == address or (data.obis is not None and data.obis == _obis_or_none(address)):
                return data.values
        return None

    # ------------------------------------------------------------------ ports
    def _faulty(self, port: Transport) -> Transport:
        if self.faults is not None and self.faults.any:
            return FaultyTransport(port, self.faults)
        return port

    # ------------------------------------------------------------------ DLMS associations
    def new_association(self, client_sap: int) -> AssociationHandler:
        """A DLMS association for ``client_sap``: request APDU in, reply APDU out.

        The same ``DlmsServer`` answers on the optical port (HDLC) and behind the wrapper
        (TCP/UDP): client 16 (public) associates without authentication, every other client
        needs the LLS password - except client 1 (management) when ``hls_keys`` are set: it
        must use HLS-GMAC, and every APDU after the AARQ travels glo-ciphered (security suite
        0). One meter security context serves all associations, so the meter's invocation
        counter never repeats and a client's counter must keep rising across associations. A request the server cannot take (undecodable, or not allowed
        in the association's state) is answered with an exception-response, never dropped.
        """
        security = self._hls if client_sap == MANAGEMENT_CLIENT else None
        password = None if client_sap == PUBLIC_CLIENT or security is not None else self._dlms_password
        server = DlmsServer(
            self.objects,
            password=password,
            security=security,
            conformance=SERVER_CONFORMANCE,
            max_receive_pdu_size=self.max_pdu_size,
            block_size=self.max_pdu_size,  # longer answers go block by block (GET with-block)
        )

        def answer(apdu: bytes) -> bytes:
            try:
                return server.handle(apdu)
            except ProtocolError as exc:
                log.debug("dlms: %s", exc)
                return ExceptionResponse(2, 2).encode()  # service-unknown, service-not-supported
            except LocalProtocolError as exc:
                log.debug("dlms: %s", exc)
                return ExceptionResponse(1, 1).encode()  # service-not-allowed, operation-not-possible

        return answer

    # ------------------------------------------------------------------ wrapper (G3-PLC head-end)
    async def serve_wrapper(self, port: Transport) -> None:
        """Answer wrapper-framed DLMS (IEC 62056-47) on one TCP connection, then close it.

        The connection ends when the client closes it, after ``inactivity`` seconds of
        silence, or at a frame the wrapper cannot follow (wrong version, longer than the
        meter's buffer): a TCP byte stream cannot resynchronise, so the meter hangs up.
        Associations live as long as the connection.
        """
        self.wrapper_connections += 1
        inner = port
        port = self._faulty(port)
        sessions = WrapperSessions(self.new_association)
        stream = WrapperStream(max_length=MAX_WRAPPER_APDU)
        try:
            while True:
                try:
                    data = await port.read(4096, self.inactivity)
                except TransportTimeout:
                    return
                stream.receive_data(data)
                while True:
                    try:
                        frame = stream.next_event()
                    except ProtocolError as exc:
                        log.debug("wrapper/tcp: %s", exc)
                        return
                    if frame is NEED_DATA:
                        break
                    reply = sessions.handle(frame, now=port.clock.monotonic())
                    if reply is not None:
                        await port.write(reply.encode())
        except TransportClosed:
            return
        finally:
            with contextlib.suppress(TransportClosed):
                await inner.close()

    async def serve_wrapper_udp(
        self, host: str = "127.0.0.1", port: int = 0, *, clock: Clock | None = None
    ) -> WrapperUdpServer:
        """Answer wrapper datagrams on UDP ``host:port`` (0: any free port) until ``close()``.

        Each datagram is one frame; associations are kept per sender and client wPort and
        forgotten after ``inactivity`` seconds of silence, measured like every protocol
        time-out on the socket's ``clock`` (default: real time, whatever speed the model runs at).
        """
        sessions = WrapperSessions(self.new_association, inactivity=self.inactivity)
        server = WrapperUdpServer(sessions, clock=clock or RealClock(), faults=self.faults)
        return await server.start(host, port)

    async def serve_optical(self, port: Transport) -> None:
        """Answer IEC 62056-21 (and DLMS over HDLC after a mode E hand-over) until the port closes."""
        port = self._faulty(port)
        await port.set_line(IEC_SIGN_ON)
        meter = self._new_meter()
        with contextlib.suppress(TransportClosed):
            while True:
                timeout = None if meter.state is MeterState.IDLE else self.inactivity
                try:
                    data = await port.read(4096, timeout)
                except TransportTimeout:
                    meter.reset()
                    await self._run_meter(port, meter)
                    continue
                try:
                    meter.receive_data(data)
                    handed = await self._run_meter(port, meter)
                except ProtocolError as exc:
                    log.debug("optical session: %s", exc)
                    meter.reset()
                    await self._run_meter(port, meter)
                    continue
                if handed is not None:
                    await self._dlms_session(port, handed)
                    meter = self._new_meter()
                    await port.set_line(IEC_SIGN_ON)

    def _new_meter(self) -> Iec62056Meter:
        return Iec62056Meter(
            self.identification,
            readout=lambda: readout_lines(self.snapshot(), self.model.config.timezone),
            registers=self._registers,
            password=self._iec_password,
            mode="C",
        )

    async def _run_meter(self, port: Transport, meter: Iec62056Meter) -> bytes | None:
        """Carry out the meter's events; return the first HDLC bytes after a hand-over."""
        first = True
        while True:
            try:
                event = meter.next_event()
            except ProtocolError:
                meter.reset()
                continue
            if event is NEED_DATA:
                return None
            if isinstance(event, Transmit):
                if first and self.reaction_time:
                    # a line time like every protocol time-out: on the port's clock, not the model's
                    await port.clock.sleep(self.reaction_time)
                first = False
                if event.data.startswith(b"/"):
                    self.sessions += 1
                await port.write(event.data)
            elif isinstance(event, SwitchLine):
                await port.set_line(iec_line(event.line))
            elif isinstance(event, HdlcHandOver):
                await port.set_line(iec_line(event.line))
                return meter.trailing_data() or b""

    async def _dlms_session(self, port: Transport, first: bytes) -> None:
        """HDLC + DLMS until DISC, a closed port or ``inactivity`` seconds of silence."""
        self.dlms_sessions += 1
        stream = HdlcStream()
        pending = bytearray(first)
        link: HdlcConnection | None = None
        association: AssociationHandler | None = None
        while True:
            if link is None:
                stream.receive_data(bytes(pending))
                snrm = None
                while snrm is None:
                    try:
                        frame = stream.next_event()
                    except ProtocolError:
                        continue
                    if frame is NEED_DATA:
                        break
                    assert isinstance(frame, HdlcFrame)
                    if frame.kind is FrameKind.SNRM:
                        snrm = frame
                if snrm is not None:
                    link = HdlcConnection(
                        Role.SERVER,
                        client_address=snrm.source,
                        server_address=snrm.destination,
                        parameters=HdlcParameters(),
                    )
                    association = self.new_association(snrm.source.upper)
                    link.receive_data(snrm.encode())
                pending.clear()
            else:
                link.receive_data(bytes(pending))
                pending.clear()
            if link is not None:
                assert association is not None
                done = False
                while True:
                    try:
                        event = link.next_event()
                    except ProtocolError as exc:
                        log.debug("hdlc: %s", exc)
                        continue
                    if event is NEED_DATA:
                        break
                    if isinstance(event, DataReceived):
                        link.send_data(association(event.data))
                    elif isinstance(event, Disconnected):
                        done = True
                out = link.data_to_send()
                if out:
                    await port.write(out)
                if done:
                    await port.drain()
                    return
            try:
                pending += await port.read(4096, self.inactivity)
            except TransportTimeout:
                return

    async def push_loop(self, port: Transport, interval: float, *, count: int | None = None) -> None:
        """Push on the customer interface every ``interval`` seconds (``count`` pushes, or forever)."""
        port = self._faulty(port)
        if port.line is None or port.line != MBUS_2400:
            with contextlib.suppress(TransportClosed):
                await port.set_line(MBUS_2400)
        sent = 0
        while count is None or sent < count:
            started = self.clock.monotonic()
            for frame in self.push_encoder.frames(self.snapshot()):
                await port.write(frame)
            await port.drain()
            self.pushes += 1
            sent += 1
            if count is not None and sent >= count:
                return
            await self.clock.sleep(max(0.0, interval - (self.clock.monotonic() - started)))


def _obis_or_none(address: str) -> ObisCode | None:
    return obis_of(address)
