"""The DLMS/COSEM client driver: reads a meter over HDLC or over the IP wrapper, into ``Reading`` s.

Two links carry the APDUs; both pair a sans-IO codec with a ``meterbridge.transports`` Transport:

* ``HdlcLink`` (IEC 62056-46): a serial port, a PTY, a TCP-to-serial gateway, or the optical
  port after an IEC 62056-21 mode E hand-over. SNRM/UA on ``open()``, DISC on ``close()``.
  A bad frame (FCS, HCS, framing) is reported in ``link.errors`` and dropped; when the answer
  does not come within ``timeout`` the link polls (RR with P=1), so the meter repeats what was
  lost, up to ``retries`` times, then raises ``DlmsTimeout``.
* ``WrapperLink`` (IEC 62056-47): TCP or UDP port 4059 (how a head end reaches G3-PLC meters
  through a data concentrator). Over UDP a lost answer is asked again; over TCP a timeout is
  final.

``DlmsSession`` runs the association on a link with the DLMS helper's ``DlmsClient``
(``meterbridge.protocols.dlms.association``): no security, LLS password or HLS-GMAC::

    link = HdlcLink(transport, client=16, server=HdlcAddress.server(1, 17))
    async with DlmsSession(link, authentication=Lls(b"00000000")) as meter:
        readings = await meter.read_registers(["1-0:1.8.0", "1-0:32.7.0"])
        now = await meter.read_clock()
        profile = await meter.read_profile("1-0:99.1.0", start, end)

* ``read_registers`` reads attribute 2 (value) and 3 (scaler_unit) of each Register; an object
  that is no Register is read as Data (class 1, no scaler). It asks with GET-with-list when the
  meter's conformance block allows it (``MULTIPLE_REFERENCES``), in lists of ``max_list``,
  else one GET per attribute. Long answers come block by block (GET-with-block) and are
  reassembled. An attribute the meter refuses becomes no reading: it is listed in
  ``session.failures`` with the meter's reason.
* ``read_profile`` reads a Profile Generic by time range (selective access by range, selector
  1): capture objects, capture period, the scaler_unit of each register column, the buffer.
* ``release()`` sends RLRQ; ``close()`` releases (best effort) and closes the link.

After a ``DlmsTimeout`` or a malformed answer in the middle of a request the association's
state is unknown: close the session and open a new one (the gateway's retry does that).

Errors: ``DlmsTimeout`` (a ``TransportError`` and ``TimeoutError``) when the meter stays silent;
``AssociationRefused``, ``ServiceError`` (an exception-response) and ``AccessDenied`` (a
Data-Access-Result other than success for a single GET), all ``ProtocolError`` s with
``layer="dlms"``; the codecs' own errors for malformed answers. A corrupt answer never
becomes a value: HDLC frames are checked by FCS, APDUs by their A-XDR structure, ciphered
APDUs by their GCM tag.

``open_session(url, ...)`` opens a transport URL and picks the link (wrapper for ``udp://`` and
``tcp://...:4059``, HDLC otherwise); the session closes the transport with itself.
``open_session`` also takes the shorthands ``password=`` (LLS) and ``hls_keys=(guek, gak)`` (HLS-GMAC)
and picks the usual client for them (``default_client``: 16 public, 32 reading with LLS, 1
management with HLS), so callers need not import ``meterbridge.protocols``.
``read_meter(url, obis, ...)`` does open, read, release and close in one call;
``read_after_hand_over(transport, obis, pending=...)`` is what the optical driver calls after mode E.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Protocol

from meterbridge.errors import ProtocolError, TransportError
from meterbridge.obis import ObisCode
from meterbridge.protocols.dlms.apdu import (
    AccessSelection,
    AttributeDescriptor,
    Conformance,
    DataAccessResult,
)
from meterbridge.protocols.dlms.association import (
    Associated,
    AssociationRejected,
    AssociationState,
    Authentication,
    ClientEvent,
    DlmsClient,
    ExceptionReceived,
    GetResult,
    NotificationReceived,
    Released,
)
from meterbridge.protocols.dlms.axdr import Data
from meterbridge.protocols.dlms.cosem import (
    CLOCK_OBIS,
    CaptureObject,
    ClassId,
    ScalerUnit,
    clock_time,
    profile_readings,
    range_descriptor,
    register_reading,
)
from meterbridge.protocols.dlms.wrapper import DLMS_PORT, WrapperFrame, WrapperStream
from meterbridge.protocols.events import NEED_DATA
from meterbridge.protocols.hdlc import (
    Connected,
    DataReceived,
    Disconnected,
    FrameRejected,
    HdlcAddress,
    HdlcConnection,
    HdlcParameters,
    LinkState,
    Role,
)
from meterbridge.readings import Reading
from meterbridge.transports import Clock, Transport, TransportTimeout, open_transport, parse_transport_url

__all__ = [
    "DEFAULT_RETRIES",
    "DEFAULT_TIMEOUT",
    "LOGICAL_DEVICE_NAME",
    "MANAGEMENT_CLIENT",
    "PUBLIC_CLIENT",
    "READING_CLIENT",
    "AccessDenied",
    "ApduLink",
    "AssociationRefused",
    "DlmsSession",
    "DlmsTimeout",
    "Failure",
    "HdlcLink",
    "ServiceError",
    "WrapperLink",
    "authentication_from",
    "default_client",
    "open_session",
    "read_after_hand_over",
    "read_meter",
]

LAYER = "dlms"
DEFAULT_TIMEOUT = 3.0
DEFAULT_RETRIES = 3
LOGICAL_DEVICE_NAME = ObisCode(0, 0, 42, 0, 0, 255)
PUBLIC_CLIENT = 16
READING_CLIENT = 32
MANAGEMENT_CLIENT = 1


class DlmsTimeout(TransportError, TimeoutError):
    """The meter did not answer within the time-out, also after the retries."""


class AssociationRefused(ProtocolError):
    """The meter rejected the AARQ (wrong password, unknown client, mechanism not supported)."""


class ServiceError(ProtocolError):
    """The meter answered with an exception-response."""


class AccessDenied(ProtocolError):
    """A GET, SET or ACTION answered with a Data-Access-Result other than success."""

    def __init__(self, message: str, *, result: DataAccessResult) -> None:
        super().__init__(message, layer=LAYER)
        self.result = result


@dataclass(frozen=True, slots=True)
class Failure:
    """An attribute the meter would not give: which, and the meter's reason."""

    obis: ObisCode
    attribute: int
    reason: str


