"""The DLMS association in both roles, sans-IO at APDU level: ``DlmsClient`` and ``DlmsServer``.

Holds the association states and the one transition table (``TRANSITIONS``) both roles follow,
the client's events (``Associated``, ``AssociationRejected``, ``GetResult``, ``SetResult``,
``ActionDone``, ``Released``, ``ExceptionReceived``, ``BlockReceived``, ``NotificationReceived``),
the authentication settings (``Lls`` password, ``HlsGmac`` with a ``SecurityContext``) and the
``CosemModel`` protocol a meter implements to answer GET / SET / ACTION (``DictCosemModel`` is
the plain mapping form).

The client turns intentions into APDU bytes (``associate()``, ``get()``, ``get_with_list()``,
``set()``, ``action()``, ``release()``) and APDU bytes from the meter into events
(``receive(apdu)``); a long GET answer is fetched block by block: ``receive`` queues the
GET-request-next in ``outbox`` and answers ``BlockReceived``. The server answers each request
APDU with the reply bytes (``handle(apdu)``). With HLS-GMAC (application context LN with
ciphering) every xDLMS APDU after the AARQ travels glo-ciphered, authenticated and encrypted.
"""

from __future__ import annotations

import enum
import os
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias

from meterbridge.errors import (
    AuthenticationError,
    FramingError,
    LocalProtocolError,
    ProtocolError,
    SecurityError,
)
from meterbridge.obis import ObisCode
from meterbridge.protocols.dlms.apdu import (
    AARE,
    AARQ,
    CIPHERED_TAGS,
    RLRE,
    RLRQ,
    AccessSelection,
    ActionRequestNormal,
    ActionResponseNormal,
    ActionResult,
    Apdu,
    ApplicationContext,
    AssociationResult,
    AttributeDescriptor,
    CipheredApdu,
    Conformance,
    DataAccessResult,
    DataNotification,
    EventNotificationRequest,
    ExceptionResponse,
    GetRequestNext,
    GetRequestNormal,
    GetRequestWithList,
    GetResponseNormal,
    GetResponseWithDatablock,
    GetResponseWithList,
    InitiateRequest,
    InitiateResponse,
    Mechanism,
    MethodDescriptor,
    SetRequestNormal,
    SetResponseNormal,
    Tag,
    decode_apdu,
    decode_user_information,
)
from meterbridge.protocols.dlms.axdr import Data, encode_data
from meterbridge.protocols.dlms.security import (
    SecurityContext,
    hls_gmac_response,
    verify_hls_gmac,
)
from meterbridge.protocols.dlms.transfer import DatablockReassembler, split_get_response

__all__ = [
    "ASSOCIATION_LN",
    "DEFAULT_CONFORMANCE",
    "TRANSITIONS",
    "ActionDone",
    "Associated",
    "AssociationRejected",
    "AssociationState",
    "AuthenticationPending",
    "BlockReceived",
    "ClientEvent",
    "CosemModel",
    "DictCosemModel",
    "DlmsClient",
    "DlmsServer",
    "EventReceived",
    "ExceptionReceived",
    "GetResult",
    "HlsGmac",
    "Lls",
    "NotificationReceived",
    "Released",
    "SetResult",
]

LAYER = "dlms"
ASSOCIATION_LN = ObisCode.parse("0-0:40.0.0.255")
DEFAULT_CONFORMANCE = (
    Conformance.GET
    | Conformance.SET
    | Conformance.ACTION
    | Conformance.SELECTIVE_ACCESS
    | Conformance.MULTIPLE_REFERENCES
    | Conformance.BLOCK_TRANSFER_WITH_GET_OR_READ
    | Conformance.GENERAL_BLOCK_TRANSFER
    | Conformance.GENERAL_PROTECTION
)


class AssociationState(enum.Enum):
    IDLE = "idle"
    AWAITING_AARE = "awaiting-aare"
    AWAITING_HLS = "awaiting-hls-pass-3-4"
    ASSOCIATED = "associated"
    AWAITING_RESPONSE = "awaiting-response"
    AWAITING_RLRE = "awaiting-rlre"
    CLOSED = "closed"


S = AssociationState
# (state, what happens) -> next state. What happens is the name of the APDU or the action.
TRANSITIONS: dict[tuple[AssociationState, str], AssociationState] = {
    (S.IDLE, "send AARQ"): S.AWAITING_AARE,
    (S.IDLE, "receive AARQ"): S.ASSOCIATED,
    (S.IDLE, "receive AARQ (HLS)"): S.AWAITING_HLS,
    (S.AWAITING_AARE, "receive AARE accepted"): S.ASSOCIATED,
    (S.AWAITING_AARE, "receive AARE accepted (HLS)"): S.AWAITING_HLS,
    (S.AWAITING_AARE, "receive AARE rejected"): S.IDLE,
    (S.AWAITING_HLS, "send pass 3"): S.AWAITING_HLS,
    (S.AWAITING_HLS, "receive pass 3"): S.ASSOCIATED,
    (S.AWAITING_HLS, "receive pass 4"): S.ASSOCIATED,
    (S.AWAITING_HLS, "receive ExceptionResponse"): S.IDLE,
    (S.ASSOCIATED, "send request"): S.AWAITING_RESPONSE,
    (S.ASSOCIATED, "receive request"): S.ASSOCIATED,
    (S.ASSOCIATED, "receive DataNotification"): S.ASSOCIATED,
    (S.AWAITING_RESPONSE, "receive response"): S.ASSOCIATED,
    (S.AWAITING_RESPONSE, "receive block"): S.AWAITING_RESPONSE,
    (S.AWAITING_RESPONSE, "receive ExceptionResponse"): S.ASSOCIATED,
    (S.AWAITING_RESPONSE, "receive DataNotification"): S.AWAITING_RESPONSE,
    (S.ASSOCIATED, "send RLRQ"): S.AWAITING_RLRE,
    (S.ASSOCIATED, "receive RLRQ"): S.IDLE,
    (S.AWAITING_RLRE, "receive RLRE"): S.CLOSED,
    (S.IDLE, "receive DataNotification"): S.IDLE,
    (S.IDLE, "receive EventNotification"): S.IDLE,
    (S.ASSOCIATED, "receive EventNotification"): S.ASSOCIATED,
    (S.AWAITING_RESPONSE, "receive EventNotification"): S.AWAITING_RESPONSE,
}


# ---------------------------------------------------------------------------------------------------------------
# authentication settings


@dataclass(frozen=True, slots=True)
class Lls:
    """Low level security: a password sent in the AARQ."""

    password: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class HlsGmac:
    """High level security with GMAC (mechanism 5); the context holds our system title, keys and counters."""

    context: SecurityContext
    challenge_length: int = 16


Authentication: TypeAlias = Lls | HlsGmac | None


# ---------------------------------------------------------------------------------------------------------------
# client events


@dataclass(frozen=True, slots=True)
class Associated:
    conformance: Conformance
    max_pdu_size: int
    aare: AARE


@dataclass(frozen=True, slots=True)
class AssociationRejected:
    aare: AARE

    @property
    def reason(self) -> str:
        return f"{self.aare.result.reason}, diagnostic {self.aare.diagnostic}"


@dataclass(frozen=True, slots=True)
class GetResult:
    invoke_id: int
    results: tuple[Data | DataAccessResult, ...]


@dataclass(frozen=True, slots=True)
class BlockReceived:
    """A block of a long GET answer came in; the request for the next one is in the outbox."""

    invoke_id: int
    block_number: int


@dataclass(frozen=True, slots=True)
class AuthenticationPending:
    """HLS: the meter accepted the AARE; our pass 3 (its challenge answered) is in the outbox."""

    invoke_id: int


@dataclass(frozen=True, slots=True)
class SetResult:
    invoke_id: int
    result: DataAccessResult


@dataclass(frozen=True, slots=True)
class ActionDone:
    invoke_id: int
    result: ActionResult
    return_parameters: Data | DataAccessResult | None


@dataclass(frozen=True, slots=True)
class ExceptionReceived:
    response: ExceptionResponse


@dataclass(frozen=True, slots=True)
class NotificationReceived:
    notification: DataNotification


@dataclass(frozen=True, slots=True)
class EventReceived:
    """An Event-Notification-Request (the meter reports one attribute, e.g. an event code)."""

    notification: EventNotificationRequest