class ApduLink(Protocol):
    """Carries whole APDUs to and from one meter."""

    transport: Transport
    errors: list[ProtocolError]

    @property
    def name(self) -> str: ...

    async def open(self) -> None: ...

    async def exchange(self, apdu: bytes) -> bytes: ...

    async def receive(self) -> bytes: ...

    async def close(self) -> None: ...


# ---------------------------------------------------------------------------------------------- HDLC


class HdlcLink:
    """APDUs over HDLC (see the module docstring)."""

    def __init__(
        self,
        transport: Transport,
        *,
        client: int | HdlcAddress = 16,
        server: HdlcAddress | None = None,
        parameters: HdlcParameters | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        pending: bytes = b"",
    ) -> None:
        self.transport = transport
        self.client_address = client if isinstance(client, HdlcAddress) else HdlcAddress.client(client)
        self.server_address = server or HdlcAddress.server(1, 17)
        self.timeout = timeout
        self.retries = retries
        self.errors: list[ProtocolError] = []
        """Bad frames seen (and recovered from) on this link."""
        self.hdlc = HdlcConnection(
            Role.CLIENT,
            client_address=self.client_address,
            server_address=self.server_address,
            parameters=parameters,
        )
        if pending:
            self.hdlc.receive_data(pending)

    @property
    def name(self) -> str:
        return f"{self.transport.name} hdlc {self.client_address}->{self.server_address}"

    async def _flush(self) -> None:
        out = self.hdlc.data_to_send()
        if out:
            await self.transport.write(out)
            await self.transport.drain()

    async def _event(self) -> Any:
        """The next link event; waits at most ``timeout`` in all (``TransportTimeout``), noise or not."""
        clock = self.transport.clock
        deadline = clock.monotonic() + self.timeout
        while True:
            try:
                event = self.hdlc.next_event()
            except ProtocolError as exc:
                if self.hdlc.state is LinkState.ERROR:
                    raise
                self.errors.append(exc)  # a bad frame, dropped; the meter will be polled
                continue
            finally:
                await self._flush()  # RR and repeats the link queued while handling
            if event is not NEED_DATA:
                return event
            left = deadline - clock.monotonic()
            if left <= 0:
                raise TransportTimeout(f"{self.name}: no frame within {self.timeout} s")
            self.hdlc.receive_data(await self.transport.read(4096, left))

    async def open(self) -> None:
        """SNRM until UA (``retries`` times); ``AssociationRefused`` on DM."""
        for _attempt in range(self.retries + 1):
            self.hdlc.connect()
            await self._flush()
            try:
                while True:
                    event = await self._event()
                    if isinstance(event, Connected):
                        return
                    if isinstance(event, Disconnected):
                        raise AssociationRefused(
                            "meter answered SNRM with DM (busy or not this address)", layer="hdlc"
                        )
            except TransportTimeout:
                continue
        raise DlmsTimeout(f"{self.name}: no UA after {self.retries + 1} SNRM")

    async def _await_data(self) -> bytes:
        polls = 0
        while True:
            try:
                event = await self._event()
            except TransportTimeout:
                polls += 1
                if polls > self.retries:
                    raise DlmsTimeout(f"{self.name}: no answer after {self.retries} polls") from None
                self.hdlc.poll()
                await self._flush()
                continue
            if isinstance(event, DataReceived):
                return event.data
            if isinstance(event, Disconnected):
                raise TransportError(f"{self.name}: the meter ended the link ({event.by.name})")
            if isinstance(event, FrameRejected):
                raise ProtocolError(
                    f"meter rejected a frame (FRMR {event.information.hex(' ')})", layer="hdlc"
                )
            # UI frames (pushes) and repeated UAs are not answers: keep waiting

    async def exchange(self, apdu: bytes) -> bytes:
        self.hdlc.send_data(apdu)
        await self._flush()
        return await self._await_data()

    async def receive(self) -> bytes:
        return await self._await_data()

    async def close(self) -> None:
        """DISC until UA or DM; a silent meter is given up on after the retries."""
        if self.hdlc.state is LinkState.NDM:
            return
        for _attempt in range(self.retries + 1):
            self.hdlc.disconnect()
            await self._flush()
            try:
                while not isinstance(await self._event(), Disconnected):
                    pass
                return
            except TransportTimeout:
                continue
            except ProtocolError as exc:
                self.errors.append(exc)
                return


# ---------------------------------------------------------------------------------------------- wrapper


class WrapperLink:
    """APDUs in IEC 62056-47 wrapper frames over TCP or UDP (see the module docstring)."""

    def __init__(
        self,
        transport: Transport,
        *,
        client: int = 16,
        server: int = 1,
        timeout: float = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        datagrams: bool | None = None,
    ) -> None:
        self.transport = transport
        self.client_wport = client
        self.server_wport = server
        self.timeout = timeout
        self.retries = retries
        self.errors: list[ProtocolError] = []
        self.ignored = 0
        read_datagram = getattr(transport, "read_datagram", None)
        self.datagrams = read_datagram is not None if datagrams is None else datagrams
        self._stream = WrapperStream()

    @property
    def name(self) -> str:
        return f"{self.transport.name} wrapper {self.client_wport}->{self.server_wport}"

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def _frame(self) -> WrapperFrame:
        while True:
            if self.datagrams:
                read_datagram = getattr(self.transport, "read_datagram", None)
                gram = await (
                    read_datagram(self.timeout) if read_datagram else self.transport.read(65535, self.timeout)
                )
                try:
                    frame = WrapperFrame.decode(gram)
                except ProtocolError as exc:
                    self.errors.append(exc)
                    continue
            else:
                event = self._stream.next_event()
                if event is NEED_DATA:
                    self._stream.receive_data(await self.transport.read(4096, self.timeout))
                    continue
                assert isinstance(event, WrapperFrame)
                frame = event
            if frame.destination == self.client_wport and frame.source == self.server_wport:
                return frame
            self.ignored += 1

    async def _await(self, resend: bytes | None) -> bytes:
        attempts = 0
        while True:
            try:
                return (await self._frame()).data
            except TransportTimeout:
                attempts += 1
                if resend is None or not self.datagrams or attempts > self.retries:
                    raise DlmsTimeout(f"{self.name}: no answer within {self.timeout} s") from None
                await self.transport.write(resend)  # UDP: the datagram or its answer was lost

    async def exchange(self, apdu: bytes) -> bytes:
        wire = WrapperFrame(self.client_wport, self.server_wport, apdu).encode()
        await self.transport.write(wire)
        await self.transport.drain()
        return await self._await(wire)

    async def receive(self) -> bytes:
        return await self._await(None)