@dataclass(frozen=True, slots=True)
class Released:
    rlre: RLRE


ClientEvent: TypeAlias = (
    Associated
    | AssociationRejected
    | AuthenticationPending
    | GetResult
    | BlockReceived
    | SetResult
    | ActionDone
    | ExceptionReceived
    | NotificationReceived
    | EventReceived
    | Released
)


class _Machine:
    __slots__ = ("role", "state")

    def __init__(self, role: str) -> None:
        self.role = role
        self.state = AssociationState.IDLE

    def step(self, what: str) -> None:
        nxt = TRANSITIONS.get((self.state, what))
        if nxt is None:
            if what.startswith("receive"):  # the peer is out of step
                raise ProtocolError(f"{self.role} cannot {what} in state {self.state.value}", layer=LAYER)
            raise LocalProtocolError(f"DLMS {self.role}: cannot {what} in state {self.state.value}")
        self.state = nxt

    def allows(self, what: str) -> bool:
        return (self.state, what) in TRANSITIONS


_GLO_TAGS: dict[int, int] = {
    plain: ciphered
    for ciphered, plain in CIPHERED_TAGS.items()
    if ciphered < 0xD0 and ciphered not in (0x41, 0x48)
}


def _glo_tag(plain_tag: int) -> int:
    return _GLO_TAGS[plain_tag]


# ---------------------------------------------------------------------------------------------------------------
# client