# ---------------------------------------------------------------------------------------------- session


def _obis(code: ObisCode | str) -> ObisCode:
    return code if isinstance(code, ObisCode) else ObisCode.parse(code)


class DlmsSession:
    """An association with one meter over an ``ApduLink`` (see the module docstring)."""

    def __init__(
        self,
        link: ApduLink,
        *,
        authentication: Authentication = None,
        meter_id: str | None = None,
        use_get_with_list: bool = True,
        max_list: int = 10,
        default_tz: tzinfo = UTC,
        clock: Clock | None = None,
        max_receive_pdu_size: int = 0xFFFF,
        owns_transport: bool = False,
    ) -> None:
        self.link = link
        self.owns_transport = owns_transport
        """``close()`` also closes the transport (sessions made by ``open_session``)."""
        self.client = DlmsClient(authentication=authentication, max_receive_pdu_size=max_receive_pdu_size)
        self.meter_id = meter_id
        self.use_get_with_list = use_get_with_list
        self.max_list = max_list
        self.default_tz = default_tz
        self.clock = clock or link.transport.clock
        self.failures: list[Failure] = []
        """Attributes the last ``read_registers`` / ``read_profile`` could not read, with the reason."""
        self.associated: Associated | None = None

    async def __aenter__(self) -> DlmsSession:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -------------------------------------------------------------------------------- association

    async def open(self) -> Associated:
        """Open the link, associate and (if no ``meter_id`` was given) read the logical device name."""
        await self.link.open()
        try:
            event = await self._transact(self.client.associate)
            if isinstance(event, AssociationRejected):
                raise AssociationRefused(f"meter rejected the association: {event.reason}", layer=LAYER)
            if not isinstance(event, Associated):
                raise ProtocolError(f"association answered with {type(event).__name__}", layer=LAYER)
        except BaseException:
            # A refused or broken association still ends the link (DISC), so that the meter
            # answers the next sign-on instead of waiting in HDLC for its idle time-out.
            await self.close()
            raise
        self.associated = event
        if self.meter_id is None:
            try:
                name = _value_text(await self.get(AttributeDescriptor(ClassId.DATA, LOGICAL_DEVICE_NAME, 2)))
            except (AccessDenied, ServiceError):
                name = None
            self.meter_id = name or self.link.name
        return event

    @property
    def conformance(self) -> Conformance:
        return self.client.negotiated_conformance

    @property
    def invocation_counter(self) -> int | None:
        """With HLS-GMAC: the invocation counter our next ciphered APDU would use (pass it to the next
        session with the same keys: meters refuse a counter they have seen); else ``None``."""
        context = getattr(self.client.authentication, "context", None)
        return None if context is None else int(context.invocation_counter)

    async def release(self) -> None:
        """RLRQ -> RLRE."""
        event = await self._transact(self.client.release)
        if not isinstance(event, Released):
            raise ProtocolError(f"RLRQ answered with {type(event).__name__}", layer=LAYER)

    async def close(self) -> None:
        """Release (best effort: many meters drop the association with the link) and close the link."""
        try:
            if self.client.state is AssociationState.ASSOCIATED:
                await self.release()
        except ProtocolError as exc:
            self.link.errors.append(exc)
        except TransportError:
            pass  # the link is closed below either way
        finally:
            try:
                await self.link.close()
            finally:
                if self.owns_transport:
                    await self.link.transport.close()

    async def _transact(self, intention: Any, *args: Any) -> ClientEvent:
        """Send what ``intention`` queues, follow blocks and HLS pass 3/4, return the final event."""
        self.client.outbox.clear()
        intention(*args)
        reply = await self.link.exchange(self.client.outbox.popleft())
        while True:
            event = self.client.receive(reply)
            if isinstance(event, NotificationReceived):
                reply = await self.link.receive()  # a push between request and answer
                continue
            if self.client.outbox:  # the next block, or HLS pass 3
                reply = await self.link.exchange(self.client.outbox.popleft())
                continue
            if isinstance(event, ExceptionReceived):
                raise ServiceError(f"meter answered exception-response: {event.response.reason}", layer=LAYER)
            return event

    # -------------------------------------------------------------------------------- GET

    async def get(self, attribute: AttributeDescriptor, access: AccessSelection | None = None) -> Data:
        """One attribute; ``AccessDenied`` when the meter refuses it."""
        (result,) = await self._get_results([(attribute, access)])
        if isinstance(result, DataAccessResult):
            raise AccessDenied(
                f"{attribute.obis} attribute {attribute.attribute}: {result.reason}", result=result
            )
        return result

    async def get_many(
        self, attributes: Sequence[tuple[AttributeDescriptor, AccessSelection | None]]
    ) -> list[Data | DataAccessResult]:
        """Several attributes: GET-with-list when the meter allows it, else one GET each."""
        results: list[Data | DataAccessResult] = []
        with_list = (
            self.use_get_with_list
            and Conformance.MULTIPLE_REFERENCES in self.conformance
            and len(attributes) > 1
        )
        step = self.max_list if with_list else 1
        for i in range(0, len(attributes), step):
            results += await self._get_results(list(attributes[i : i + step]))
        return results

    async def _get_results(
        self, attributes: list[tuple[AttributeDescriptor, AccessSelection | None]]
    ) -> list[Data | DataAccessResult]:
        if len(attributes) == 1:
            event = await self._transact(self.client.get, *attributes[0])
        else:
            event = await self._transact(self.client.get_with_list, attributes)
        if not isinstance(event, GetResult):
            raise ProtocolError(f"GET answered with {type(event).__name__}", layer=LAYER)
        if len(event.results) != len(attributes):
            raise ProtocolError(
                f"GET of {len(attributes)} attributes answered with {len(event.results)} results", layer=LAYER
            )
        return list(event.results)

    # -------------------------------------------------------------------------------- readings

    async def read_registers(
        self, codes: Sequence[ObisCode | str], *, class_id: int | None = None
    ) -> list[Reading]:
        """Value and scaler_unit of each code as readings (see the module docstring)."""
        obis = [_obis(c) for c in codes]
        self.failures = []
        cls = class_id or ClassId.REGISTER
        requests: list[tuple[AttributeDescriptor, AccessSelection | None]] = []
        for code in obis:
            requests.append((AttributeDescriptor(cls, code, 2), None))
            if cls in (ClassId.REGISTER, ClassId.EXTENDED_REGISTER, ClassId.DEMAND_REGISTER):
                requests.append((AttributeDescriptor(cls, code, 3), None))
        results = await self.get_many(requests)
        received = self.clock.now()
        meter_id = self.meter_id or self.link.name
        readings: list[Reading] = []
        retry_as_data: list[ObisCode] = []
        it = iter(results)
        for code in obis:
            value = next(it)
            scaler: Data | DataAccessResult | None = (
                next(it)
                if cls in (ClassId.REGISTER, ClassId.EXTENDED_REGISTER, ClassId.DEMAND_REGISTER)
                else None
            )
            if isinstance(value, DataAccessResult):
                if class_id is None and value in _NOT_THIS_CLASS:
                    retry_as_data.append(code)
                else:
                    self.failures.append(Failure(code, 2, value.reason))
                continue
            if isinstance(scaler, DataAccessResult):
                self.failures.append(Failure(code, 3, f"scaler_unit: {scaler.reason}"))
                continue
            unit = ScalerUnit.from_data(scaler) if scaler is not None else None
            readings.append(register_reading(meter_id, code, value, unit, received))
        if retry_as_data:  # not Registers: read them as Data (class 1, no scaler)
            first_failures = self.failures
            readings += await self.read_registers(retry_as_data, class_id=ClassId.DATA)
            self.failures = first_failures + self.failures
            order = {code: i for i, code in enumerate(obis)}
            readings.sort(key=lambda r: order[r.key] if isinstance(r.key, ObisCode) else 0)
        return readings

    async def read_clock(self) -> datetime:
        """The meter's clock (class 8, 0-0:1.0.0.255, attribute 2) as an aware datetime."""
        return clock_time(await self.get(AttributeDescriptor(ClassId.CLOCK, CLOCK_OBIS, 2)), self.default_tz)

    async def read_profile(
        self, code: ObisCode | str, start: datetime, end: datetime, *, with_scalers: bool = True
    ) -> list[Reading]:
        """Rows of a Profile Generic whose time lies in ``start..end``, as readings (one per value)."""
        obis = _obis(code)
        self.failures = []
        columns = CaptureObject.list_from_data(
            await self.get(AttributeDescriptor(ClassId.PROFILE_GENERIC, obis, 3))
        )
        try:
            period_data = await self.get(AttributeDescriptor(ClassId.PROFILE_GENERIC, obis, 4))
            period = period_data.value if isinstance(period_data.value, int) else 0
        except AccessDenied:
            period = 0
        scalers: dict[ObisCode, ScalerUnit] = {}
        registers = [
            c
            for c in columns
            if c.class_id in (ClassId.REGISTER, ClassId.EXTENDED_REGISTER, ClassId.DEMAND_REGISTER)
        ]
        if with_scalers and registers:
            found = await self.get_many(
                [(AttributeDescriptor(c.class_id, c.obis, 3), None) for c in registers]
            )
            for column, result in zip(registers, found, strict=True):
                if isinstance(result, DataAccessResult):
                    self.failures.append(Failure(column.obis, 3, f"scaler_unit: {result.reason}"))
                else:
                    scalers[column.obis] = ScalerUnit.from_data(result)
        buffer = await self.get(
            AttributeDescriptor(ClassId.PROFILE_GENERIC, obis, 2), range_descriptor(start, end)
        )
        return profile_readings(
            self.meter_id or self.link.name,
            buffer,
            columns,
            scalers,
            capture_period=int(period),
            default_tz=self.default_tz,
            received=self.clock.now(),
        )