class DlmsClient:
    """The client (head end / reader) role at APDU level."""

    def __init__(
        self,
        *,
        authentication: Authentication = None,
        conformance: Conformance = DEFAULT_CONFORMANCE,
        max_receive_pdu_size: int = 0xFFFF,
    ) -> None:
        self.authentication = authentication
        self.conformance = conformance
        self.max_receive_pdu_size = max_receive_pdu_size
        self.outbox: deque[bytes] = deque()
        self.negotiated_conformance = Conformance.NONE
        self.server_max_pdu_size = 0
        self._machine = _Machine("client")
        self._invoke = 0
        self._pending: int | None = None
        self._blocks: DatablockReassembler | None = None
        self._challenge = b""
        self._server_title: bytes | None = None
        self._aare: AARE | None = None

    @property
    def state(self) -> AssociationState:
        return self._machine.state

    @property
    def ciphered(self) -> bool:
        return isinstance(self.authentication, HlsGmac)

    def _send(self, data: bytes) -> bytes:
        self.outbox.append(data)
        return data

    def _next_invoke(self) -> int:
        self._invoke = (self._invoke + 1) & 0x0F
        return 0xC0 | self._invoke  # high priority, confirmed

    def _wrap(self, plain: bytes) -> bytes:
        if not isinstance(self.authentication, HlsGmac):
            return plain
        return CipheredApdu(_glo_tag(plain[0]), self.authentication.context.protect(plain)).encode()

    # intentions -> bytes

    def associate(self) -> bytes:
        self._machine.step("send AARQ")
        initiate = InitiateRequest(self.conformance, self.max_receive_pdu_size)
        auth = self.authentication
        if auth is None:
            aarq = AARQ(initiate)
        elif isinstance(auth, Lls):
            aarq = AARQ(initiate, mechanism=Mechanism.LOW, authentication_value=auth.password)
        else:
            self._challenge = os.urandom(auth.challenge_length)
            ctx = auth.context
            user_info = CipheredApdu(Tag.GLO_INITIATE_REQUEST, ctx.protect(initiate.encode()))
            aarq = AARQ(
                user_info,
                ApplicationContext.LOGICAL_NAME_CIPHERING,
                Mechanism.HIGH_GMAC,
                self._challenge,
                ctx.system_title,
            )
        return self._send(aarq.encode())

    def get(self, attribute: AttributeDescriptor, access: AccessSelection | None = None) -> bytes:
        self._machine.step("send request")
        self._pending = self._next_invoke()
        return self._send(self._wrap(GetRequestNormal(self._pending, attribute, access).encode()))

    def get_with_list(self, attributes: list[tuple[AttributeDescriptor, AccessSelection | None]]) -> bytes:
        self._machine.step("send request")
        self._pending = self._next_invoke()
        return self._send(self._wrap(GetRequestWithList(self._pending, tuple(attributes)).encode()))

    def set(self, attribute: AttributeDescriptor, value: Data) -> bytes:
        self._machine.step("send request")
        self._pending = self._next_invoke()
        return self._send(self._wrap(SetRequestNormal(self._pending, attribute, value).encode()))

    def action(self, method: MethodDescriptor, parameters: Data | None = None) -> bytes:
        self._machine.step("send request")
        self._pending = self._next_invoke()
        return self._send(self._wrap(ActionRequestNormal(self._pending, method, parameters).encode()))

    def release(self) -> bytes:
        self._machine.step("send RLRQ")
        return self._send(RLRQ(0).encode())

    # bytes -> events

    def _unwrap(self, apdu: Apdu) -> Apdu:
        if not isinstance(apdu, CipheredApdu):
            return apdu
        if not isinstance(self.authentication, HlsGmac) or self._server_title is None:
            raise SecurityError("ciphered APDU outside a ciphered association", layer=LAYER)
        opened = self.authentication.context.unprotect(apdu.ciphered, self._server_title, offset=2)
        if opened.plaintext[:1] != bytes((apdu.plain_tag,)):
            raise FramingError(
                f"ciphered APDU 0x{apdu.tag:02X} holds tag 0x{opened.plaintext[:1].hex()}", layer=LAYER
            )
        return decode_apdu(opened.plaintext)

    def receive(self, data: bytes) -> ClientEvent:
        apdu = self._unwrap(decode_apdu(data))
        if isinstance(apdu, AARE):
            return self._on_aare(apdu)
        if isinstance(apdu, DataNotification):
            self._machine.step("receive DataNotification")
            return NotificationReceived(apdu)
        if isinstance(apdu, EventNotificationRequest):
            self._machine.step("receive EventNotification")
            return EventReceived(apdu)
        if isinstance(apdu, ExceptionResponse):
            self._machine.step("receive ExceptionResponse")
            return ExceptionReceived(apdu)
        if isinstance(apdu, RLRE):
            self._machine.step("receive RLRE")
            return Released(apdu)
        if self.state is AssociationState.AWAITING_HLS and isinstance(apdu, ActionResponseNormal):
            return self._on_pass4(apdu)
        if isinstance(apdu, GetResponseNormal | GetResponseWithList | GetResponseWithDatablock):
            self._check_invoke(apdu.invoke_id)
            if isinstance(apdu, GetResponseWithDatablock):
                return self._on_block(apdu)
            self._machine.step("receive response")
            results = (apdu.result,) if isinstance(apdu, GetResponseNormal) else apdu.results
            return GetResult(apdu.invoke_id, results)
        if isinstance(apdu, SetResponseNormal):
            self._check_invoke(apdu.invoke_id)
            self._machine.step("receive response")
            return SetResult(apdu.invoke_id, apdu.result)
        if isinstance(apdu, ActionResponseNormal):
            self._check_invoke(apdu.invoke_id)
            self._machine.step("receive response")
            return ActionDone(apdu.invoke_id, apdu.result, apdu.return_parameters)
        raise FramingError(f"a client does not expect {type(apdu).__name__}", layer=LAYER)

    def _check_invoke(self, invoke_id: int) -> None:
        if self._pending is None or invoke_id & 0x0F != self._pending & 0x0F:
            raise FramingError(
                f"response with invoke id {invoke_id & 0x0F} that was not asked for", layer=LAYER
            )

    def _on_aare(self, aare: AARE) -> ClientEvent:
        self._aare = aare
        if not aare.accepted:
            self._machine.step("receive AARE rejected")
            return AssociationRejected(aare)
        info = aare.user_information
        hls = isinstance(self.authentication, HlsGmac)
        if isinstance(info, CipheredApdu):
            if not isinstance(self.authentication, HlsGmac) or aare.responding_ap_title is None:
                raise SecurityError(
                    "AARE carries a ciphered InitiateResponse the client cannot open", layer=LAYER
                )
            self._server_title = aare.responding_ap_title
            opened = self.authentication.context.unprotect(info.ciphered, self._server_title)
            info = decode_user_information(opened.plaintext)
        if not isinstance(info, InitiateResponse):
            raise FramingError("accepted AARE without an InitiateResponse", layer=LAYER)
        self.negotiated_conformance = info.conformance
        self.server_max_pdu_size = info.server_max_receive_pdu_size
        if not hls:
            self._machine.step("receive AARE accepted")
            return Associated(info.conformance, info.server_max_receive_pdu_size, aare)
        self._machine.step("receive AARE accepted (HLS)")
        assert isinstance(self.authentication, HlsGmac)
        if aare.authentication_value is None or self._server_title is None:
            raise SecurityError("HLS-GMAC AARE without a server challenge or system title", layer=LAYER)
        ctx = self.authentication.context
        f_stoc = hls_gmac_response(
            aare.authentication_value,
            system_title=ctx.system_title,
            invocation_counter=ctx.invocation_counter,
            keys=ctx.keys,
        )
        ctx.invocation_counter += 1
        self._machine.step("send pass 3")
        self._pending = self._next_invoke()
        request = ActionRequestNormal(
            self._pending, MethodDescriptor(15, ASSOCIATION_LN, 1), Data.octet_string(f_stoc)
        )
        self._send(self._wrap(request.encode()))
        return AuthenticationPending(self._pending)

    def _on_pass4(self, response: ActionResponseNormal) -> ClientEvent:
        assert isinstance(self.authentication, HlsGmac) and self._server_title is not None and self._aare
        params = response.return_parameters
        if response.result is not ActionResult.SUCCESS or not isinstance(params, Data):
            raise AuthenticationError(f"meter refused HLS pass 3: {response.result.reason}", layer=LAYER)
        if not isinstance(params.value, bytes):
            raise FramingError("HLS pass 4 is not an octet-string", layer=LAYER)
        ctx = self.authentication.context
        verify_hls_gmac(params.value, self._challenge, system_title=self._server_title, keys=ctx.keys)
        self._machine.step("receive pass 4")
        return Associated(self.negotiated_conformance, self.server_max_pdu_size, self._aare)

    def _on_block(self, block: GetResponseWithDatablock) -> ClientEvent:
        if isinstance(block.raw_data, DataAccessResult):  # the meter ended the transfer with a reason
            self._blocks = None
            self._machine.step("receive response")
            return GetResult(block.invoke_id, (block.raw_data,))
        if self._blocks is None:
            self._blocks = DatablockReassembler()
        try:
            whole = self._blocks.add(block)
        except FramingError:
            self._blocks = None
            self._machine.state = AssociationState.ASSOCIATED  # the long GET is over
            raise
        if whole is None:
            self._machine.step("receive block")
            self._send(self._wrap(GetRequestNext(block.invoke_id, block.block_number).encode()))
            return BlockReceived(block.invoke_id, block.block_number)
        self._blocks = None
        self._machine.step("receive response")
        return GetResult(block.invoke_id, (Data.decode(whole),))