_NOT_THIS_CLASS = frozenset(
    {
        DataAccessResult.OBJECT_CLASS_INCONSISTENT,
        DataAccessResult.OBJECT_UNDEFINED,
        DataAccessResult.OBJECT_UNAVAILABLE,
    }
)


def _value_text(data: Data) -> str | None:
    """A logical device name or serial number as text (``None`` when it is not text)."""
    value = data.value
    if isinstance(value, bytes):
        try:
            text = value.decode("ascii")
        except UnicodeDecodeError:
            return None
        return text if text.isprintable() and text else None
    return value if isinstance(value, str) and value else None


# ---------------------------------------------------------------------------------------------- entry points


def authentication_from(
    *,
    password: bytes | str | None = None,
    hls_keys: tuple[bytes, bytes] | None = None,
    system_title: bytes | None = None,
    invocation_counter: int = 1,
) -> Authentication:
    """The ``Authentication`` for a shorthand: ``password`` -> LLS, ``hls_keys`` (GUEK, GAK) -> HLS-GMAC
    with a security context of our ``system_title`` (default ``MBR`` 00000001) whose invocation counter
    starts at ``invocation_counter``; neither -> ``None`` (no authentication). Keys must be 16 bytes
    (``SecurityError`` otherwise, without the key in the message)."""
    if password is not None and hls_keys is not None:
        raise ValueError("give a password (LLS) or hls_keys (HLS-GMAC), not both")
    if password is not None:
        from meterbridge.protocols.dlms.association import Lls

        return Lls(password.encode("ascii") if isinstance(password, str) else password)
    if hls_keys is not None:
        from meterbridge.protocols.dlms.association import HlsGmac
        from meterbridge.protocols.dlms.security import SecurityContext, SecurityKeys

        guek, gak = hls_keys
        keys = SecurityKeys(encryption_key=guek, authentication_key=gak)
        if system_title is None:
            context = SecurityContext(keys=keys, invocation_counter=invocation_counter)
        else:
            context = SecurityContext(
                system_title=system_title, keys=keys, invocation_counter=invocation_counter
            )
        return HlsGmac(context)
    return None