# ---------------------------------------------------------------------------------------------------------------
# server (meter role)


class CosemModel(Protocol):
    """What a meter exposes: attribute values, writes and methods."""

    def get(
        self, attribute: AttributeDescriptor, access: AccessSelection | None
    ) -> Data | DataAccessResult: ...

    def set(self, attribute: AttributeDescriptor, value: Data) -> DataAccessResult: ...

    def action(
        self, method: MethodDescriptor, parameters: Data | None
    ) -> tuple[ActionResult, Data | None]: ...


Getter: TypeAlias = Callable[[AccessSelection | None], Data | DataAccessResult]


class DictCosemModel:
    """A ``CosemModel`` over a mapping ``(class_id, obis, attribute) -> Data or getter(access)``."""

    def __init__(self, values: Mapping[tuple[int, ObisCode, int], Data | Getter] | None = None) -> None:
        self.values: dict[tuple[int, ObisCode, int], Data | Getter] = dict(values or {})

    def get(self, attribute: AttributeDescriptor, access: AccessSelection | None) -> Data | DataAccessResult:
        entry = self.values.get((attribute.class_id, attribute.obis, attribute.attribute))
        if entry is None:
            return DataAccessResult.OBJECT_UNDEFINED
        if isinstance(entry, Data):
            return entry if access is None else DataAccessResult.SCOPE_OF_ACCESS_VIOLATED
        return entry(access)

    def set(self, attribute: AttributeDescriptor, value: Data) -> DataAccessResult:
        key = (attribute.class_id, attribute.obis, attribute.attribute)
        if key not in self.values:
            return DataAccessResult.OBJECT_UNDEFINED
        self.values[key] = value
        return DataAccessResult.SUCCESS

    def action(self, method: MethodDescriptor, parameters: Data | None) -> tuple[ActionResult, Data | None]:
        return ActionResult.OBJECT_UNDEFINED, None


class DlmsServer:
    """The meter role at APDU level: ``handle(request_apdu) -> reply_apdu``."""

    def __init__(
        self,
        model: CosemModel,
        *,
        password: bytes | None = None,
        security: SecurityContext | None = None,
        conformance: Conformance = DEFAULT_CONFORMANCE,
        max_receive_pdu_size: int = 1224,
        block_size: int | None = None,
    ) -> None:
        self.model = model
        self._password = password
        self.security = security
        self.conformance = conformance
        self.max_receive_pdu_size = max_receive_pdu_size
        self.block_size = block_size
        self._machine = _Machine("server")
        self._client_title: bytes | None = None
        self._client_challenge = b""
        self._challenge = b""
        self._client_max = 0xFFFF
        self._ciphered = False
        self._blocks: list[GetResponseWithDatablock] = []

    def __repr__(self) -> str:
        return f"DlmsServer(state={self.state.value}, ciphered={self._ciphered})"

    @property
    def state(self) -> AssociationState:
        return self._machine.state

    def _wrap(self, plain: bytes) -> bytes:
        if not self._ciphered:
            return plain
        assert self.security is not None
        return CipheredApdu(_glo_tag(plain[0]), self.security.protect(plain)).encode()

    def handle(self, data: bytes) -> bytes:
        apdu = decode_apdu(data)
        if isinstance(apdu, AARQ):
            return self._on_aarq(apdu)
        if isinstance(apdu, RLRQ) and not isinstance(apdu, RLRE):
            self._machine.step("receive RLRQ")
            self._ciphered = False
            return RLRE(0).encode()
        if isinstance(apdu, CipheredApdu):
            if not self._ciphered or self.security is None or self._client_title is None:
                return ExceptionResponse(1, 5).encode()
            try:
                opened = self.security.unprotect(apdu.ciphered, self._client_title, offset=2)
            except SecurityError:
                return ExceptionResponse(2, 5).encode()
            apdu = decode_apdu(opened.plaintext)
        elif self._ciphered:
            return ExceptionResponse(1, 1).encode()  # plain request inside a ciphered association
        if self.state is AssociationState.AWAITING_HLS:
            if isinstance(apdu, ActionRequestNormal):
                return self._on_pass3(apdu)
            return ExceptionResponse(1, 1).encode()
        if self.state is not AssociationState.ASSOCIATED:
            return ExceptionResponse(1, 1).encode()
        self._machine.step("receive request")
        return self._wrap(self._answer(apdu))

    def _on_aarq(self, aarq: AARQ) -> bytes:
        if not self._machine.allows("receive AARQ"):
            return self._reject(aarq, 1)
        info = aarq.user_information
        if aarq.mechanism is Mechanism.HIGH_GMAC:
            if self.security is None or aarq.calling_ap_title is None or not isinstance(info, CipheredApdu):
                return self._reject(aarq, 11)  # authentication-mechanism-name not recognised
            self._client_title = aarq.calling_ap_title
            try:
                opened = self.security.unprotect(info.ciphered, self._client_title)
            except SecurityError:
                return self._reject(aarq, 13)  # authentication-failure
            info = decode_user_information(opened.plaintext)
        elif aarq.mechanism is Mechanism.LOW:
            if self._password is None or aarq.authentication_value != self._password:
                return self._reject(aarq, 13)
        elif aarq.mechanism is not None:
            return self._reject(aarq, 11)
        elif self._password is not None or self.security is not None:
            return self._reject(aarq, 12)  # authentication-mechanism-name required
        if not isinstance(info, InitiateRequest):
            return self._reject(aarq, 1)
        self._client_max = info.client_max_receive_pdu_size
        response = InitiateResponse(info.conformance & self.conformance, self.max_receive_pdu_size)
        if aarq.mechanism is Mechanism.HIGH_GMAC:
            assert self.security is not None
            self._machine.step("receive AARQ (HLS)")
            self._client_challenge = aarq.authentication_value or b""
            self._challenge = os.urandom(16)
            self._ciphered = True
            return AARE(
                AssociationResult.ACCEPTED,
                CipheredApdu(Tag.GLO_INITIATE_RESPONSE, self.security.protect(response.encode())),
                ApplicationContext.LOGICAL_NAME_CIPHERING,
                diagnostic=14,  # authentication-required
                responding_ap_title=self.security.system_title,
                mechanism=Mechanism.HIGH_GMAC,
                authentication_value=self._challenge,
            ).encode()
        self._machine.step("receive AARQ")
        return AARE(AssociationResult.ACCEPTED, response, aarq.application_context).encode()

    def _reject(self, aarq: AARQ, diagnostic: int) -> bytes:
        return AARE(AssociationResult.REJECTED_PERMANENT, None, aarq.application_context, diagnostic).encode()

    def _on_pass3(self, request: ActionRequestNormal) -> bytes:
        assert self.security is not None and self._client_title is not None
        params = request.parameters
        if (
            request.method.class_id != 15
            or request.method.method != 1
            or params is None
            or not isinstance(params.value, bytes)
        ):
            return self._wrap(
                ActionResponseNormal(request.invoke_id, ActionResult.READ_WRITE_DENIED).encode()
            )
        try:
            verify_hls_gmac(
                params.value, self._challenge, system_title=self._client_title, keys=self.security.keys
            )
        except SecurityError:
            self._machine.state = AssociationState.IDLE
            self._ciphered = False
            return ActionResponseNormal(request.invoke_id, ActionResult.OTHER_REASON).encode()
        self._machine.step("receive pass 3")
        f_ctos = hls_gmac_response(
            self._client_challenge,
            system_title=self.security.system_title,
            invocation_counter=self.security.invocation_counter,
            keys=self.security.keys,
        )
        self.security.invocation_counter += 1
        reply = ActionResponseNormal(request.invoke_id, ActionResult.SUCCESS, Data.octet_string(f_ctos))
        return self._wrap(reply.encode())

    def _answer(self, apdu: Apdu) -> bytes:
        if isinstance(apdu, GetRequestNormal):
            result = self.model.get(apdu.attribute, apdu.access)
            return self._maybe_blocks(
                apdu.invoke_id, GetResponseNormal(apdu.invoke_id, result).encode(), result
            )
        if isinstance(apdu, GetRequestWithList):
            results = tuple(self.model.get(a, s) for a, s in apdu.attributes)
            return GetResponseWithList(apdu.invoke_id, results).encode()
        if isinstance(apdu, GetRequestNext):
            if not self._blocks or self._blocks[0].block_number != apdu.block_number + 1:
                self._blocks = []
                return GetResponseWithDatablock(
                    apdu.invoke_id, True, apdu.block_number, DataAccessResult.NO_LONG_GET_IN_PROGRESS
                ).encode()
            return self._blocks.pop(0).encode()
        if isinstance(apdu, SetRequestNormal):
            return SetResponseNormal(apdu.invoke_id, self.model.set(apdu.attribute, apdu.value)).encode()
        if isinstance(apdu, ActionRequestNormal):
            outcome, params = self.model.action(apdu.method, apdu.parameters)
            return ActionResponseNormal(apdu.invoke_id, outcome, params).encode()
        return ExceptionResponse(2, 2).encode()  # service-unknown, service-not-supported

    def _maybe_blocks(self, invoke_id: int, whole: bytes, result: Data | DataAccessResult) -> bytes:
        limit = min(self._client_max, self.block_size or self._client_max)
        if len(whole) <= limit or not isinstance(result, Data):
            return whole
        blocks = split_get_response(invoke_id, encode_data(result), max(1, limit - 12))
        self._blocks = blocks[1:]
        return blocks[0].encode()