def default_client(authentication: Authentication) -> int:
    """The client address (SAP / wPort) usually paired with an authentication: 16 (public client)
    without, 32 (the Landis+Gyr reading client, as ``drivers.optical`` chooses) with LLS, 1 (the
    management client, as head ends use it on G3-PLC) with HLS."""
    if authentication is None:
        return PUBLIC_CLIENT
    from meterbridge.protocols.dlms.association import HlsGmac

    return MANAGEMENT_CLIENT if isinstance(authentication, HlsGmac) else READING_CLIENT


async def open_session(
    url: str,
    *,
    framing: str = "auto",
    client: int | None = None,
    server: HdlcAddress | int | None = None,
    authentication: Authentication = None,
    password: bytes | str | None = None,
    hls_keys: tuple[bytes, bytes] | None = None,
    system_title: bytes | None = None,
    invocation_counter: int = 1,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    clock: Clock | None = None,
    **session: Any,
) -> DlmsSession:
    """Open ``url`` and associate. ``framing``: ``hdlc``, ``wrapper`` or ``auto`` (wrapper for
    ``udp://`` and ``tcp://...:4059``). ``server``: an HDLC address, or the server wPort.

    Authentication is ``authentication`` (an ``Lls`` / ``HlsGmac``), or the shorthands of
    ``authentication_from``: ``password`` (LLS) or ``hls_keys=(guek, gak)`` (HLS-GMAC, with our
    ``system_title`` and first ``invocation_counter``; a meter refuses a counter it has seen, so
    a caller opening one session after another passes on ``session.invocation_counter``).
    ``client`` defaults to ``default_client`` of the authentication (16 / 32 / 1)."""
    if framing not in ("auto", "hdlc", "wrapper"):
        raise ValueError(f"framing must be 'hdlc', 'wrapper' or 'auto', not {framing!r}")
    if authentication is not None and (password is not None or hls_keys is not None):
        raise ValueError("give authentication or a password / hls_keys shorthand, not both")
    if authentication is None:
        authentication = authentication_from(
            password=password,
            hls_keys=hls_keys,
            system_title=system_title,
            invocation_counter=invocation_counter,
        )
    if client is None:
        client = default_client(authentication)
    spec = parse_transport_url(url)
    if framing == "auto":
        framing = (
            "wrapper" if spec.kind == "udp" or (spec.kind == "tcp" and spec.port == DLMS_PORT) else "hdlc"
        )
    if framing == "wrapper" and isinstance(server, HdlcAddress):
        raise ValueError("over the wrapper the server is a wPort number, not an HDLC address")
    if framing == "hdlc" and isinstance(server, int):
        raise ValueError(
            "over HDLC the server is an HdlcAddress (e.g. HdlcAddress.server(1, 17)), not a number"
        )
    transport = await open_transport(url, clock=clock)
    link: ApduLink
    if framing == "wrapper":
        wport = server if isinstance(server, int) else 1
        link = WrapperLink(transport, client=client, server=wport, timeout=timeout, retries=retries)
    else:
        address = server if isinstance(server, HdlcAddress) else None
        link = HdlcLink(transport, client=client, server=address, timeout=timeout, retries=retries)
    meter = DlmsSession(link, authentication=authentication, owns_transport=True, **session)
    try:
        await meter.open()
    except BaseException:
        await transport.close()
        raise
    return meter


async def read_meter(url: str, obis: Sequence[ObisCode | str], **options: Any) -> list[Reading]:
    """Open ``url``, associate, read ``obis`` (``read_registers``), release and close; ``options`` as
    for ``open_session``."""
    meter = await open_session(url, **options)
    try:
        return await meter.read_registers(obis)
    finally:
        await meter.close()


async def read_after_hand_over(
    transport: Transport,
    obis: Sequence[ObisCode | str],
    *,
    pending: bytes = b"",
    client: int | None = None,
    server: HdlcAddress | None = None,
    authentication: Authentication = None,
    password: bytes | str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
    **session: Any,
) -> list[Reading]:
    """After an IEC 62056-21 mode E hand-over: HDLC on ``transport``, read ``obis``, release, DISC.

    ``pending`` are bytes the optical driver already received after the acknowledgement.
    ``password`` is a shorthand for LLS authentication. ``client`` defaults to 16 (the public
    client, no authentication) and, with a password or other authentication, to 32 (the
    Landis+Gyr reading client, as ``drivers.optical`` chooses): the public client never
    authenticates.
    """
    if password is not None and authentication is None:
        authentication = authentication_from(password=password)
    if client is None:
        client = PUBLIC_CLIENT if authentication is None else READING_CLIENT
    link = HdlcLink(
        transport, client=client, server=server, timeout=timeout, retries=retries, pending=pending
    )
    meter = DlmsSession(link, authentication=authentication, **session)
    await meter.open()
    try:
        return await meter.read_registers(obis)
    finally:
        await meter.close()
